"""Read small regions of large MRC stacks and volumes through a memory map, without keeping
the touched pages in the process's resident memory.

``mrcfile.mmap`` maps the file with ``numpy.memmap``; every page a gather touches then stays
counted in the process's RSS until the map is closed, so cutting boxes from every frame of a
1.4 GB tilt-series pair makes the process "use" 1.4 GB. :class:`MappedMrc` maps the data
read-only with :mod:`mmap`, exposes it as a NumPy array ``[z, y, x]`` (or ``[n, y, x]``), and
:meth:`MappedMrc.release` hands touched pages back to the page cache
(``madvise(MADV_DONTNEED)``; the data stay cached by the kernel, so re-reading is cheap).
Inputs are never written.
"""
import mmap
import os

import mrcfile
import numpy as np

from .mrc import MrcFormatError, parse_location

__all__ = ["MappedMrc"]

_PAGE = mmap.PAGESIZE


class MappedMrc:
    """A read-only memory map of the data block of an MRC file.

    Attributes
    ----------
    data : numpy.ndarray
        ``[z, y, x]`` view of the file (no copy); for a single image ``[1, y, x]``.
    voxel_size : (x, y, z) floats in Å.
    path : str

    Raises
    ------
    MrcFormatError
        missing file, not MRC, or a file shorter than its header says.
    """

    def __init__(self, path):
        _, path = parse_location(path)
        self.path = path
        if not os.path.exists(path):
            raise MrcFormatError("file not found: %s" % path)
        try:
            with mrcfile.open(path, header_only=True, permissive=True) as mrc:
                h = mrc.header
                shape = (int(h.nz), int(h.ny), int(h.nx))
                dtype = mrcfile.utils.dtype_from_mode(int(h.mode)).newbyteorder(
                    mrcfile.utils.byte_order_from_machine_stamp(h.machst))
                offset = 1024 + int(h.nsymbt)
                vs = mrc.voxel_size
                self.voxel_size = (float(vs.x), float(vs.y), float(vs.z))
        except Exception as exc:
            raise MrcFormatError("%s is not a readable MRC file: %s" % (path, exc)) from None
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if min(shape) <= 0 or os.path.getsize(path) < offset + nbytes:
            raise MrcFormatError("%s: header dimensions (x, y, z) = %s do not fit the file size "
                                 "%d bytes" % (path, shape[::-1], os.path.getsize(path)))
        self._fh = open(path, "rb")
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        self._offset = offset
        self.data = np.ndarray(shape, dtype=dtype, buffer=self._mm, offset=offset)
        self.shape = shape
        self.dtype = dtype

    def release(self, z0=None, z1=None):
        """Drop the pages of sections ``z0 <= z < z1`` (default: all) from this process's
        resident set; the kernel keeps them in its page cache."""
        if self._mm is None or not hasattr(self._mm, "madvise"):
            return
        nz, ny, nx = self.shape
        sec = ny * nx * self.dtype.itemsize
        z0 = 0 if z0 is None else max(0, int(z0))
        z1 = nz if z1 is None else min(nz, int(z1))
        if z1 <= z0:
            return
        start = self._offset + z0 * sec
        stop = self._offset + z1 * sec
        a = (start // _PAGE) * _PAGE
        try:
            self._mm.madvise(mmap.MADV_DONTNEED, a, stop - a)
        except (OSError, ValueError):       # pragma: no cover - platform without madvise
            pass

    def close(self):
        self.data = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:             # views of the data still alive: closed by GC
                pass
            self._mm = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
