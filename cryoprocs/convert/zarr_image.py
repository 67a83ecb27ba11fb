"""OME-Zarr images (OME-NGFF 0.4 multiscales), local or remote, read lazily.

A tilt series or a tomogram stored as OME-Zarr is opened as a :class:`ZarrImage`, which
offers the interface the pipelines use for memory-mapped MRC files
(:class:`~cryoprocs.convert.mrc.MappedMrc`): ``shape`` ``[z, y, x]``, ``dtype``,
``voxel_size`` ``(x, y, z)`` in Å, ``read(z0, z1)``, ``read_sections``, ``[...]`` slicing,
``release``, ``close``; plus :meth:`ZarrImage.read_regions`, which fills only the chunks
that intersect given rectangles of one section (the particle boxes of one tilt image).

Locations
    a local folder (``tomo.zarr``), an fsspec URL (``https://...``, ``s3://...`` read
    anonymously, ``file://...``), optionally followed by the path of one scale level
    (``tomo.zarr/1``). A RELION ``n@`` prefix is handled by the callers.
Metadata (https://ngff.openmicroscopy.org/0.4/#multiscale-md)
    ``.zattrs`` ``multiscales[0]``: ``axes`` (space axes last, ``z, y, x``; other axes must
    have length 1), ``datasets[k].path`` and their ``coordinateTransformations`` (``scale``,
    optional ``translation``), optionally multiplied by a global transformation. Voxel sizes
    are the space-axis scales converted to Å from the axis ``unit`` (angstrom, nanometer,
    micrometer; no unit: the scale is taken as Å). The origin is the translation of the
    level, in Å.
Scale levels
    level 0 unless one is requested: by path, or by ``binning`` / ``voxel_size`` matching a
    stored level exactly (relative 1e-4); otherwise level 0.
Chunk cache
    Remote chunks are fetched through :class:`ChunkCache`, a byte-bounded LRU of compressed
    chunks (default 64 MiB per open image, ``CRYOPROCS_ZARR_CACHE_MB``) that fetches the
    missing chunks of one request in one concurrent batch (fsspec ``getitems``); local
    folders are read directly (the operating system's page cache serves re-reads).

Only Zarr v2 stores (OME-NGFF <= 0.4) are read: zarr-python 3, which reads Zarr v3
(OME-NGFF 0.5), needs Python >= 3.11 and numpy >= 1.25 but cannot be installed alongside
copick <= 1.2 (the newest under Scipion's pins).
"""
from __future__ import annotations

import collections
import json
import logging
import os
import threading
from typing import (TYPE_CHECKING, Any, Iterable, Iterator, KeysView, Optional, Sequence,
                    Tuple)

import numpy as np
from numpy.typing import ArrayLike
from zarr.storage import Store

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    from .paths import PathLike

from .images import URL_PREFIXES, is_url
from .mrc import MrcFormatError

__all__ = ["ZarrFormatError", "ZarrImage", "ChunkCache", "is_url", "URL_PREFIXES",
           "split_level", "open_zarr", "zarr_levels", "UNIT_TO_ANGSTROM",
           "DEFAULT_CACHE_BYTES"]

logger = logging.getLogger(__name__)

UNIT_TO_ANGSTROM = {"angstrom": 1.0, "nanometer": 10.0, "micrometer": 1e4,
                    "picometer": 0.01, "millimeter": 1e7, "meter": 1e10}
DEFAULT_CACHE_BYTES = int(float(os.environ.get("CRYOPROCS_ZARR_CACHE_MB", "64")) * 2 ** 20)
SPACE_NAMES = ("z", "y", "x")


class ZarrFormatError(MrcFormatError):
    """A location is not a readable OME-Zarr image (no NGFF metadata, missing scale level,
    unreachable URL, unsupported layout)."""


def split_level(location: str) -> Tuple[str, Optional[str]]:
    """``(store, level)``: ``"t.zarr/1"`` -> ``("t.zarr", "1")``; ``"t.zarr"`` ->
    ``("t.zarr", None)``. Only a last path element after ``.zarr`` is taken as a level."""
    loc = str(location).rstrip("/")
    head, tail = loc.rsplit("/", 1) if "/" in loc else ("", loc)
    if head.lower().endswith(".zarr") and not tail.lower().endswith(".zarr"):
        return head, tail
    return loc, None


# ----------------------------------------------------------------------------- storage
def _storage_options(url):
    if url.lower().startswith("s3://"):
        return {"anon": os.environ.get("CRYOPROCS_S3_ANON", "1") != "0"}
    if url.lower().startswith(("http://", "https://")):
        try:
            import aiohttp
            return {"client_kwargs": {"timeout": aiohttp.ClientTimeout(
                total=None, connect=float(os.environ.get("CRYOPROCS_HTTP_TIMEOUT", "30")),
                sock_read=300)}}
        except ImportError:                               # pragma: no cover
            return {}
    return {}


def _base_store(store_loc):
    """The zarr store of a local folder or a URL (read-only)."""
    import zarr
    if is_url(store_loc) and not store_loc.lower().startswith("file://"):
        try:
            return zarr.storage.FSStore(store_loc, mode="r", **_storage_options(store_loc))
        except ImportError as exc:
            raise ZarrFormatError("%s: reading this URL needs an extra package (%s); "
                                  "s3:// needs s3fs (pip install s3fs), http(s):// aiohttp"
                                  % (store_loc, exc)) from None
    path = store_loc[len("file://"):] if store_loc.lower().startswith("file://") else store_loc
    return zarr.storage.DirectoryStore(os.path.abspath(path))


def _probe(store_loc, base):
    """Read ``.zattrs`` of the store, telling apart an unreachable URL, a missing folder,
    a Zarr v3 store and a store without attributes. Returns the attributes (dict)."""
    if not is_url(store_loc) or store_loc.lower().startswith("file://"):
        path = base.path if hasattr(base, "path") else store_loc
        if not os.path.isdir(path):
            raise ZarrFormatError("OME-Zarr store %s not found" % store_loc)
        if not os.path.exists(os.path.join(path, ".zattrs")):
            if os.path.exists(os.path.join(path, "zarr.json")):
                raise ZarrFormatError(
                    "%s is a Zarr v3 (OME-NGFF 0.5) store; this installation reads Zarr v2 "
                    "(OME-NGFF <= 0.4) stores only" % store_loc)
            raise ZarrFormatError("%s has no OME-NGFF metadata (no .zattrs with "
                                  "'multiscales'): not an OME-Zarr image" % store_loc)
        with open(os.path.join(path, ".zattrs"), "rb") as fh:
            raw = fh.read()
    else:
        fs = base.fs
        url = store_loc.rstrip("/") + "/.zattrs"
        try:
            raw = fs.cat_file(url)
        except FileNotFoundError:
            v3 = False
            try:
                fs.cat_file(store_loc.rstrip("/") + "/zarr.json")
                v3 = True
            except Exception:
                pass
            if v3:
                raise ZarrFormatError(
                    "%s is a Zarr v3 (OME-NGFF 0.5) store; this installation reads Zarr v2 "
                    "(OME-NGFF <= 0.4) stores only" % store_loc) from None
            raise ZarrFormatError("%s has no OME-NGFF metadata (%s not found): not an "
                                  "OME-Zarr image" % (store_loc, url)) from None
        except Exception as exc:
            raise ZarrFormatError("cannot read %s: %s: %s" % (url, type(exc).__name__,
                                                              str(exc).strip() or "no answer")
                                  ) from None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ZarrFormatError("%s/.zattrs is not valid JSON: %s" % (store_loc, exc)) from None


class ChunkCache(Store):
    """A read-only zarr store wrapper keeping the most recently used chunks (compressed
    bytes) up to ``max_bytes``; :meth:`getitems` fetches all missing keys of a request in
    one call of the wrapped store (concurrent for fsspec stores). Thread-safe.

    Attributes
    ----------
    fetched_bytes, fetched_keys : int
        bytes and keys read from the wrapped store (cache misses).
    """

    def __init__(self, store: MutableMapping, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.store = store
        self.max_bytes = int(max_bytes)
        self._lru = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.fetched_bytes = 0
        self.fetched_keys = 0

    # zarr 2 accepts any MutableMapping-like object with these methods
    def _put(self, key, value):
        n = len(value)
        if n > self.max_bytes:
            return
        with self._lock:
            if key in self._lru:
                return
            self._lru[key] = value
            self._bytes += n
            while self._bytes > self.max_bytes and self._lru:
                _, old = self._lru.popitem(last=False)
                self._bytes -= len(old)

    def _get(self, key):
        with self._lock:
            v = self._lru.get(key)
            if v is not None:
                self._lru.move_to_end(key)
            return v

    def __getitem__(self, key):
        v = self._get(key)
        if v is None:
            v = self.store[key]
            with self._lock:
                self.fetched_bytes += len(v)
                self.fetched_keys += 1
            self._put(key, v)
        return v

    def getitems(self, keys: Iterable[str], *,
                 contexts: dict | None = None) -> dict[str, bytes]:
        """``{key: bytes}`` of the ``keys`` found, the missing ones fetched from the wrapped
        store in one call (``contexts`` is accepted for zarr's interface and not used)."""
        out, missing = {}, []
        for k in keys:
            v = self._get(k)
            if v is None:
                missing.append(k)
            else:
                out[k] = v
        if missing:
            if hasattr(self.store, "getitems"):
                got = self.store.getitems(missing, contexts={k: {} for k in missing})
            else:
                got = {}
                for k in missing:
                    try:
                        got[k] = self.store[k]
                    except KeyError:
                        pass
            with self._lock:
                self.fetched_bytes += sum(len(v) for v in got.values())
                self.fetched_keys += len(got)
            for k, v in got.items():
                self._put(k, v)
            out.update(got)
        return out

    def __contains__(self, key):
        return self._get(key) is not None or key in self.store

    def __iter__(self):
        return iter(self.store)

    def __len__(self):
        return len(self.store)

    def keys(self) -> KeysView[str] | Iterator[str]:
        """The wrapped store's keys."""
        return self.store.keys()

    def listdir(self, path: str = "") -> list[str]:
        """The wrapped store's listing of ``path``."""
        return self.store.listdir(path)

    def __setitem__(self, key, value):
        raise PermissionError("OME-Zarr inputs are read-only")

    def __delitem__(self, key):
        raise PermissionError("OME-Zarr inputs are read-only")

    def clear(self) -> None:
        """Drop every cached chunk (the wrapped store is untouched: it is read-only here)."""
        with self._lock:
            self._lru.clear()
            self._bytes = 0

    @property
    def cached_bytes(self) -> int:
        """Bytes of the chunks held now."""
        return self._bytes


# ----------------------------------------------------------------------------- metadata
def _scale_translation(transforms, ndim, where):
    scale, trans = np.ones(ndim), np.zeros(ndim)
    for t in transforms or []:
        kind = t.get("type")
        if kind == "scale":
            if "scale" not in t:
                raise ZarrFormatError("%s: a scale transformation given by 'path' is not "
                                      "supported" % where)
            v = np.asarray(t["scale"], dtype=np.float64)
        elif kind == "translation":
            if "translation" not in t:
                raise ZarrFormatError("%s: a translation given by 'path' is not supported"
                                      % where)
            v = np.asarray(t["translation"], dtype=np.float64)
        elif kind == "identity":
            continue
        else:
            raise ZarrFormatError("%s: coordinate transformation of type %r is not supported"
                                  % (where, kind))
        if v.size != ndim:
            raise ZarrFormatError("%s: %s transformation has %d values for %d axes"
                                  % (where, kind, v.size, ndim))
        if kind == "scale":
            scale = scale * v
            trans = trans * v
        else:
            trans = trans + v
    return scale, trans


def _axes(ms, ndim, where):
    """``[(name, type, unit)]`` of the multiscale's axes (NGFF 0.3 names, 0.4 dicts;
    none: the last three axes are z, y, x)."""
    axes = ms.get("axes")
    if not axes:
        names = ["t", "c", "z", "y", "x"][-ndim:] if ndim <= 5 else None
        if names is None:
            raise ZarrFormatError("%s: %d axes and no 'axes' metadata" % (where, ndim))
        return [(n, "space" if n in SPACE_NAMES else None, None) for n in names]
    out = []
    for a in axes:
        if isinstance(a, str):
            out.append((a.lower(), "space" if a.lower() in SPACE_NAMES else None, None))
        else:
            name = str(a.get("name", "")).lower()
            typ = a.get("type") or ("space" if name in SPACE_NAMES else None)
            out.append((name, typ, a.get("unit")))
    return out


def zarr_levels(attrs: dict, where: str) -> tuple[dict, list[dict], int | None]:
    """The scale levels of NGFF ``multiscales`` attributes.

    Returns
    -------
    (multiscale, levels, ndim) : (dict, list of dict, int or None)
        the first ``multiscales`` entry; ``levels[k]`` has ``path`` and ``transforms`` (its
        ``coordinateTransformations``, in the axis units, without the multiscale's global
        one); the number of axes its ``axes`` lists (None without ``axes``).

    Raises
    ------
    ZarrFormatError
        no ``multiscales`` or no ``datasets``.
    """
    ms = attrs.get("multiscales")
    if ms is None and isinstance(attrs.get("ome"), dict):
        ms = attrs["ome"].get("multiscales")
    if not ms or not isinstance(ms, list) or not ms[0].get("datasets"):
        raise ZarrFormatError("%s has no OME-NGFF metadata (.zattrs has no 'multiscales' with "
                              "'datasets'): not an OME-Zarr image" % where)
    m = ms[0]
    ndim = len(m["axes"]) if m.get("axes") else None
    levels = []
    for d in m["datasets"]:
        levels.append({"path": str(d["path"]).strip("/"),
                       "transforms": d.get("coordinateTransformations")})
    return m, levels, ndim


def _match_level(infos, binning, voxel_size):
    """The path of the first level whose voxel size is ``binning`` times level 0's in x and
    y (z: 1 or ``binning`` times), or whose x voxel size is ``voxel_size`` Å (both relative
    1e-4); level 0 when none is."""
    v0 = np.array(infos[0]["voxel_size"])
    for info in infos:
        v = np.array(info["voxel_size"])
        r = v / v0
        # x and y binned; z binned too (volumes) or not (tilt series)
        if binning is not None and float(binning) != 1.0 and np.allclose(
                r[:2], float(binning), rtol=1e-4, atol=0) and (
                np.isclose(r[2], 1.0, rtol=1e-4) or
                np.isclose(r[2], float(binning), rtol=1e-4)):
            return info["path"]
        if voxel_size is not None and abs(v[0] - float(voxel_size)) <= \
                1e-4 * float(voxel_size):
            return info["path"]
    return infos[0]["path"]


class ZarrImage:
    """A scale level of an OME-Zarr image opened read-only (see the module docstring).

    Parameters
    ----------
    location : str
        local folder or fsspec URL of the multiscale image, optionally with a level path
        (``tomo.zarr/1``).
    level : str or int, optional
        the level path (``datasets[k].path``) to read; overrides one in ``location``.
    binning : float, optional
        read the level whose x and y voxel sizes are ``binning`` times level 0's (and z the
        same or ``binning`` times, for tilt series and volumes), exactly (relative 1e-4),
        when there is one, else level 0.
    voxel_size : float, optional
        read the level whose x voxel size equals this (Å) when there is one, else level 0.
    cache_bytes : int, optional
        bound of the chunk cache (:class:`ChunkCache`).
    nonfinite : {None, "error", "replace"}
        check every block read (``image[...]``, :meth:`read`, :meth:`read_sections`,
        :meth:`full`) for NaN / infinite values (:class:`~cryoprocs.convert.finite.FiniteGuard`,
        kept in :attr:`guard`; the whole level is scanned only once a block is not finite);
        None: no check. :meth:`read_regions` (boxes of tilt images) is not checked here.

    Attributes
    ----------
    shape : (z, y, x)
        of the level (a 2D image is ``(1, y, x)``).
    dtype : numpy.dtype
        native byte order.
    voxel_size, origin : (x, y, z) floats
        Å per voxel and the level's translation in Å.
    voxel_size_known : bool
        the axes have units (else the scales are taken as Å).
    level, levels : str, list of dict
        the level read, and every level (``path``, ``shape``, ``voxel_size``).
    chunks : (cz, cy, cx)
        chunk shape of the space axes.
    is_stack : bool
        False (OME-Zarr has no stack flag; tilt series are 3D images).

    Raises
    ------
    ZarrFormatError
        not an OME-Zarr image, a missing or unknown level, an unreachable URL, a non-space
        axis longer than 1.
    """

    def __init__(self, location: PathLike, level: str | int | None = None,
                 binning: float | None = None, voxel_size: float | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, nonfinite: str | None = None) -> None:
        store_loc, loc_level = split_level(location)
        if level is None:
            level = loc_level
        self.location = str(location)
        self.path = self.location
        self.store_location = store_loc
        base = _base_store(store_loc)
        m, levels, ndim = zarr_levels(_probe(store_loc, base), store_loc)
        self.remote = is_url(store_loc) and not store_loc.lower().startswith("file://")
        # local folders are read directly (the page cache is the cache); remote chunks go
        # through the bounded cache, fetched in one batch per request
        self.cache = ChunkCache(base, cache_bytes if self.remote else 0)
        paths = [lv["path"] for lv in levels]
        if level is not None and str(level) not in paths:
            raise ZarrFormatError("%s has no scale level %r (levels: %s)"
                                  % (store_loc, str(level), ", ".join(paths)))
        arrays = {}                                 # level path -> zarr array, opened once
        ndim = ndim or self._open_level(paths[0], arrays).ndim
        axes = _axes(m, ndim, store_loc)
        space = self._space_axes(axes, ndim)
        infos = self._level_infos(m, levels, ndim, space, self._units_to_angstrom(axes, space))
        if level is None:
            level = _match_level(infos, binning, voxel_size)
        self._use_level(str(level), arrays, infos[paths.index(str(level))], axes, ndim,
                        len(space))
        self.levels = [{"path": i["path"], "voxel_size": i["voxel_size"]} for i in infos]
        self.guard = None
        if nonfinite:
            from .finite import FiniteGuard
            self.guard = FiniteGuard(self.location, _Unchecked(self), nonfinite)

    # ------------------------------------------------------------------ opening (steps)
    def _open_level(self, path, arrays):
        """The zarr array of scale level ``path`` (through the chunk cache; kept in
        ``arrays``)."""
        import zarr
        if path not in arrays:
            try:
                arrays[path] = zarr.open_array(self.cache, path=path, mode="r")
            except Exception as exc:             # missing .zarray, unreadable, ...
                raise ZarrFormatError(
                    "%s: scale level %r listed in the multiscales metadata cannot be "
                    "opened (%s: %s)" % (self.store_location, path, type(exc).__name__,
                                         str(exc).strip() or "missing")) from None
        return arrays[path]

    def _space_axes(self, axes, ndim):
        """Indices of the space axes, which must be the last 2 or 3."""
        space = [i for i, a in enumerate(axes) if a[1] == "space"]
        if len(space) not in (2, 3) or space != list(range(ndim - len(space), ndim)):
            raise ZarrFormatError("%s: axes %s: expected 2 or 3 space axes (z, y, x) last"
                                  % (self.store_location, [a[0] for a in axes]))
        return space

    def _units_to_angstrom(self, axes, space):
        """Å per unit of each space axis (1 without a unit); sets ``voxel_size_known``."""
        units = [axes[i][2] for i in space]
        self.voxel_size_known = all(u is not None for u in units)
        for u in units:
            if u is not None and str(u).lower() not in UNIT_TO_ANGSTROM:
                raise ZarrFormatError("%s: space unit %r is not a length unit (%s)"
                                      % (self.store_location, u, ", ".join(UNIT_TO_ANGSTROM)))
        return np.array([UNIT_TO_ANGSTROM[str(u).lower()] if u else 1.0 for u in units])

    def _level_infos(self, m, levels, ndim, space, to_a):
        """``[{path, voxel_size, origin}]`` of every level: ``(x, y, z)`` in Å, the level's
        transformations followed by the multiscale's global one."""
        store_loc = self.store_location
        gscale, gtrans = _scale_translation(m.get("coordinateTransformations"), ndim,
                                            store_loc)
        infos = []
        for lv in levels:
            s, t = _scale_translation(lv["transforms"], ndim,
                                      "%s level %s" % (store_loc, lv["path"]))
            s, t = s * gscale, t * gscale + gtrans
            vs = (s[space] * to_a)[::-1]            # (x, y[, z])
            org = (t[space] * to_a)[::-1]
            if len(space) == 2:
                vs, org = np.r_[vs, 1.0], np.r_[org, 0.0]
            infos.append({"path": lv["path"], "voxel_size": tuple(float(v) for v in vs),
                          "origin": tuple(float(v) for v in org)})
        return infos

    def _use_level(self, level, arrays, info, axes, ndim, nspace):
        """Open scale level ``level`` (its ``info`` from :meth:`_level_infos`) and set the
        attributes that describe it (``shape``, ``chunks``, ``dtype``, ``voxel_size``...)."""
        store_loc = self.store_location
        arr = self._open_level(level, arrays)
        if arr.ndim != ndim:
            raise ZarrFormatError("%s level %s has %d dimensions; the axes metadata lists %d"
                                  % (store_loc, level, arr.ndim, ndim))
        lead = arr.shape[:ndim - nspace]
        if any(int(n) != 1 for n in lead):
            raise ZarrFormatError("%s: non-space axes %s have lengths %s; only images with "
                                  "one time point and one channel are read"
                                  % (store_loc, [a[0] for a in axes[:len(lead)]], lead))
        self._arr = arr
        self._lead = (0,) * len(lead)
        self._is2d = nspace == 2
        sp = tuple(int(n) for n in arr.shape[len(lead):])
        self.shape = (1,) + sp if self._is2d else sp
        ch = tuple(int(c) for c in arr.chunks[len(lead):])
        self.chunks = (1,) + ch if self._is2d else ch
        self.dtype = np.dtype(arr.dtype).newbyteorder("=")
        self.voxel_size = info["voxel_size"]
        self.origin = info["origin"]
        self.level = level
        self.is_stack = False
        self.mz = self.shape[0]
        self.ndim = 3
        self.data = self                            # ``mapped.data[...]`` as for MRC

    # ------------------------------------------------------------------ reading
    def __len__(self):
        return self.shape[0]

    def _key(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if Ellipsis in key:
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1:]
        key = key + (slice(None),) * (3 - len(key))
        if self._is2d:
            z = key[0]
            if isinstance(z, slice):
                if len(range(*z.indices(1))) != 1:
                    raise IndexError("a 2D image has one section")
                return self._lead + key[1:], True
            if int(z) not in (0, -1):
                raise IndexError("section %s of a 2D image" % z)
            return self._lead + key[1:], False
        return self._lead + key, None

    def __getitem__(self, key):
        """``image[z0:z1, y0:y1, x0:x1]`` (basic indexing) -> a native-order array; only the
        intersecting chunks are read (and checked for non-finite values with a guard)."""
        out = self._get(key)
        if self.guard is not None:
            out = self.guard.check(out, inplace=True)
        return out

    def _get(self, key):
        """``image[key]`` without the non-finite check (a private array)."""
        k, keep = self._key(key)
        out = np.asarray(self._arr[k])          # a fresh array (zarr decodes into it)
        if keep:
            out = out[None]
        return out.astype(self.dtype, copy=False)

    def read(self, z0: int, z1: int, out: np.ndarray | None = None) -> np.ndarray:
        """Sections ``z0..z1-1`` as ``[z1-z0, y, x]`` (into ``out`` when given)."""
        block = self[int(z0):int(z1)]
        if out is None:
            return block
        np.copyto(out, block, casting="unsafe")
        return out

    def read_sections(self, indices: ArrayLike) -> np.ndarray:
        """Sections at arbitrary 0-based ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices),) + tuple(self.shape[1:]), dtype=self.dtype)
        for j, i in enumerate(indices):
            out[j] = self[int(i)]
        return out

    def read_regions(self, index: int, rects: Iterable[Sequence[int]],
                     out: np.ndarray) -> np.ndarray:
        """Fill the rectangles ``rects`` (``(y0, y1, x0, x1)``, half-open, inside the image)
        of section ``index`` into ``out`` (``[y, x]``), fetching only the chunks that
        intersect them, in one batch. Other pixels of ``out`` are left as they are.
        Returns ``out``."""
        H, W = self.shape[1:]
        _, cy, cx = self.chunks
        ny, nx = -(-H // cy), -(-W // cx)
        need = np.zeros((ny, nx), dtype=bool)
        for y0, y1, x0, x1 in rects:
            if y1 <= y0 or x1 <= x0:
                continue
            need[y0 // cy:(y1 - 1) // cy + 1, x0 // cx:(x1 - 1) // cx + 1] = True
        if not need.any():
            return out
        cz = int(index) // self.chunks[0]
        zero = (0,) * len(self._lead)
        if self.remote:                              # one concurrent fetch into the cache
            keys = [self._arr._chunk_key(zero + ((cz,) if not self._is2d else ()) + (j, i))
                    for j, i in zip(*np.nonzero(need))]
            self.cache.getitems(keys)
        for j in range(ny):
            row = need[j]
            i = 0
            while i < nx:
                if not row[i]:
                    i += 1
                    continue
                i1 = i
                while i1 + 1 < nx and row[i1 + 1]:
                    i1 += 1
                ys = slice(j * cy, min(H, (j + 1) * cy))
                xs = slice(i * cx, min(W, (i1 + 1) * cx))
                sel = self._lead + (() if self._is2d else (int(index),)) + (ys, xs)
                self._arr.get_basic_selection(sel, out=out[ys, xs])
                i = i1 + 1
        return out

    def release(self, z0: int | None = None, z1: int | None = None) -> None:
        """Nothing to release (chunks live in the bounded cache); kept for the MRC interface."""

    release_all = release

    def full(self) -> np.ndarray:
        """The whole level in memory (``[z, y, x]``)."""
        return self[:]

    @property
    def fetched_bytes(self) -> int:
        """Bytes read from the store so far (chunks and array metadata)."""
        return self.cache.fetched_bytes

    def close(self) -> None:
        """Drop the cached chunks (nothing else is held open)."""
        if self.cache is not None:
            self.cache.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "ZarrImage(%r, level=%s, shape=%s, dtype=%s, voxel_size=%s)" % (
            self.store_location, self.level, self.shape, self.dtype, self.voxel_size)


class _Unchecked:
    """What a :class:`~cryoprocs.convert.finite.FiniteGuard` scans: the image without its
    own check (``shape``, ``dtype``, slicing)."""

    def __init__(self, img):
        self._img, self.shape, self.dtype = img, img.shape, img.dtype

    def __getitem__(self, key):
        return self._img._get(key)


def open_zarr(location: PathLike, **kwargs: Any) -> ZarrImage:

    """Open an OME-Zarr image (see :class:`ZarrImage`)."""
    return ZarrImage(location, **kwargs)
