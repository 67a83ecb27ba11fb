"""File-level masking: stream images or volumes from MRC files through the mask kernels.

Used by the ``cryoprocs mask`` command and by the ApplyMask2D/3D protocols. Inputs are read
by blocks from memory maps whose pages are released after use
(:class:`~cryoprocs.convert.mrc.MappedMrc`) and outputs written with ``pwrite``
(:class:`~cryoprocs.convert.mrc.MrcBlockWriter`), so resident memory is a few blocks
(``DEFAULT_BLOCK_BYTES`` per thread) whatever the stack size. Outputs are float32
MRC written under a temporary name and renamed when complete.
"""
import threading
from collections import OrderedDict
from types import SimpleNamespace
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..convert.mrc import (MappedMrc, MrcBlockWriter, MrcFormatError, atomic_output,
                           check_same_grid, mrc_info, read_mrc, write_mrc)
from ..convert.outputs import run_scope
from ..convert.paths import check_io
from ..kernels import masks as masks_kernels

__all__ = ["MaskRecipe", "ImageSources", "mask_file", "mask_sources", "save_mask",
           "source_item_shape"]

#: bytes of input per block and thread (256 images of 128x128 float32)
DEFAULT_BLOCK_BYTES = 16 * 1024 * 1024


class MaskRecipe:
    """Everything needed to mask an image of a given shape: a geometry or a created mask.

    Parameters
    ----------
    geometry : str or None
        Kernel geometry name (see :mod:`cryoprocs.kernels.masks`), None with ``mask_file``.
    params : dict
        Form values as the Xmipp form holds them (``radius``, ``box_size``, ``inner_radius``,
        ``outer_radius``, ``height``, ``sigma``, ``border_decay``; -1 = Xmipp default).
    center : tuple
        Centre shift (x0, y0[, z0]) in px.
    fill, fill_value, seed : see :func:`cryoprocs.kernels.masks.apply_mask`.
    gaussian_peak_one : bool
        Peak-normalised gaussian instead of Xmipp's unit integral.
    mask_file : str or None
        Created mask (MRC), multiplied voxel-wise.
    nonfinite : {"error", "replace"}
        NaN / infinite values in the created mask (see :class:`~cryoprocs.convert.mrc.FiniteGuard`).
    """

    def __init__(self, geometry=None, params=None, center=(0, 0, 0), fill="value",
                 fill_value=0.0, seed=42, gaussian_peak_one=False, mask_file=None,
                 nonfinite="error"):
        self.geometry = geometry
        self.params = dict(params or {})
        self.center = tuple(center)
        self.fill = fill
        self.fill_value = float(fill_value)
        self.seed = int(seed)
        self.gaussian_peak_one = bool(gaussian_peak_one)
        self.mask_file = mask_file
        self.nonfinite = nonfinite
        if geometry is None and mask_file is None:
            raise masks_kernels.MaskError("give a mask geometry or a mask file")
        self._cache = {}
        self._lock = threading.Lock()

    def build(self, shape):
        """Mask array for one image/volume of ``shape`` (numpy order); cached per shape.

        Returns ``(mask, warnings)``; soft masks are returned as float32 (the precision of
        the multiplication).
        """
        shape = tuple(shape)
        with self._lock:
            if shape not in self._cache:
                if self.mask_file is not None:
                    mask = read_mrc(self.mask_file, nonfinite=self.nonfinite)
                    if mask.ndim == 3 and mask.shape[0] == 1 and len(shape) == 2:
                        mask = mask[0]
                    warnings = masks_kernels.check_created_mask(mask, shape)
                    self._cache[shape] = (mask.astype(np.float32), warnings)
                else:
                    kw = masks_kernels.xmipp_form_defaults(shape[-1], self.geometry, **self.params)
                    mask = masks_kernels.make_mask(shape, self.geometry, center=self.center,
                                                   gaussian_peak_one=self.gaussian_peak_one, **kw)
                    if mask.dtype != bool and self.fill != "noise":
                        mask = mask.astype(np.float32)
                    self._cache[shape] = (mask, [])
            return self._cache[shape]

    def apply(self, images, first_index=0, out=None):
        """Mask a block ``[n, y, x]`` / ``[n, z, y, x]``; returns float32."""
        mask, _ = self.build(images.shape[1:])
        if self.mask_file is not None:
            return masks_kernels.apply_created_mask(images, mask, out=out)
        return masks_kernels.apply_mask(images, mask, fill=self.fill, fill_value=self.fill_value,
                                        seed=self.seed, first_index=first_index, out=out)


class _Readers:
    """Thread-safe LRU of open :class:`MappedMrc`, so sets spread over thousands of
    stack files never exceed the open-file limit. Evicted readers are dropped, not closed:
    another thread may still be reading; their descriptor closes when collected."""

    def __init__(self, paths, size=64, nonfinite="error"):
        self.paths, self.size, self.nonfinite = paths, size, nonfinite
        self._open = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, fid):
        with self._lock:
            rd = self._open.pop(fid, None)
            if rd is None:
                rd = MappedMrc(self.paths[fid], nonfinite=self.nonfinite)
                while len(self._open) >= self.size:
                    self._open.popitem(last=False)
            self._open[fid] = rd
            return rd

    def close(self):
        with self._lock:
            for rd in self._open.values():
                rd.close()
            self._open.clear()


class ImageSources:
    """Where each item of an ordered set lives: ``paths[file_ids[i]]``, 0-based ``index[i]``.

    ``item_ndim`` is 2 for images, 3 for volumes. ``index[i] == -1`` means the file holds a
    single item; Scipion's ``1@vol.mrc`` for a plain volume is also read as the whole file.
    """

    def __init__(self, paths, file_ids, index, item_ndim=2):
        self.paths = list(paths)
        self.file_ids = np.asarray(file_ids, dtype=np.int64)
        self.index = np.asarray(index, dtype=np.int64)
        self.item_ndim = int(item_ndim)

    def __len__(self):
        return len(self.index)

    @classmethod
    def from_locations(cls, locations, item_ndim=2):
        """From ``(index, path)`` pairs with Scipion's 1-based stack index (0/None = whole file)."""
        paths, ids, idx, lookup = [], [], [], {}
        for index, path in locations:
            if path not in lookup:
                lookup[path] = len(paths)
                paths.append(path)
            ids.append(lookup[path])
            idx.append(int(index) - 1 if index else -1)
        return cls(paths, ids, idx, item_ndim)

    def _read_run(self, rd, indices):
        """Items at ``indices`` of one file."""
        if self.item_ndim == 2:
            if rd.shape[0] == 1:
                return rd.read(0, 1).repeat(len(indices), axis=0) if len(indices) > 1 \
                    else rd.read(0, 1)
            if np.any(indices < 0):
                raise MrcFormatError("%s holds %d images; its location needs an index"
                                     % (rd.path, rd.shape[0]))
            return rd.read_sections(indices)
        vols = []
        for idx in indices:                      # volumes: mz sections each
            first = 0 if idx < 0 or rd.mz == rd.shape[0] else idx * rd.mz
            vols.append(rd.read(first, first + rd.mz))
        return np.stack(vols)

    def read(self, i0, i1, readers):
        """Items ``i0..i1-1`` as one array (original dtype); ``readers(fid)`` gives a reader."""
        fids = self.file_ids[i0:i1]
        cuts = np.flatnonzero(np.diff(fids)) + 1
        parts = []
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(fids)]):
            parts.append(self._read_run(readers(fids[a]), self.index[i0 + a:i0 + b]))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def save(self, path, voxel_size=None, ids=None):
        """Write the locations (and the items' ``ids`` and ``voxel_size``) to an ``.npz``
        file, atomically (the input of ``cryoprocs mask --sources``)."""
        arrays = dict(paths=np.array(self.paths), file_ids=self.file_ids, index=self.index,
                      item_ndim=np.array(self.item_ndim),
                      voxel_size=np.array(float(voxel_size or 0.0)))
        if ids is not None:
            arrays["ids"] = np.asarray(ids, dtype=np.int64)
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path):
        """``(sources, ids or None, voxel size or None)`` saved by :meth:`save`.

        Raises
        ------
        ValueError
            not such a file (truncated, not an ``.npz``, arrays missing), naming it.
        """
        import zipfile
        try:
            with np.load(path, allow_pickle=False) as z:
                sources = cls([str(p) for p in z["paths"]], z["file_ids"], z["index"],
                              int(z["item_ndim"]) if "item_ndim" in z.files else 2)
                ids = z["ids"] if "ids" in z.files else None
                vs = float(z["voxel_size"]) if "voxel_size" in z.files else 0.0
        except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError("%s is not a list of image locations (cryoprocs mask --sources): "
                             "%s" % (path, " ".join(str(exc).split()) or type(exc).__name__)) \
                from None
        return sources, ids, (vs or None)

    def read_item(self, k, nonfinite="error"):
        """Item ``k`` alone (opens and closes its file)."""
        with MappedMrc(self.paths[self.file_ids[k]], nonfinite=nonfinite) as rd:
            return self._read_run(rd, self.index[k:k + 1])[0]


def _block_items(item_shape):
    return max(1, DEFAULT_BLOCK_BYTES // max(1, int(np.prod(item_shape)) * 4))


def _run_blocks(func, starts, threads):
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(func, starts))
    else:
        for b0 in starts:
            func(b0)


def mask_file(in_path, out_path, recipe, threads=1, overwrite=True, nonfinite="error"):
    """Mask an MRC image, image stack (.mrcs) or volume into ``out_path`` (float32 MRC).

    A 2D image or a volume is masked as one item; a stack (``.mrcs``, or ispg 0 with
    ``nz > 1``) image by image, in blocks spread over ``threads`` threads. Returns the list
    of mask warnings. Nothing is left under ``out_path`` (or a temporary name) on error.
    ``nonfinite``: NaN / infinite values in the input or the created mask are an error
    ("error", :class:`~cryoprocs.convert.mrc.NonFiniteError`) or replaced by the mean of the
    file's finite values ("replace", logged).

    Raises
    ------
    MrcFormatError
        input not MRC, a created mask of another voxel size (beyond 1 %), non-finite values;
        :class:`~cryoprocs.kernels.masks.MaskError` for mask problems.
    FileExistsError
        ``out_path`` exists and ``overwrite`` is False.
    ValueError
        ``out_path`` is the input file or the mask file.
    FileNotFoundError, IsADirectoryError
        a missing input, a folder given as a file.
    """
    with run_scope():
        check_io(inputs=[("input", in_path), ("mask file", recipe.mask_file)],
                 outputs=[("output", out_path)], overwrite=overwrite)
        info = mrc_info(in_path)
        if recipe.mask_file is not None:        # dimensions: recipe.build; voxel size here
            check_same_grid(in_path, SimpleNamespace(shape=None, voxel_size=info.voxel_size),
                            recipe.mask_file, mrc_info(recipe.mask_file), "mask file")
        return _mask_file(in_path, out_path, recipe, info, threads, overwrite, nonfinite)


def _mask_file(in_path, out_path, recipe, info, threads, overwrite, nonfinite):
    nz, ny, nx = info.shape
    stack = info.is_stack or nz == 1
    item_shape = (ny, nx) if stack else (nz, ny, nx)
    _, warnings = recipe.build(item_shape)     # validates before anything is written
    with atomic_output(out_path, overwrite=overwrite) as tmp, \
            MappedMrc(in_path, nonfinite=nonfinite) as rd, \
            MrcBlockWriter(tmp, info.shape, np.float32, voxel_size=info.voxel_size,
                           is_stack=info.is_stack) as wr:
        if stack:
            block = _block_items(item_shape)

            def work(b0):
                b1 = min(b0 + block, nz)
                wr.write(b0, recipe.apply(rd.read(b0, b1), first_index=b0))

            _run_blocks(work, list(range(0, nz, block)), threads)
        else:
            wr.write(0, recipe.apply(rd.read(0, nz)[None])[0])
    return warnings


def mask_sources(sources, recipe, out_path, i0, i1, voxel_size=None, threads=1,
                 overwrite=False, nonfinite="error"):
    """Mask items ``i0..i1-1`` of ``sources`` into their own file ``out_path`` (float32 MRC,
    written under a temporary name and renamed when complete).

    Images (``item_ndim`` 2) give a stack of ``i1 - i0`` images, read and written in blocks
    over ``threads`` threads; a volume (``item_ndim`` 3) needs ``i1 == i0 + 1`` and gives one
    volume. The noise fill of item ``k`` draws its stream from ``(seed, k)``, ``k`` being the
    position in the whole set, so any cut into chunks gives the same values. Returns the
    mask warnings. ``nonfinite``: NaN / infinite input values are an error ("error") or
    replaced by the mean of their file's finite values ("replace").

    Raises
    ------
    ValueError
        an empty or out-of-range ``i0..i1``, several volumes; a created mask of another
        voxel size (beyond 1 %) than ``voxel_size``; non-finite values.
    FileExistsError
        ``out_path`` exists and ``overwrite`` is False.
    """
    n = len(sources)
    if not 0 <= i0 < i1 <= n:
        raise ValueError("item range %d..%d is outside the %d items of the input" % (i0, i1, n))
    if sources.item_ndim == 3:
        if i1 != i0 + 1:
            raise ValueError("volumes are masked one per output file; got items %d..%d"
                             % (i0, i1))
        _check_mask_voxel_size(recipe, voxel_size, sources.paths[sources.file_ids[i0]])
        vol = sources.read_item(i0, nonfinite)
        _, warnings = recipe.build(vol.shape)
        write_mrc(out_path, recipe.apply(vol[None], first_index=i0)[0],
                  voxel_size=voxel_size, overwrite=overwrite)
        return warnings
    _check_mask_voxel_size(recipe, voxel_size, sources.paths[sources.file_ids[i0]])
    readers = _Readers(sources.paths, nonfinite=nonfinite)
    try:
        first = sources.read(i0, i0 + 1, readers)
        item_shape = first.shape[1:]
        _, warnings = recipe.build(item_shape)
        with atomic_output(out_path, overwrite=overwrite) as tmp, \
                MrcBlockWriter(tmp, (i1 - i0,) + tuple(item_shape), np.float32,
                               voxel_size=voxel_size, is_stack=True) as wr:
            block = _block_items(item_shape)

            def work(b0):
                b1 = min(b0 + block, i1)
                wr.write(b0 - i0, recipe.apply(sources.read(b0, b1, readers), first_index=b0))

            _run_blocks(work, list(range(i0, i1, block)), threads)
    finally:
        readers.close()
    return warnings


def _check_mask_voxel_size(recipe, voxel_size, first_path):
    """A created mask must have the voxel size of the images (the set's, else the first
    image file's header), within 1 %."""
    if recipe.mask_file is None:
        return
    vs = float(voxel_size or 0.0) or mrc_info(first_path).voxel_size[0]
    where = first_path if not voxel_size else "the images (%.4g A/px)" % vs
    check_same_grid(where, SimpleNamespace(shape=None, voxel_size=(vs,) * 3),
                    recipe.mask_file, mrc_info(recipe.mask_file), "mask file")


def source_item_shape(sources, k):
    """Numpy shape of item ``k`` of ``sources`` (``(y, x)`` images, ``(z, y, x)`` volumes),
    from its file's header."""
    shape = mrc_info(sources.paths[sources.file_ids[k]]).shape
    return tuple(shape) if sources.item_ndim == 3 else tuple(shape[1:])


def save_mask(recipe, shape, out_path, voxel_size=None, overwrite=False):
    """Write the mask ``recipe`` applies to an item of ``shape`` (numpy order) as a float32
    MRC (written under a temporary name and renamed): binary masks as 0/1, soft masks with
    their computed edge, a created mask as read. Returns ``out_path``.

    Raises
    ------
    MaskError
        the mask cannot be built for ``shape`` (e.g. a created mask of other dimensions).
    FileExistsError
        ``out_path`` exists and ``overwrite`` is False.
    """
    mask, _ = recipe.build(tuple(shape))
    return write_mrc(out_path, np.asarray(mask, dtype=np.float32), voxel_size=voxel_size,
                     overwrite=overwrite)
