"""MRC input/output shared by every kernel, protocol and CLI command.

Arrays are numpy ``[z, y, x]`` (volumes) or ``[n, y, x]`` (image stacks); x is the MRC column
(mrcfile's native order, no transposition). Voxel sizes are in Å.

Outputs are always written under a temporary name in the destination folder and renamed when
complete (:func:`atomic_output`), so a killed run never leaves a truncated file under the final
name, and inputs are opened read-only (``mrcfile.mmap(mode='r')``).
"""
import contextlib
import os
import warnings

import mrcfile
import numpy as np

__all__ = [
    "MrcFormatError", "MrcInfo", "mrc_info", "mmap_mrc", "open_mrc", "read_mrc", "partial_path",
    "atomic_output", "new_mrc", "finish_mrc", "write_mrc", "parse_location", "voxel_size_of",
]

MRC_EXTENSIONS = (".mrc", ".mrcs", ".map", ".rec", ".st", ".ali", ".mrc:mrcs", ".mrc:mrc")


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


def parse_location(location):
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


def mmap_mrc(path, mode="r", permissive=False):
    """Open an MRC file memory-mapped (default read-only) and return the mrcfile object.

    Files without the "MAP " id (some older writers) are accepted with a warning.
    The caller closes it; prefer :func:`open_mrc` in a ``with`` block.

    Raises
    ------
    MrcFormatError
        missing file or not MRC.
    """
    _, path = parse_location(path)
    if not os.path.exists(path):
        raise MrcFormatError("file not found: %s" % path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return mrcfile.mmap(path, mode=mode, permissive=permissive)
    except ValueError as exc:
        if not permissive:
            # Files written by some programs lack the "MAP " id; accept them, with a warning.
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    mrc = mrcfile.mmap(path, mode=mode, permissive=True)
            except Exception:
                mrc = None
            if mrc is not None and mrc.data is not None:
                warnings.warn("%s has a non-standard MRC header (%s); read in permissive mode"
                              % (path, exc))
                return mrc
            if mrc is not None:
                mrc.close()
        raise MrcFormatError("%s is not a readable MRC file: %s" % (path, exc)) from None


def voxel_size_of(mrc):
    """Voxel size ``(x, y, z)`` in Å of an open mrcfile object (0 where unset)."""
    vs = mrc.voxel_size
    return (float(vs.x), float(vs.y), float(vs.z))


def mrc_info(path):
    """Shape, voxel size, dtype and stack flag of an MRC file, reading only its header.

    Raises
    ------
    MrcFormatError
        missing file or not MRC.
    """
    _, path = parse_location(path)
    if not os.path.exists(path):
        raise MrcFormatError("file not found: %s" % path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with mrcfile.open(path, header_only=True, permissive=True) as mrc:
                h = mrc.header
                shape = (int(h.nz), int(h.ny), int(h.nx))
                dtype = mrcfile.utils.dtype_from_mode(int(h.mode))
                needed = 1024 + int(h.nsymbt) + int(np.prod(shape)) * dtype.itemsize
                if min(shape) <= 0 or os.path.getsize(path) < needed:
                    raise ValueError("header dimensions %s do not fit the file size"
                                     % (shape[::-1],))
                is_stack = path.endswith(".mrcs") or (int(h.ispg) == 0 and shape[0] > 1)
                return MrcInfo(shape, voxel_size_of(mrc), dtype, is_stack)
    except Exception as exc:
        raise MrcFormatError("%s is not a readable MRC file: %s" % (path, exc)) from None


@contextlib.contextmanager
def open_mrc(path, permissive=False):
    """Context manager yielding a read-only memory-mapped mrcfile object.

    ``path`` may carry a Scipion ``index@`` prefix, which is ignored here (use
    :func:`read_mrc` to read one image of a stack).
    """
    mrc = mmap_mrc(path, "r", permissive)
    try:
        yield mrc
    finally:
        mrc.close()


def read_mrc(path, index=None, dtype=None, permissive=False):
    """Read an MRC file (or one 1-based ``index`` of a stack) into memory.

    Parameters
    ----------
    path : str
        File name, optionally ``"k@file.mrcs"``.
    index : int, optional
        1-based image index in a stack (overrides the ``k@`` prefix).
    dtype : numpy dtype, optional
        Cast the result (e.g. ``np.float32``).

    Returns
    -------
    numpy.ndarray
        ``[z, y, x]`` / ``[n, y, x]`` data, or ``[y, x]`` for one stack image; a copy.
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
        return np.array(data, dtype=dtype or data.dtype)


def partial_path(path):
    """Temporary name used while ``path`` is being written (same folder, hidden)."""
    head, tail = os.path.split(os.path.abspath(path))
    return os.path.join(head, ".%s.partial" % tail)


@contextlib.contextmanager
def atomic_output(path, overwrite=True):
    """Yield a temporary path to write; rename it to ``path`` only if the block succeeds.

    On an exception the temporary file is removed and ``path`` is left untouched.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    if not overwrite and os.path.exists(path):
        raise FileExistsError("output %s exists; pass overwrite to replace it" % path)
    tmp = partial_path(path)
    os.makedirs(os.path.dirname(tmp), exist_ok=True)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def new_mrc(path, shape, dtype=np.float32, voxel_size=None, origin=None, is_stack=False,
            overwrite=True):
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


def finish_mrc(mrc, stats=True):
    """Update header statistics (min/max/mean/rms) and close a file from :func:`new_mrc`."""
    try:
        if stats:
            mrc.update_header_stats()
    finally:
        mrc.close()


def write_mrc(path, data, voxel_size=None, origin=None, is_stack=False, overwrite=True):
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
        mrc = new_mrc(tmp, data.shape, data.dtype, voxel_size, origin, is_stack)
        try:
            mrc.data[...] = data
        finally:
            finish_mrc(mrc)
    return path
