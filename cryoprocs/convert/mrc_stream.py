"""Slab-wise MRC streaming with bounded resident memory (large tomograms).

Arrays are numpy ``[z, y, x]``; x is the MRC column. Voxel sizes and origins are in Å.

* :class:`MrcSlabReader` reads z-slabs of a memory-mapped MRC file (``mrcfile.mmap``, read
  only) and, after copying a slab, tells the kernel that its pages are no longer needed
  (``madvise(MADV_DONTNEED)``), so the process RSS holds the slab being processed, not the
  whole file. The file's page cache is unaffected.
* :class:`MrcSlabWriter` writes a float32 volume slab by slab with ``os.pwrite`` under the
  temporary name of :func:`cryoprocs.convert.mrc.partial_path`, so neither a full output array
  nor dirty mapped pages are held; header statistics (min/max/mean/rms) are accumulated from
  the slabs; :meth:`MrcSlabWriter.commit` renames the file into place, and
  :meth:`MrcSlabWriter.abort` (or an exception inside ``with``) removes it, so a killed or
  failed run never leaves a partial file under the final name.
"""
import contextlib
import mmap
import os
import warnings

import mrcfile
import numpy as np

from .mrc import MrcFormatError, mmap_mrc, partial_path, voxel_size_of

__all__ = ["MrcSlabReader", "MrcSlabWriter"]

_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)


class MrcSlabReader:
    """Read-only slab access to an MRC volume, ``reader[z0:z1]`` -> a copy ``[z, y, x]``.

    Parameters
    ----------
    path : str
        MRC file (``index@`` prefixes are not allowed: volumes only).
    permissive : bool
        accept non-standard headers (as :func:`cryoprocs.convert.mrc.mmap_mrc`).

    Attributes
    ----------
    shape : tuple of int
        ``(nz, ny, nx)``; a 2D file is seen as one slice ``(1, ny, nx)``.
    dtype : numpy.dtype
        stored data type (any MRC mode).
    voxel_size : tuple of float
        ``(x, y, z)`` in Å (0 where unset).
    origin : tuple of float
        MRC header origin ``(x, y, z)`` in Å.

    Raises
    ------
    MrcFormatError
        missing or unreadable file, or data of more than 3 dimensions.
    """

    def __init__(self, path, permissive=False):
        self.path = path
        self._mrc = mmap_mrc(path, "r", permissive)
        data = self._mrc.data
        if data is None or data.ndim not in (2, 3):
            self._mrc.close()
            raise MrcFormatError("%s does not hold a 2D image or 3D volume" % path)
        self._data = data if data.ndim == 3 else data[None]
        self.shape = tuple(int(s) for s in self._data.shape)
        self.dtype = self._data.dtype
        self.voxel_size = voxel_size_of(self._mrc)
        o = self._mrc.header.origin
        self.origin = (float(o.x), float(o.y), float(o.z))
        self.ndim = 3
        memmap = getattr(self._mrc, "_data", None)
        self._mm = getattr(memmap, "_mmap", None)
        # byte position of the data block inside the mmap object (np.memmap aligns its start)
        offset = getattr(memmap, "offset", None)
        self._start = None
        if self._mm is not None and offset is not None:
            self._start = offset % mmap.ALLOCATIONGRANULARITY
        self._plane_bytes = self.shape[1] * self.shape[2] * self.dtype.itemsize

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        """``reader[z0:z1(:step)]`` (any numpy index whose first item is a z slice) -> copy."""
        first = key[0] if isinstance(key, tuple) else key
        out = np.array(self._data[key])
        if isinstance(first, slice):
            z0, z1, _ = first.indices(self.shape[0])
            self.release(z0, z1)
        return out

    def release(self, z0, z1):
        """Drop the mapped pages of planes ``z0..z1-1`` from this process (best effort)."""
        if self._mm is None or self._start is None or _DONTNEED is None or z1 <= z0:
            return
        page = mmap.PAGESIZE
        a = self._start + z0 * self._plane_bytes
        b = self._start + z1 * self._plane_bytes
        a0 = a - a % page
        b1 = min(len(self._mm), b + (-b) % page)
        if b1 > a0:
            with contextlib.suppress(OSError, ValueError):
                self._mm.madvise(_DONTNEED, a0, b1 - a0)

    def release_all(self):
        self.release(0, self.shape[0])

    def full(self):
        """The whole volume as a read-only array view of the mapping (no copy)."""
        return self._data

    def close(self):
        self._mrc.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MrcSlabWriter:
    """Write a float32 MRC volume slab by slab; atomic commit.

    Parameters
    ----------
    path : str
        final file name; the data go to ``partial_path(path)`` until :meth:`commit`.
    shape : tuple of int
        ``(nz, ny, nx)``.
    voxel_size : float or (x, y, z), optional
        Å per voxel.
    origin : (x, y, z), optional
        MRC header origin in Å.
    overwrite : bool
        replace an existing ``path`` at commit time.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False (checked at creation and at commit).
    """

    def __init__(self, path, shape, voxel_size=None, origin=None, overwrite=False):
        if not overwrite and os.path.exists(path):
            raise FileExistsError("output %s exists; pass overwrite to replace it" % path)
        self.path = path
        self.tmp = partial_path(path)
        self.shape = tuple(int(s) for s in shape)
        self.overwrite = overwrite
        os.makedirs(os.path.dirname(self.tmp), exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mrc = mrcfile.new_mmap(self.tmp, shape=self.shape, mrc_mode=2, overwrite=True)
        try:
            mrc.set_volume()
            if voxel_size is not None:
                mrc.voxel_size = voxel_size
            if origin is not None:
                mrc.header.origin = tuple(float(o) for o in origin)
            self._offset = int(mrc.header.nbytes + mrc.header.nsymbt)
        finally:
            mrc.close()
        self._fd = os.open(self.tmp, os.O_WRONLY)
        self._plane_bytes = self.shape[1] * self.shape[2] * 4
        self._stats = []          # (min, max, sum, sumsq, n) per slab
        self._closed = False

    def write(self, z0, slab):
        """Write planes ``z0 .. z0 + len(slab) - 1``; thread-safe (positional writes)."""
        slab = np.ascontiguousarray(slab, dtype="<f4")
        if slab.shape[1:] != self.shape[1:] or z0 < 0 or z0 + slab.shape[0] > self.shape[0]:
            raise ValueError("slab of shape %s at z=%d does not fit volume %s"
                             % (slab.shape, z0, self.shape))
        view = memoryview(slab).cast("B")
        pos = self._offset + z0 * self._plane_bytes
        done = 0
        while done < len(view):
            done += os.pwrite(self._fd, view[done:], pos + done)
        flat = slab.ravel()
        self._stats.append((float(flat.min()), float(flat.max()),
                            float(flat.sum(dtype=np.float64)),
                            float(np.einsum("i,i->", flat, flat, dtype=np.float64)), flat.size))

    def _finish_header(self):
        os.close(self._fd)
        self._fd = None
        if not self._stats:
            return
        st = np.array(self._stats, dtype=np.float64)
        n = st[:, 4].sum()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with mrcfile.mmap(self.tmp, mode="r+") as mrc:
                mrc.header.dmin = st[:, 0].min()
                mrc.header.dmax = st[:, 1].max()
                mean = st[:, 2].sum() / n
                mrc.header.dmean = mean
                mrc.header.rms = float(np.sqrt(max(st[:, 3].sum() / n - mean * mean, 0.0)))

    def commit(self):
        """Finish the header and rename the temporary file to the final name."""
        if self._closed:
            return self.path
        self._finish_header()
        if not self.overwrite and os.path.exists(self.path):
            self.abort()
            raise FileExistsError("output %s appeared while writing; not replaced" % self.path)
        os.replace(self.tmp, self.path)
        self._closed = True
        return self.path

    def abort(self):
        """Remove the temporary file (the final name is never touched)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.tmp)
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.commit()
