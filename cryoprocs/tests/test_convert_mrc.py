"""MRC I/O: memory-mapped reads with page release, block writes, atomic outputs."""
import os

import mrcfile
import numpy as np
import pytest

from cryoprocs.convert.mrc import (AtomicMrcWriter, MappedMrc, MrcBlockWriter, MrcFormatError,
                                   mrc_info, read_mrc, write_mrc)


def test_block_writer_resumed_by_parts_recomputes_header_stats(tmp_path):
    a = np.random.default_rng(0).normal(size=(7, 5, 6)).astype(np.float32)
    path = str(tmp_path / "s.mrcs")
    MrcBlockWriter(path, a.shape, voxel_size=2.0, is_stack=True).close(stats=False)
    for i0, i1 in ((4, 7), (0, 4)):              # two "steps", in any order
        w = MrcBlockWriter(path, create=False)
        w.write(i0, a[i0:i1])
        w.close(stats=False)
    MrcBlockWriter(path, create=False).close(stats=True)   # saw no block: re-reads the file
    with mrcfile.open(path) as m:
        np.testing.assert_array_equal(m.data, a)
        assert m.is_image_stack() and m.voxel_size.x == pytest.approx(2.0)
        assert m.voxel_size.z == pytest.approx(2.0)
        assert float(m.header.dmin) == float(a.min()) and float(m.header.dmax) == float(a.max())
        assert float(m.header.dmean) == pytest.approx(float(a.mean()), rel=1e-5)
        assert float(m.header.rms) == pytest.approx(float(a.std()), rel=1e-5)


def test_mapped_reader_native_copies_and_sections(tmp_path):
    a = np.random.default_rng(1).normal(size=(6, 4, 5)).astype(np.float32)
    big = str(tmp_path / "be.mrc")
    with mrcfile.new(big) as m:
        m.set_data(a.astype(">f4"))
        m.voxel_size = 3.0
    with MappedMrc(big) as r:
        assert r.shape == a.shape and not r.dtype.isnative
        out = r.read(1, 4)
        assert out.dtype == np.float32 and out.dtype.isnative
        np.testing.assert_array_equal(out, a[1:4])
        np.testing.assert_array_equal(r.read_sections([5, 0, 1, 2]), a[[5, 0, 1, 2]])
        np.testing.assert_array_equal(r[2:6:2], a[2:6:2])
        r.release()                                  # pages dropped, data still readable
        np.testing.assert_array_equal(r.read(0, 6), a)
        assert r.voxel_size == (3.0, 3.0, 3.0)


def test_write_mrc_is_atomic_and_checks_files(tmp_path):
    path = str(tmp_path / "v.mrc")
    write_mrc(path, np.ones((3, 4, 5)), voxel_size=1.5, origin=(1, 2, 3))
    assert mrc_info(path).shape == (3, 4, 5)
    assert read_mrc(path).dtype == np.float32
    with pytest.raises(FileExistsError):
        write_mrc(path, np.zeros((2, 2, 2)), overwrite=False)
    np.testing.assert_array_equal(read_mrc(path), 1.0)
    with pytest.raises(RuntimeError):
        with AtomicMrcWriter(path, (3, 4, 5), overwrite=True) as w:
            w.write(0, np.zeros((1, 4, 5)))
            raise RuntimeError("killed")
    np.testing.assert_array_equal(read_mrc(path), 1.0)
    assert sorted(os.listdir(tmp_path)) == ["v.mrc"]      # no temporary, no lock file
    bad = str(tmp_path / "short.mrc")
    with open(path, "rb") as src, open(bad, "wb") as dst:
        dst.write(src.read()[:-8])                  # truncated data block
    with pytest.raises(MrcFormatError, match="truncated"):
        MappedMrc(bad)
