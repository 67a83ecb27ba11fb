"""Page release for memory-mapped inputs: one rule for every reader.

A process that streams a memory-mapped file keeps every page it touched counted in its
resident memory until the map is closed, so streaming a 1.2 GB tomogram would make it "use"
1.2 GB. After a block has been read, :func:`release_pages` (NumPy memmap views, e.g.
``mrcfile.mmap(...).data``) or :func:`release_map_range` (a raw :class:`mmap.mmap`, as
:class:`cryoprocs.convert.mrc.MappedMrc` holds) hands its pages back with
``madvise(MADV_DONTNEED)`` (Linux ``madvise(2)``). The kernel keeps them in its page cache, so
reading them again is cheap, and file-backed shared mappings lose nothing: the data live in
the page cache, not in the process. Private copy-on-write maps (``numpy.memmap`` mode ``"c"``)
are left alone, since dropping their pages would discard changes.

Best effort: on systems without ``madvise`` these functions do nothing.
"""
import contextlib
import mmap
from typing import Optional

import numpy as np

__all__ = ["release_pages", "release_map_range"]


def release_map_range(mm: mmap.mmap, start: int, stop: int) -> None:
    """Drop the pages overlapping bytes ``start..stop-1`` of ``mm`` from this process.

    ``start`` is rounded down to a page boundary (``madvise`` needs it) and the range is
    clipped to the map; a partly covered page is released too (it is re-read from the page
    cache on the next access). OS errors are ignored.
    """
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    start, stop = max(0, int(start)), int(stop)
    if stop <= start:
        return
    a = (start // mmap.PAGESIZE) * mmap.PAGESIZE
    with contextlib.suppress(OSError, ValueError):
        mm.madvise(mmap.MADV_DONTNEED, a, stop - a)


def release_pages(array: np.ndarray, start: int = 0, stop: Optional[int] = None) -> None:
    """Drop the pages of elements ``start..stop-1`` of a flat (1D, contiguous) view of a
    ``numpy.memmap`` from this process; nothing for ordinary arrays.

    Parameters
    ----------
    array : numpy.ndarray
        1D view of a memory map (``memmap.reshape(-1)`` of a C-contiguous map keeps the map).
    start, stop : int
        Element range (``stop`` None: to the end).
    """
    mm = getattr(array, "_mmap", None)
    if mm is None or getattr(array, "mode", None) == "c":
        return
    stop = array.size if stop is None else int(stop)
    try:
        view = np.frombuffer(mm, dtype=np.uint8)
        base = view.ctypes.data
        del view
        offset = array.ctypes.data - base
    except (ValueError, TypeError, AttributeError):
        return
    item = array.itemsize
    release_map_range(mm, offset + int(start) * item, offset + stop * item)
