"""Page release of memory-mapped inputs (cryoprocs.kernels.pages): pages go back, values and
copy-on-write changes stay."""
import mmap

import numpy as np
import psutil

from cryoprocs.kernels.pages import release_map_range, release_pages


def _rss():
    return psutil.Process().memory_info().rss


def test_release_pages_returns_the_resident_memory_of_a_memmap(tmp_path):
    path = tmp_path / "a.raw"
    n = 16 << 20                                   # 64 MB of float32
    np.arange(n, dtype=np.float32).tofile(path)
    m = np.memmap(path, dtype=np.float32, mode="r", offset=0)
    flat = m.reshape(-1)
    before = _rss()
    total = float(np.asarray(flat[: n // 2]).sum(dtype=np.float64))    # touch 32 MB
    touched = _rss() - before
    release_pages(flat, 0, n // 2)
    after = _rss() - before
    assert touched > 24 << 20 and after < 4 << 20, (touched, after)
    assert float(np.asarray(flat[: n // 2]).sum(dtype=np.float64)) == total   # re-read
    release_pages(np.arange(10), 0, 5)             # ordinary array: nothing to do


def test_copy_on_write_maps_keep_their_changes(tmp_path):
    path = tmp_path / "c.raw"
    np.zeros(4 * mmap.PAGESIZE, np.uint8).tofile(path)
    m = np.memmap(path, dtype=np.uint8, mode="c")
    m[:] = 7
    release_pages(m.reshape(-1))
    assert np.all(m == 7)


def test_release_map_range_rounds_and_clips(tmp_path):
    path = tmp_path / "b.raw"
    np.ones(3 * mmap.PAGESIZE + 100, np.uint8).tofile(path)
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        release_map_range(mm, 100, 10 ** 9)        # unaligned start, stop beyond the end
        release_map_range(mm, 50, 10)              # empty range
        assert mm[:5] == b"\x01" * 5
        mm.close()
