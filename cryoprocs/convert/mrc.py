"""MRC input/output shared by every kernel, protocol and CLI command.

Arrays are numpy ``[z, y, x]`` (volumes) or ``[n, y, x]`` (image stacks); x is the MRC column
(mrcfile's native order, no transposition). Voxel sizes are in Å.

Outputs are always written under a temporary name in the destination folder and renamed when
complete (:func:`atomic_output`), so a killed run never leaves a truncated file under the final
name, and inputs are opened read-only (``mrcfile.mmap(mode='r')``).
"""
import contextlib
import mmap
import os
import threading
import warnings
from typing import Iterable, Iterator, Optional, Sequence, Tuple, Union

import mrcfile
import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..kernels.pages import release_map_range
from . import outputs
from .finite import NONFINITE_POLICIES, FiniteGuard, NonFiniteError


__all__ = [
    "MrcFormatError", "MrcInfo", "mrc_info", "mmap_mrc", "open_mrc", "read_mrc",
    "atomic_output", "new_mrc", "finish_mrc", "write_mrc", "parse_location", "voxel_size_of",
    "MappedMrc", "MrcBlockWriter", "AtomicMrcWriter", "check_same_grid", "NonFiniteError",
    "FiniteGuard", "NONFINITE_POLICIES", "is_complete_mrc",
]

#: a voxel size in Å: one value, or (x, y, z)
VoxelSize = Union[float, Sequence[float]]


class MrcFormatError(ValueError):
    """A file is missing, not an MRC file, or has unexpected dimensions."""


class MrcInfo(tuple):
    """``(shape, voxel_size, dtype, is_stack)`` of an MRC file; shape in numpy order."""
    __slots__ = ()

    def __new__(cls, shape, voxel_size, dtype, is_stack):
        return super().__new__(cls, (tuple(shape), voxel_size, np.dtype(dtype), bool(is_stack)))

    shape = property(lambda self: self[0])
    voxel_size = property(lambda self: self[1])   # (x, y, z) in Å
    dtype = property(lambda self: self[2])
    is_stack = property(lambda self: self[3])


def parse_location(location: Union[str, Sequence]) -> Tuple[Optional[int], str]:
    """Split a Scipion/RELION image location into ``(index, path)``.

    ``"3@stack.mrcs"`` -> ``(3, "stack.mrcs")`` (1-based index); ``"vol.mrc"`` -> ``(None, ...)``;
    a trailing ``:mrc``/``:mrcs`` format hint is dropped.
    """
    index = None
    if isinstance(location, (tuple, list)):
        index, location = location
        index = None if index in (None, 0) else int(index)
    elif "@" in location:
        head, location = location.split("@", 1)
        index = int(head)
    for hint in (":mrcs", ":mrc"):
        if location.endswith(hint):
            location = location[: -len(hint)]
    return index, location


def _existing(path):
    """The file part of a location, checked to exist."""
    _, path = parse_location(path)
    if not os.path.exists(path):
        raise MrcFormatError("file not found: %s" % path)
    return path


def _quiet(func, *args, **kwargs):
    """Call an mrcfile function with its header RuntimeWarnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return func(*args, **kwargs)


def mmap_mrc(path: str, mode: str = "r", permissive: bool = False) -> "mrcfile.mrcmemmap.MrcMemmap":
    """Open an MRC file memory-mapped (default read-only) and return the mrcfile object.

    Files without the "MAP " id (some older writers) are accepted with a warning.
    The caller closes it; prefer :func:`open_mrc` in a ``with`` block.

    Raises
    ------
    MrcFormatError
        missing file, not MRC, or a header that does not match the file (:func:`mrc_info`).
    """
    path = _existing(path)
    if mode == "r":
        mrc_info(path)                     # the header must match the file (size, mode)
    try:
        return _quiet(mrcfile.mmap, path, mode=mode, permissive=permissive)
    except ValueError as exc:
        if not permissive:
            # Files written by some programs lack the "MAP " id; accept them, with a warning.
            try:
                mrc = _quiet(mrcfile.mmap, path, mode=mode, permissive=True)
            except Exception:
                mrc = None
            if mrc is not None and mrc.data is not None:
                warnings.warn("%s has a non-standard MRC header (%s); read in permissive mode"
                              % (path, exc))
                return mrc
            if mrc is not None:
                mrc.close()
        raise MrcFormatError("%s is not a readable MRC file: %s" % (path, exc)) from None


def voxel_size_of(mrc: "mrcfile.mrcobject.MrcObject") -> Tuple[float, float, float]:
    """Voxel size ``(x, y, z)`` in Å of an open mrcfile object (0 where unset)."""
    vs = mrc.voxel_size
    return (float(vs.x), float(vs.y), float(vs.z))


def _read_header_only(path):
    """The 1024-byte header (mrcfile's parsing: byte order from the machine stamp, checked
    against the mode) and the voxel size, without reading the extended header, whose size
    in a damaged header or a text file can be gigabytes."""
    from mrcfile.mrcinterpreter import MrcInterpreter
    with open(path, "rb") as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        interp = MrcInterpreter(permissive=True)
        interp._iostream = fh
        interp._read_header()
        return interp.header.copy(), voxel_size_of(interp)


#: MRC modes of complex data (rejected: cryoprocs reads real-valued images only)
COMPLEX_MODES = (3, 4)


def mrc_info(path: str) -> "MrcInfo":
    """Shape, voxel size, dtype and stack flag of an MRC file, reading only its header, after
    validating the header against the file: positive dimensions, a known real-valued mode
    (mrcfile's mode table), and a file size equal to the 1024-byte header + the extended
    header + the data the header describes (so a truncated file, a header with fewer or
    more sections than the file holds, or a mode that does not match the data, is an
    error before anything is read).

    Raises
    ------
    MrcFormatError
        missing file, a folder, not MRC, or a header that does not match the file (one
        line naming the file and the offending values).
    """
    path = _existing(path)
    if os.path.isdir(path):
        raise MrcFormatError("%s is a folder, not an MRC file" % path)
    size = os.path.getsize(path)
    if size < 1024:
        raise MrcFormatError("%s is not an MRC file: %d bytes, shorter than the 1024-byte MRC "
                             "header" % (path, size))
    try:
        h, vs = _read_header_only(path)
    except Exception as exc:
        raise MrcFormatError("%s is not a readable MRC file: %s" % (path, exc)) from None
    nx, ny, nz = int(h.nx), int(h.ny), int(h.nz)
    mode, nsymbt = int(h.mode), int(h.nsymbt)
    if min(nx, ny, nz) <= 0:
        raise MrcFormatError("%s: the MRC header gives dimensions (x, y, z) = (%d, %d, %d); "
                             "they must be positive (a damaged header, or not an MRC file)"
                             % (path, nx, ny, nz))
    if mode in COMPLEX_MODES:
        raise MrcFormatError("%s holds complex numbers (MRC mode %d); cryoprocs reads "
                             "real-valued images and volumes only" % (path, mode))
    try:
        dtype = mrcfile.utils.dtype_from_mode(mode)
    except ValueError:
        raise MrcFormatError("%s: MRC mode %d is not a known data type (a damaged header, or "
                             "not an MRC file)" % (path, mode)) from None
    if nsymbt < 0:
        raise MrcFormatError("%s: negative extended header size %d in the MRC header"
                             % (path, nsymbt))
    needed = 1024 + nsymbt + nx * ny * nz * dtype.itemsize
    if size != needed:
        raise MrcFormatError(
            "%s: the header describes %d x %d x %d voxels (x, y, z) of %s, %d bytes with the "
            "header, but the file has %d bytes (%s)"
            % (path, nx, ny, nz, dtype.name, needed, size,
               "a truncated file, or a header with too many sections or the wrong mode"
               if size < needed else
               "a header with too few sections or the wrong mode, or data appended"))
    shape = (nz, ny, nx)
    is_stack = path.endswith(".mrcs") or (int(h.ispg) == 0 and nz > 1)
    return MrcInfo(shape, vs, dtype, is_stack)


def is_complete_mrc(path: str, shape: Optional[Sequence[int]] = None,
                    modes: Optional[Iterable[int]] = None) -> bool:
    """True when ``path`` is a complete MRC file (:func:`mrc_info` validates its header
    against its size) of ``shape`` (numpy order) and, when given, one of the MRC ``modes``:
    what a resumed run checks before it reuses an output (a truncated file, or a few bytes
    of text under its name, is redone). An expected ``shape`` of 0 sections (the stack of a
    particle visible in no tilt image, which extraction with a minimum of 0 frames writes)
    is a header alone, with nz = 0 and the expected nx, ny and mode."""
    if shape is not None and int(shape[0]) == 0:
        return _is_empty_stack(path, shape, modes)
    try:
        info = mrc_info(path)
    except (MrcFormatError, OSError):
        return False
    if shape is not None and tuple(info.shape) != tuple(shape):
        return False
    return modes is None or int(mrcfile.utils.mode_from_dtype(info.dtype)) in modes


def _is_empty_stack(path, shape, modes=None):
    """:func:`is_complete_mrc` of an output of 0 sections (``shape`` = (0, ny, nx))."""
    try:
        size = os.path.getsize(path)
        h, _ = _read_header_only(path)
    except Exception:
        return False
    return (int(h.nz) == 0 and (int(h.ny), int(h.nx)) == tuple(int(v) for v in shape[1:])
            and int(h.nsymbt) >= 0 and size == 1024 + int(h.nsymbt)
            and (modes is None or int(h.mode) in modes))


def check_same_grid(path: str, info: "MrcInfo", other_path: str, other_info: "MrcInfo",
                    what: str = "mask", tol: float = 0.01) -> None:
    """A created mask (or any companion map) must have the dimensions of the image it goes
    with and, when both headers give one, the same voxel size within ``tol`` (1 %).

    ``info``/``other_info``: :class:`MrcInfo` (or anything with ``shape`` and ``voxel_size``;
    ``shape`` may be ``None`` to check the voxel size only).

    Raises
    ------
    MrcFormatError
        naming both files with their dimensions (x, y, z) or voxel sizes.
    """
    if info.shape is not None and tuple(info.shape) != tuple(other_info.shape):
        raise MrcFormatError(
            "%s %s has dimensions %s (x, y, z) but %s has %s"
            % (what, other_path, "x".join(map(str, tuple(other_info.shape)[::-1])), path,
               "x".join(map(str, tuple(info.shape)[::-1]))))
    a, b = float(info.voxel_size[0]), float(other_info.voxel_size[0])
    if a > 0 and b > 0 and abs(a - b) > tol * a:
        raise MrcFormatError(
            "voxel sizes differ by more than %g%%: %s has %.4g A, %s %s has %.4g A"
            % (tol * 100, path, a, what, other_path, b))


@contextlib.contextmanager
def open_mrc(path: str, permissive: bool = False) -> Iterator["mrcfile.mrcmemmap.MrcMemmap"]:
    """Context manager yielding a read-only memory-mapped mrcfile object.

    ``path`` may carry a Scipion ``index@`` prefix, which is ignored here (use
    :func:`read_mrc` to read one image of a stack).
    """
    mrc = mmap_mrc(path, "r", permissive)
    try:
        yield mrc
    finally:
        mrc.close()


def read_mrc(path: str, index: Optional[int] = None, dtype: Optional[DTypeLike] = None,
             permissive: bool = False, nonfinite: Optional[str] = None) -> np.ndarray:
    """Read an MRC file (or one 1-based ``index`` of a stack) into memory.

    Parameters
    ----------
    path : str
        File name, optionally ``"k@file.mrcs"``.
    index : int, optional
        1-based image index in a stack (overrides the ``k@`` prefix).
    dtype : numpy dtype, optional
        Cast the result (e.g. ``np.float32``).
    nonfinite : {None, "error", "replace"}
        Check for NaN / infinite voxels (:class:`FiniteGuard`); None: no check.

    Returns
    -------
    numpy.ndarray
        ``[z, y, x]`` / ``[n, y, x]`` data, or ``[y, x]`` for one stack image; a copy.

    Raises
    ------
    MrcFormatError
        unreadable file or index out of range; :class:`NonFiniteError` (policy "error").
    """
    loc_index, _ = parse_location(path)
    index = index if index is not None else loc_index
    with open_mrc(path, permissive) as mrc:
        data = mrc.data
        if index is not None:
            if data.ndim == 2:
                if index != 1:
                    raise MrcFormatError("%s holds one image; index %d requested" % (path, index))
            else:
                if not 1 <= index <= data.shape[0]:
                    raise MrcFormatError("index %d out of range 1..%d in %s"
                                         % (index, data.shape[0], path))
                data = data[index - 1]
        out = np.array(data)
        if nonfinite:
            out = FiniteGuard(parse_location(path)[1], mrc.data, nonfinite).check(out, True)
        return out.astype(dtype or out.dtype, copy=False)


def _discard_and_raise(tmp, path, exc):
    """Remove the temporary ``tmp`` of ``path`` and raise ``exc`` again (an OSError naming
    ``path`` instead of the temporary; see :func:`_with_filename`)."""
    outputs.discard_temp(tmp)
    named = _with_filename(exc, path)
    if named is not None:
        raise named from None
    raise exc


def _with_filename(exc, path):
    """An OSError without a file name gets ``path`` (so its one-line message names it)."""
    if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
        return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), path)
    return None


@contextlib.contextmanager
def atomic_output(path: str, overwrite: bool = True, suffix: str = "") -> Iterator[str]:
    """Yield a unique temporary path to write (``.NAME.<pid>.<random>.partial`` + ``suffix``,
    in the folder of ``path``); rename it to ``path`` only if the block succeeds.

    On an exception (or an interruption, see :mod:`cryoprocs.convert.outputs`) the
    temporary file is removed and ``path`` is left untouched. An ``OSError`` without a file
    name (e.g. "No space left on device" from a write) is re-raised naming ``path``.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    if not overwrite and os.path.lexists(path):
        raise FileExistsError("output %s exists; pass --overwrite to replace it" % path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = outputs.temp_path(path, suffix)
    try:
        yield tmp
        outputs.commit_temp(tmp, path)
    except BaseException as exc:
        _discard_and_raise(tmp, path, exc)


def new_mrc(path: str, shape: Sequence[int], dtype: DTypeLike = np.float32,
            voxel_size: Optional[VoxelSize] = None, origin: Optional[Sequence[float]] = None,
            is_stack: bool = False, overwrite: bool = True) -> "mrcfile.mrcmemmap.MrcMemmap":
    """Create an MRC file of ``shape`` and return it open for writing (``mrcfile.new_mmap``).

    The caller fills ``mrc.data`` (in slabs) and closes it. Used with :func:`atomic_output`
    for large outputs::

        with atomic_output(out) as tmp:
            mrc = new_mrc(tmp, shape, voxel_size=4.0)
            try:
                for z0 in range(0, nz, 32): mrc.data[z0:z0+32] = ...
            finally:
                finish_mrc(mrc)
    """
    mrc = mrcfile.new_mmap(path, shape=tuple(int(s) for s in shape),
                           mrc_mode=mrcfile.utils.mode_from_dtype(np.dtype(dtype)),
                           overwrite=overwrite)
    if is_stack:
        mrc.set_image_stack()          # before the voxel size: it resets mz to 1
    elif len(shape) == 3:
        mrc.set_volume()
    if voxel_size is not None:
        mrc.voxel_size = voxel_size
    if origin is not None:
        mrc.header.origin = tuple(float(o) for o in origin)
    return mrc


def finish_mrc(mrc: "mrcfile.mrcmemmap.MrcMemmap", stats: bool = True) -> None:
    """Update header statistics (min/max/mean/rms) and close a file from :func:`new_mrc`."""
    try:
        if stats:
            mrc.update_header_stats()
    finally:
        mrc.close()


def write_mrc(path: str, data: ArrayLike, voxel_size: Optional[VoxelSize] = None,
              origin: Optional[Sequence[float]] = None, is_stack: bool = False,
              overwrite: bool = True) -> str:
    """Write an array to ``path`` atomically (temporary name, then rename).

    Parameters
    ----------
    data : numpy.ndarray
        2D image, ``[z, y, x]`` volume or ``[n, y, x]`` stack (``is_stack=True``); float64 is
        stored as float32.
    voxel_size : float or (x, y, z), optional
        Å per voxel.
    origin : (x, y, z), optional
        MRC header origin in Å.
    """
    data = np.asarray(data)
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    with atomic_output(path, overwrite=overwrite) as tmp:
        with MrcBlockWriter(tmp, data.shape, data.dtype, voxel_size, origin, is_stack) as wr:
            wr.write(0, data.reshape((-1,) + data.shape[-2:]))
    return path


# --------------------------------------------------------------------------- streaming
# Block I/O with plain pread/pwrite: unlike a memory map, resident memory stays at one
# block, whatever the file size (mmap pages count in the process RSS once touched).

def _header(path):
    with _quiet(mrcfile.open, path, header_only=True, permissive=True) as mrc:
        return mrc.header.copy()


class MappedMrc:
    """A read-only memory map of the data of an MRC file, with page release.

    ``mrcfile.mmap`` maps files with ``numpy.memmap``: every page a read touches then stays
    counted in the process's resident memory until the map is closed, so streaming a
    1.2 GB tomogram makes the process "use" 1.2 GB. This class maps the data block with
    :mod:`mmap` and hands touched pages back to the page cache with
    ``madvise(MADV_DONTNEED)`` (:meth:`release`, done automatically by :meth:`read` and
    slicing); the kernel keeps them cached, so re-reading is cheap. Files are never written.

    Attributes
    ----------
    data : numpy.ndarray
        ``[z, y, x]`` (or ``[n, y, x]``) view of the file in its stored dtype and byte order
        (no copy); a single 2D image is ``[1, y, x]``.
    shape, dtype : tuple, numpy.dtype
        of ``data``.
    voxel_size, origin : (x, y, z) floats
        Å per voxel and the header origin in Å.
    is_stack : bool
        an image stack (``.mrcs`` or space group 0 with nz > 1).
    mz : int
        sections per volume (``< nz`` only for volume stacks, space group >= 401).

    nonfinite : {None, "error", "replace"}
        Check every block read for NaN / infinite values (:class:`FiniteGuard`, kept in
        :attr:`guard`); None: no check (e.g. files this run wrote itself).

    Raises
    ------
    MrcFormatError
        missing file, not MRC, or a header that does not match the file (:func:`mrc_info`);
        :class:`NonFiniteError` when a block read holds NaN / infinite values (policy
        "error").
    """

    def __init__(self, path: str, permissive: bool = True,
                 nonfinite: Optional[str] = None) -> None:
        path = _existing(path)
        info = mrc_info(path)                  # validates the header against the file size
        hdr = _header(path)
        self.path = path
        self.shape = info.shape
        self.dtype = mrcfile.utils.dtype_from_mode(int(hdr.mode)).newbyteorder(
            hdr.mode.dtype.byteorder)
        self.voxel_size = info.voxel_size
        self.origin = (float(hdr.origin.x), float(hdr.origin.y), float(hdr.origin.z))
        self.is_stack = info.is_stack
        mz = int(hdr.mz)
        self.mz = mz if 0 < mz < self.shape[0] and self.shape[0] % mz == 0 and \
            int(hdr.ispg) >= 401 else self.shape[0]
        self._offset = 1024 + int(hdr.nsymbt)
        self._section = self.shape[1] * self.shape[2] * self.dtype.itemsize
        self._fh = open(path, "rb")
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        self.data = np.ndarray(self.shape, dtype=self.dtype, buffer=self._mm,
                               offset=self._offset)
        self.guard = FiniteGuard(path, self.data, nonfinite, self.release) if nonfinite \
            else None

    def __len__(self):
        return self.shape[0]

    def release(self, z0: Optional[int] = None, z1: Optional[int] = None) -> None:
        """Drop the pages of sections ``z0 <= z < z1`` (default: all) from this process's
        resident set; the kernel keeps them in its page cache (best effort)."""
        z0 = 0 if z0 is None else max(0, int(z0))
        z1 = self.shape[0] if z1 is None else min(self.shape[0], int(z1))
        if z1 > z0:
            release_map_range(self._mm, self._offset + z0 * self._section,
                              self._offset + z1 * self._section)

    release_all = release

    def read(self, z0: int, z1: int, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Sections ``z0..z1-1`` copied into a native-byte-order array (or ``out``), then
        released from the process."""
        block = self.data[z0:z1]
        if out is None:
            out = np.empty(block.shape, dtype=self.dtype.newbyteorder("="))
        np.copyto(out, block, casting="unsafe")
        self.release(z0, z1)
        if self.guard is not None:
            out = self.guard.check(out, inplace=True)
        return out

    def read_sections(self, indices: ArrayLike) -> np.ndarray:
        """Sections at arbitrary 0-based ``indices`` (runs of consecutive ones read at once)."""
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices),) + tuple(self.shape[1:]),
                       dtype=self.dtype.newbyteorder("="))
        start = 0
        while start < len(indices):
            stop = start + 1
            while stop < len(indices) and indices[stop] == indices[stop - 1] + 1:
                stop += 1
            self.read(indices[start], indices[stop - 1] + 1, out=out[start:stop])
            start = stop
        return out

    def __getitem__(self, key):
        """``mapped[z0:z1, ...]`` -> a native-order copy; the sections read are released."""
        out = np.array(self.data[key])
        if not out.dtype.isnative:
            out = out.astype(out.dtype.newbyteorder("="))
        first = key[0] if isinstance(key, tuple) else key
        if isinstance(first, slice):
            z0, z1, _ = first.indices(self.shape[0])
            self.release(z0, z1)
        if self.guard is not None and isinstance(out, np.ndarray):
            out = self.guard.check(out, inplace=True)
        return out

    def full(self) -> np.ndarray:
        """The whole data as the read-only mapped view (no copy); with a non-finite check,
        the file is scanned first and, when values had to be replaced, an in-memory copy
        with the replacements is returned instead."""
        if self.guard is not None and self.guard.check_all():
            d = self.data
            return np.where(np.isfinite(d), d, self.guard.result[2]).astype(
                d.dtype.newbyteorder("="))
        return self.data

    def close(self) -> None:
        """Unmap and close the file (the data views become invalid)."""
        self.data = None
        if getattr(self, "_mm", None) is not None:
            try:
                self._mm.close()
            except BufferError:            # views of the data still alive: closed by GC
                pass
            self._mm = None
        if getattr(self, "_fh", None) is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MrcBlockWriter:
    """Write an MRC file section by section with ``os.pwrite`` (float32 by default).

    ``create=True`` makes the file (header, full size) with ``mrcfile.new_mmap``;
    ``create=False`` opens an existing one, e.g. a partial output being resumed by several
    steps. :meth:`close` writes the header statistics (min, max, mean, rms): from the
    blocks seen when this writer wrote every section, else by re-reading the file.
    """

    def __init__(self, path: str, shape: Optional[Sequence[int]] = None,
                 dtype: DTypeLike = np.float32, voxel_size: Optional[VoxelSize] = None,
                 origin: Optional[Sequence[float]] = None, is_stack: bool = False,
                 create: bool = True) -> None:
        if create:
            mrc = new_mrc(path, shape, dtype, voxel_size, origin, is_stack)
            mrc.close()
        hdr = _header(path)
        self.path = path
        self.shape = (int(hdr.nz), int(hdr.ny), int(hdr.nx))
        self.dtype = mrcfile.utils.dtype_from_mode(int(hdr.mode)).newbyteorder(
            hdr.mode.dtype.byteorder)
        self.offset = 1024 + int(hdr.nsymbt)
        self.section_bytes = int(self.shape[1] * self.shape[2] * self.dtype.itemsize)
        self._fd = os.open(path, os.O_RDWR)
        self._stats = [np.inf, -np.inf, 0.0, 0.0, 0]      # min, max, sum, sumsq, sections
        self._lock = threading.Lock()                     # write() may run in threads

    def write(self, i0: int, block: ArrayLike) -> None:
        """Write ``block`` (``(n, ny, nx)``) as sections ``i0..i0+n-1`` (thread-safe)."""
        native = self.dtype.newbyteorder("=")
        block = np.ascontiguousarray(block, dtype=native)
        if block.shape[1:] != self.shape[1:] or i0 < 0 or i0 + block.shape[0] > self.shape[0]:
            raise ValueError("block %s at section %d does not fit %s"
                             % (block.shape, i0, self.shape))
        flat = block.reshape(-1)
        bmin, bmax = float(flat.min()), float(flat.max())
        bsum = float(flat.sum(dtype=np.float64))
        bsq = float(np.dot(flat.astype(np.float64), flat.astype(np.float64))) \
            if flat.dtype.kind != "f" else float(np.einsum("i,i->", flat, flat, dtype=np.float64))
        if not self.dtype.isnative:
            block = block.byteswap()
        data = memoryview(block.reshape(-1).view(np.uint8))
        pos, done = self.offset + i0 * self.section_bytes, 0
        try:
            while done < len(data):
                done += os.pwrite(self._fd, data[done:], pos + done)
        except OSError as exc:
            raise (_with_filename(exc, outputs.final_name(self.path)) or exc) from None
        with self._lock:
            s = self._stats
            s[0], s[1] = min(s[0], bmin), max(s[1], bmax)
            s[2] += bsum
            s[3] += bsq
            s[4] += block.shape[0]

    def _recompute_stats(self, block=64):
        s = [np.inf, -np.inf, 0.0, 0.0, 0]
        with MappedMrc(self.path) as rd:
            step = max(1, (block * 1024 * 1024) // max(1, rd._section))
            for i0 in range(0, self.shape[0], step):
                b = rd.read(i0, min(i0 + step, self.shape[0]))
                s[0] = min(s[0], float(b.min()))
                s[1] = max(s[1], float(b.max()))
                s[2] += float(b.sum(dtype=np.float64))
                s[3] += float(np.square(b, dtype=np.float64).sum())
                s[4] += b.shape[0]
        return s

    def close(self, stats: bool = True) -> None:
        """Write the header statistics (with ``stats``) and close the file; idempotent."""
        if self._fd is None:
            return
        try:
            if stats:
                s = self._stats if self._stats[4] == self.shape[0] else self._recompute_stats()
                n = float(np.prod(self.shape))
                mean = s[2] / n
                hdr = _header(self.path)
                hdr.dmin, hdr.dmax, hdr.dmean = s[0], s[1], mean
                hdr.rms = float(np.sqrt(max(s[3] / n - mean * mean, 0.0)))
                os.pwrite(self._fd, hdr.tobytes(), 0)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.close(stats=exc_type is None)


class AtomicMrcWriter(MrcBlockWriter):
    """:class:`MrcBlockWriter` on the temporary name of ``path``, renamed by :meth:`commit`.

    :meth:`abort` (or an exception inside ``with``) removes the temporary file, so a killed
    or failed run never leaves a partial file under the final name.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False (checked at creation and at commit).
    """

    def __init__(self, path: str, shape: Sequence[int], voxel_size: Optional[VoxelSize] = None,
                 origin: Optional[Sequence[float]] = None, overwrite: bool = False,
                 dtype: DTypeLike = np.float32, is_stack: bool = False) -> None:
        if not overwrite and os.path.lexists(path):
            raise FileExistsError("output %s exists; pass overwrite to replace it" % path)
        self.final_path = path
        self.overwrite = overwrite
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = outputs.temp_path(path)
        try:
            super().__init__(tmp, shape, dtype, voxel_size, origin, is_stack)
        except BaseException as exc:
            _discard_and_raise(tmp, path, exc)

    @property
    def tmp(self) -> str:
        """The temporary file being written."""
        return self.path

    def finish(self) -> str:
        """Write the header statistics and close; the file keeps its temporary name (for a
        group commit, :func:`cryoprocs.convert.outputs.commit_group`). Returns it."""
        if self._fd is not None:
            self.close(stats=True)
        return self.path

    def commit(self) -> str:
        """Write the header statistics and rename the file to its final name; returns it."""
        if self._fd is None and not os.path.exists(self.path):
            return self.final_path
        try:
            self.finish()
            if not self.overwrite and os.path.lexists(self.final_path):
                raise FileExistsError("output %s appeared while writing; not replaced"
                                      % self.final_path)
            outputs.commit_temp(self.path, self.final_path)
        except BaseException:
            self.abort()
            raise
        return self.final_path

    def abort(self) -> None:
        """Remove the temporary file (the final name is never touched); never raises."""
        with contextlib.suppress(Exception):
            self.close(stats=False)

        outputs.discard_temp(self.path)

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            self.abort()
        else:
            self.commit()
