"""RELION 5 extraction and reconstruction on a project whose tilt series is OME-Zarr (local,
and served over HTTP from 127.0.0.1): the same numbers as from the MRC stack, bit for bit,
reading only the chunks under the particle boxes."""
import os

import mrcfile
import numpy as np
import pytest
import starfile

from cryoprocs.cli import main
from cryoprocs.pipelines.extract import Stack2DJob, Stack2DSettings
from cryoprocs.pipelines.reconstruct import ReconstructJob, ReconstructSettings
from cryoprocs.tests import relion5_reference as REF
from cryoprocs.tests import zarr_helpers

pytest.importorskip("ome_zarr")


def _extract(proj, out, settings):
    job = Stack2DJob(os.path.join(proj, "particles.star"), os.path.join(proj, "tomograms.star"),
                     out, settings, project_dir=proj)
    return job.run(threads=1)


def _assert_same_stacks(a_dir, b_dir, n=None):
    a, b = zarr_helpers.read_stacks(a_dir), zarr_helpers.read_stacks(b_dir)
    assert sorted(a) == sorted(b)
    if n is not None:
        assert len(a) == n
    for k in a:
        assert a[k][0].dtype == b[k][0].dtype
        assert np.array_equal(a[k][0], b[k][0]), k          # bit for bit
        assert a[k][1] == b[k][1]


@pytest.mark.parametrize("micrograph_names", [True, False],
                         ids=["rlnMicrographName", "rlnTomoTiltSeriesName"])
def test_extract_zarr_equals_mrc(tmp_path, micrograph_names):
    pack = REF.pack_dir()
    mrc = zarr_helpers.mrc_project(pack, tmp_path / "mrc")
    zproj = zarr_helpers.zarr_project(pack, tmp_path / "zarr", chunks=(1, 64, 64), levels=2,
                                      micrograph_names=micrograph_names)
    for box, crop, binning in ((32, 32, 2), (64, 48, 1)):
        s = Stack2DSettings(box=box, crop=crop, binning=binning)
        ra = _extract(mrc, os.path.join(mrc, "Extract/a%d" % box), s)
        rb = _extract(zproj, os.path.join(zproj, "Extract/a%d" % box), s)
        assert ra == rb
        _assert_same_stacks(os.path.join(mrc, "Extract/a%d" % box),
                            os.path.join(zproj, "Extract/a%d" % box), n=ra["kept"])
        pa = starfile.read(os.path.join(mrc, "Extract/a%d/particles.star" % box),
                           always_dict=True)["particles"]
        pb = starfile.read(os.path.join(zproj, "Extract/a%d/particles.star" % box),
                           always_dict=True)["particles"]
        assert pa.drop(columns="rlnImageName").equals(pb.drop(columns="rlnImageName"))
    # and the stacks still match RELION's reference (c1: box 32, bin 2)
    res = REF.compare_stacks(os.path.join(zproj, "Extract/a32"), REF.cases()["c1"])
    assert res["worst_units"] <= 16


def test_reconstruct_zarr_equals_mrc(tmp_path):
    pack = REF.pack_dir()
    mrc = zarr_helpers.mrc_project(pack, tmp_path / "mrc")
    zproj = zarr_helpers.zarr_project(pack, tmp_path / "zarr", chunks=(1, 48, 80), levels=1)
    maps = {}
    for name, proj in (("mrc", mrc), ("zarr", zproj)):
        out = os.path.join(proj, "Reconstruct")
        job = ReconstructJob(os.path.join(proj, "particles.star"),
                             os.path.join(proj, "tomograms.star"), out,
                             ReconstructSettings(box=32, binning=2, symmetry="C1"),
                             project_dir=proj)
        job.run(threads=2)
        maps[name] = {}
        for f in ("merged.mrc", "half1.mrc", "half2.mrc"):
            with mrcfile.open(os.path.join(out, f)) as m:
                maps[name][f] = (np.array(m.data), m.voxel_size.copy())
    for f in maps["mrc"]:
        assert np.array_equal(maps["mrc"][f][0], maps["zarr"][f][0]), f
        assert maps["mrc"][f][1] == maps["zarr"][f][1]
    assert np.abs(maps["zarr"]["merged.mrc"][0]).max() > 0


def test_cli_extract_zarr(tmp_path, monkeypatch):
    """The command line on the OME-Zarr project (paths relative to the project)."""
    pack = REF.pack_dir()
    zproj = zarr_helpers.zarr_project(pack, tmp_path / "zarr", chunks=(1, 128, 128), levels=1)
    monkeypatch.chdir(zproj)
    assert main(["extract", "--particles", "particles.star", "--tomograms", "tomograms.star",
                 "--box-size", "32", "--bin", "2", "--output-dir", "Extract/job1/"]) == 0
    res = REF.compare_stacks(os.path.join(zproj, "Extract/job1"), REF.cases()["c1"])
    assert res["worst_units"] <= 16


def test_http_extraction_reads_only_the_boxes(tmp_path):
    """Five particles extracted from the store served over HTTP: the same stacks as the
    local read, and at most 10 % of the store's bytes fetched (counted by the server)."""
    pack = REF.pack_dir()
    five = starfile.read(os.path.join(pack, "particles.star"),
                         always_dict=True)["particles"].iloc[:5].reset_index(drop=True)
    local = zarr_helpers.zarr_project(pack, tmp_path / "local", chunks=(1, 16, 16), levels=2,
                                      particles=five)
    store = os.path.join(local, "tiltseries", "TS_01.zarr")
    total, level0 = zarr_helpers.store_bytes(store), zarr_helpers.store_bytes(store, "0")
    s = Stack2DSettings(box=16, crop=16, binning=1)
    ra = _extract(local, os.path.join(local, "Extract/j"), s)
    assert ra["kept"] == 5
    with zarr_helpers.serve(os.path.join(local, "tiltseries")) as (url, counter):
        remote = zarr_helpers.zarr_project(pack, tmp_path / "remote", chunks=(1, 16, 16), levels=2,
                                           particles=five, store_url=url + "/TS_01.zarr")
        rb = _extract(remote, os.path.join(remote, "Extract/j"), s)
        served = counter["bytes"]
    assert ra == rb
    _assert_same_stacks(os.path.join(local, "Extract/j"), os.path.join(remote, "Extract/j"),
                        n=5)
    frac = served / float(total)
    print("served %d of %d store bytes (%.1f %%; level 0: %.1f %%) in %d requests"
          % (served, total, 100 * frac, 100 * served / level0, counter["requests"]))
    assert 0 < served <= 0.10 * total
    # no chunk is fetched twice, and only chunks under the boxes: a 16-px box on 16-px chunks
    # meets at most 2 x 2 chunks per tilt image (a count, not bytes: the repository subset's
    # tilt series has zeroed pixels, whose chunks compress to almost nothing)
    chunk_paths = [p for p in counter["paths"] if not p.endswith((".zattrs", ".zarray",
                                                                  ".zgroup"))]
    assert len(chunk_paths) == len(set(chunk_paths))
    import zarr
    level = zarr.open(store, mode="r")["0"]
    n_tilts, ny, nx = level.shape
    n_chunks0 = n_tilts * -(-ny // level.chunks[1]) * -(-nx // level.chunks[2])
    assert len(chunk_paths) <= 5 * n_tilts * 4
    assert len(chunk_paths) <= 0.10 * n_chunks0, (len(chunk_paths), n_chunks0)


@pytest.mark.parametrize("where", ["in the boxes", "outside the boxes"])
def test_local_zarr_nonfinite_pixels_are_checked_where_boxes_are_read(tmp_path, where):
    """A local OME-Zarr tilt series is checked for NaN / infinite pixels in the boxes read,
    as a remote one, and is not decompressed whole beforehand: NaN under the boxes is an
    error naming the store and the section (or replaced with --replace-nonfinite: finite
    stacks, the other frames unchanged); NaN where no box reads gives the MRC results."""
    import zarr
    from cryoprocs.convert.finite import NonFiniteError
    pack = REF.pack_dir()
    zproj = zarr_helpers.zarr_project(pack, tmp_path / "zarr", chunks=(1, 32, 32))
    clean = zarr_helpers.zarr_project(pack, tmp_path / "clean", chunks=(1, 32, 32))
    s = Stack2DSettings(box=32, crop=32, binning=2)
    ref = _extract(clean, os.path.join(clean, "Extract/j"), s)
    level = zarr.open(os.path.join(zproj, "tiltseries", "TS_01.zarr"), mode="r+")["0"]
    frame = level[20]
    if where == "in the boxes":
        frame[64:192, :] = np.nan                # a band across the image's middle half
    else:
        frame[:4, :4] = np.nan                   # a corner no 64-px box reaches
    level[20] = frame
    out = os.path.join(zproj, "Extract/j")
    if where == "outside the boxes":
        assert _extract(zproj, out, s) == ref
        _assert_same_stacks(out, os.path.join(clean, "Extract/j"), n=ref["kept"])
        return
    with pytest.raises(NonFiniteError, match=r"TS_01\.zarr.*section 20"):
        _extract(zproj, out, s)
    job = Stack2DJob(os.path.join(zproj, "particles.star"), os.path.join(zproj, "tomograms.star"),
                     out, s, project_dir=zproj, nonfinite="replace")
    assert job.run(threads=1) == ref
    got, exp = zarr_helpers.read_stacks(out), zarr_helpers.read_stacks(os.path.join(clean,
                                                                                   "Extract/j"))
    assert sorted(got) == sorted(exp)
    for k in got:
        assert np.isfinite(got[k][0]).all(), k
    # only the stacks whose box crosses the band changed
    changed = sum(not np.array_equal(got[k][0], exp[k][0]) for k in got)
    assert 0 < changed < len(got)
