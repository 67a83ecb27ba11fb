"""The OME-Zarr reader and writer (convert/zarr_image.py, zarr_write.py, images.py): levels,
voxel sizes, chunk-limited reads, and the commands that read images (convert, noise-fill,
pick, movie) giving the same numbers from OME-Zarr as from MRC; bad input: a store without
NGFF metadata, a missing scale level, an unreachable URL (one clear error, nothing
written)."""
import json
import os
import socket

import mrcfile
import numpy as np
import pytest

from cryoprocs import cli
from cryoprocs.convert.images import image_info, is_image_store, open_image, read_frame
from cryoprocs.convert.zarr_image import ZarrFormatError
from cryoprocs.tests import zarr_helpers

pytest.importorskip("ome_zarr")


@pytest.fixture
def vol(tmp_path):
    rng = np.random.default_rng(5)
    data = rng.standard_normal((12, 40, 52)).astype(np.float32)
    store = zarr_helpers.write_ngff(tmp_path / "v.zarr", data, 8.5, (4, 16, 16), levels=2,
                                    tilt_series=False)
    mrc = str(tmp_path / "v.mrc")
    with mrcfile.new(mrc) as m:
        m.set_data(data)
        m.voxel_size = 8.5
    return data, store, mrc


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_reader_levels_voxel_sizes_and_regions(vol):
    data, store, _ = vol
    assert is_image_store(store) and is_image_store(store + "/1") and is_image_store("s3://b/x")
    with open_image(store) as img:
        assert img.shape == (12, 40, 52) and img.dtype == np.float32
        assert img.voxel_size == (8.5, 8.5, 8.5) and img.level == "0"
        assert np.array_equal(img[:], data)
        assert np.array_equal(img[3:7, 5:30, 11:50], data[3:7, 5:30, 11:50])
        assert np.array_equal(img.read(2, 5), data[2:5])
        assert np.array_equal(img.read_sections([7, 1, 2]), data[[7, 1, 2]])
        buf = np.full((40, 52), np.nan, np.float32)
        read_frame(img, 6, (np.array([[20, 3]]), 10), out=buf)
        # only the chunks under the box: rows 0..15, columns 16..31
        assert np.array_equal(buf[0:16, 16:32], data[6, 0:16, 16:32])
        assert np.isnan(buf).sum() == 40 * 52 - 16 * 16
    with open_image(store, binning=2) as img:                    # the stored 2x level
        assert img.level == "1" and img.shape == (6, 20, 26)
        assert img.voxel_size == (17.0, 17.0, 17.0)
        assert np.array_equal(img[:], data[::2, ::2, ::2])
    with open_image(store, binning=3) as img:                    # none: level 0
        assert img.level == "0"
    assert image_info(store + "/1").shape == (6, 20, 26)


def test_writer_is_read_by_ome_zarr(tmp_path, vol):
    data, _, mrc = vol
    out = str(tmp_path / "w.zarr")
    assert cli.main(["convert", mrc, out]) == 0
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    node = list(Reader(parse_url(out))())[0]
    assert np.array_equal(np.asarray(node.data[0]), data)
    scale = node.metadata["coordinateTransformations"][0][0]["scale"]
    np.testing.assert_allclose(scale, [8.5] * 3)
    assert cli.main(["convert", out, str(tmp_path / "back.mrc")]) == 0
    with mrcfile.open(str(tmp_path / "back.mrc")) as m:
        assert np.array_equal(m.data, data) and float(m.voxel_size.x) == 8.5
    assert cli.main(["convert", mrc, out]) == 2                  # exists: --overwrite


def test_noise_fill_pick_and_movie_read_zarr_like_mrc(tmp_path, vol):
    data, store, mrc = vol
    mask = np.zeros_like(data)
    mask[4:8, 10:25, 12:30] = 1.0
    mmrc = str(tmp_path / "m.mrc")
    with mrcfile.new(mmrc) as m:
        m.set_data(mask)
        m.voxel_size = 8.5
    mz = zarr_helpers.write_ngff(tmp_path / "m.zarr", mask, 8.5, (4, 16, 16), tilt_series=False)
    outs = {}
    for label, t, m in (("mrc", mrc, mmrc), ("zarr", store, mz)):
        out = str(tmp_path / ("nf_%s.mrc" % label))
        assert cli.main(["noise-fill", "--input_tomo", t, "--input_mask", m,
                         "--output_tomo", out, "--expand_pixels", "2", "--seed", "3"]) == 0
        outs[label] = mrcfile.read(out)
    assert np.array_equal(outs["mrc"], outs["zarr"])
    # an OME-Zarr output (by its name) holds the same numbers
    zout = str(tmp_path / "nf.zarr")
    assert cli.main(["noise-fill", "--input_tomo", store, "--input_mask", mz,
                     "--output_tomo", zout, "--expand_pixels", "2", "--seed", "3"]) == 0
    with open_image(zout) as img:
        assert np.array_equal(img[:], outs["mrc"]) and img.voxel_size[0] == 8.5
    # peak picking on score / angle maps
    angles = np.zeros_like(data)
    amrc, az = str(tmp_path / "a.mrc"), zarr_helpers.write_ngff(tmp_path / "a.zarr", angles, 8.5,
                                                                (4, 16, 16), tilt_series=False)
    with mrcfile.new(amrc) as m:
        m.set_data(angles)
    alist = str(tmp_path / "angles.csv")
    with open(alist, "w") as fh:
        fh.write("0,0,0\n")
    picks = {}
    for label, s, a in (("mrc", mrc, amrc), ("zarr", store, az)):
        out = str(tmp_path / ("p_%s.csv" % label))
        assert cli.main(["pick", "--scores", s, "--angles", a, "--angle-list", alist,
                         "--min-distance", "3", "--threshold-mode", "sigma", "--sigma", "2",
                         "--output", out]) == 0
        picks[label] = open(out).read()
    assert picks["mrc"] == picks["zarr"] and picks["mrc"].count("\n") > 5
    # movie frames (PNG) from the OME-Zarr equal those from the MRC
    frames = {}
    for label, src in (("mrc", mrc), ("zarr", store)):
        d = str(tmp_path / ("mov_" + label))
        assert cli.main(["movie", src, d, "--codec", "png"]) == 0
        fdir = os.path.join(d, os.listdir(d)[0])
        frames[label] = sorted(open(os.path.join(fdir, f), "rb").read()
                               for f in os.listdir(fdir))
    assert frames["mrc"] == frames["zarr"]


def test_bad_input_one_error_nothing_written(tmp_path, capsys):
    import zarr
    # a Zarr store without NGFF metadata
    plain = str(tmp_path / "plain.zarr")
    zarr.save_array(zarr.storage.DirectoryStore(plain + "/0"), np.zeros((2, 4, 4), "f4"))
    with pytest.raises(ZarrFormatError, match="no OME-NGFF metadata"):
        open_image(plain)
    out = str(tmp_path / "o.mrc")
    assert cli.main(["convert", plain, out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no OME-NGFF metadata" in err[0]
    assert not os.path.exists(out)
    # a missing scale level: asked for, or listed in the metadata but absent
    store = zarr_helpers.write_ngff(tmp_path / "s.zarr", np.ones((2, 8, 8), "f4"), 5.0, (1, 8, 8))
    assert cli.main(["convert", store + "/3", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no scale level '3' (levels: 0)" in err[0]
    attrs = json.load(open(os.path.join(store, ".zattrs")))
    ds = attrs["multiscales"][0]["datasets"]
    ds.append({"path": "1", "coordinateTransformations": [{"type": "scale",
                                                           "scale": [5.0, 10.0, 10.0]}]})
    json.dump(attrs, open(os.path.join(store, ".zattrs"), "w"))
    assert cli.main(["convert", store + "/1", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scale level '1' listed in the multiscales metadata cannot be " \
        "opened" in err[0]
    assert not os.path.exists(out)
    # an unreachable URL
    url = "http://127.0.0.1:%d/TS_01.zarr" % _free_port()
    assert cli.main(["convert", url, out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read %s/.zattrs" % url in err[0]
    assert not os.path.exists(out)


def test_extract_bad_tilt_series_store_nothing_written(tmp_path, capsys):
    """A RELION project whose tilt series URL is unreachable: one error, no output."""
    from cryoprocs.tests import relion5_reference as REF
    pack = REF.pack_dir()
    url = "http://127.0.0.1:%d/TS_01.zarr" % _free_port()
    proj = zarr_helpers.zarr_project(pack, tmp_path / "p", chunks=(1, 64, 64), store_url=url)
    out = os.path.join(proj, "Extract", "j")
    assert cli.main(["extract", "--particles", os.path.join(proj, "particles.star"),
                     "--tomograms", os.path.join(proj, "tomograms.star"), "--project-dir",
                     proj, "--box-size", "32", "--bin", "2", "--output-dir", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read %s/.zattrs" % url in err[0] and "TS_01" in err[0]
    assert not os.path.exists(out)
