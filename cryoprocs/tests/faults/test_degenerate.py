"""Degenerate science (issue 11, point 4) and non-finite voxels, decided per case:

* one NaN or Inf voxel: an error naming the file, the count and the first [z, y, x] for
  every command; ``--replace-nonfinite`` replaces them by the finite mean, with a warning;
* an empty half set: the merged map only, no half maps, no FSC, never a resolution;
* no particle visible, or a box larger than the images: an error before any work;
* no rlnAngleRot/Tilt/Psi: a warning (log and reconstruction.json);
* pick --min-distance beyond the map, movie options rejected: the option is named and no
  folder is created.
"""
import json
import os

import mrcfile
import numpy as np
import pytest

from . import data as fault_data
from . import one_line, run_cli, tree

SHAPE = (16, 40, 40)
BAD = (5, 7, 9)


@pytest.fixture
def vols(tmp_path):
    vol = fault_data.tomogram(SHAPE)
    fault_data.write_volume(tmp_path / "vol.mrc", vol)
    bad = vol.copy()
    bad[BAD] = np.nan
    bad[0, 0, 1] = np.inf
    fault_data.write_volume(tmp_path / "bad.mrc", bad)
    fixed = vol.copy()
    fixed[BAD] = fixed[0, 0, 1] = np.mean(np.delete(bad.ravel(), [
        np.ravel_multi_index(BAD, SHAPE), np.ravel_multi_index((0, 0, 1), SHAPE)]),
        dtype=np.float64)
    fault_data.write_volume(tmp_path / "fixed.mrc", fixed)      # what the replacement must give
    fault_data.write_volume(tmp_path / "mask.mrc", fault_data.mask_volume(SHAPE))
    fault_data.write_volume(tmp_path / "ang.mrc", np.zeros(SHAPE, np.float32))
    (tmp_path / "alist.csv").write_text("0,0,0\n")
    return tmp_path


def _argv(cmd, w, inp, out):
    return {
        "mask": ["mask", "--input", inp, "--output", out, "--geometry", "sphere",
                 "--radius", "10", "--fill", "avg"],
        "noise-fill": ["noise-fill", "--input_tomo", inp, "--input_mask", w / "mask.mrc",
                       "--output_tomo", out, "--expand_pixels", "2", "--threads", "1"],
        "pick": ["pick", "--scores", inp, "--angles", w / "ang.mrc", "--angle-list",
                 w / "alist.csv", "--min-distance", "4", "--output", out],
        "movie": ["movie", inp, out, "--codec", "MJPG"],
    }[cmd]


OUT = {"mask": "out.mrc", "noise-fill": "out.mrc", "pick": "out.csv", "movie": "movies"}


@pytest.mark.parametrize("cmd", ["mask", "noise-fill", "pick", "movie"])
def test_nonfinite_voxels(vols, capsys, cmd):
    """Error by default (count 2, first [z, y, x] = [0, 0, 1]); with --replace-nonfinite
    the result equals that of the input with the finite mean written in (the issue: one
    NaN became tens of thousands, and noise-fill reported "nan / nan")."""
    w = vols
    out = w / OUT[cmd]
    before = tree(w)
    rc, _, err = run_cli(_argv(cmd, w, w / "bad.mrc", out), capsys)
    line = one_line(err)
    assert rc == 2 and str(w / "bad.mrc") in line and "2 non-finite voxels" in line and \
        "[0, 0, 1]" in line and "--replace-nonfinite" in line, err
    assert tree(w) == before
    rc, stdout, err = run_cli(_argv(cmd, w, w / "bad.mrc", out) + ["--replace-nonfinite"],
                              capsys)
    assert rc == 0, err
    assert "replaced by the mean of its finite voxels" in err
    ref = w / ("ref_" + OUT[cmd])
    assert run_cli(_argv(cmd, w, w / "fixed.mrc", ref), capsys)[0] == 0
    if cmd == "movie":
        a, b = out / "bad.avi", ref / "fixed.avi"
    else:
        a, b = out, ref
    if str(a).endswith(".mrc"):
        with mrcfile.open(a) as x, mrcfile.open(b) as y:
            assert np.isfinite(x.data).all()
            np.testing.assert_allclose(x.data, y.data, rtol=0, atol=1e-5)
    else:
        assert a.read_bytes() == b.read_bytes()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    base = tmp_path_factory.mktemp("degenerate")
    return base, fault_data.relion_project(base / "proj", n_particles=8)


def _rargv(base, pstar, tstar, out, cmd="reconstruct", box=16):
    return [cmd, "--particles", pstar, "--tomograms", tstar, "--box-size", str(box),
            "--project-dir", base / "proj", "--output-dir", out] + \
        (["--backend", "numpy"] if cmd == "reconstruct" else [])


def _edit_particles(base, pstar, name, **columns):
    import starfile
    df = starfile.read(pstar)
    for k, v in columns.items():
        if v is None:
            df = df.drop(columns=[k])
        else:
            df[k] = v
    path = str(base / name)
    starfile.write({"particles": df}, path, overwrite=True)
    return path


def test_empty_half_set_gives_no_half_maps_and_no_resolution(project, capsys):
    base, (pstar, tstar) = project
    p1 = _edit_particles(base, pstar, "half1_only.star", rlnRandomSubset=1)
    out = base / "rec_half1"
    rc, stdout, err = run_cli(_rargv(base, p1, tstar, out), capsys)
    assert rc == 0, err
    assert "half set 2" in err and "no visible particle" in err
    assert "resolution" not in stdout.lower()
    assert sorted(f for f in os.listdir(out) if not f.startswith(".")) == \
        ["merged.mrc", "partial", "reconstruction.json"]
    rep = json.load(open(out / "reconstruction.json"))
    assert rep["resolution"] is None and rep["fsc"] is None and rep["half_sets"] is False
    assert any("half set 2" in w for w in rep["warnings"])
    with mrcfile.open(out / "merged.mrc") as m:
        assert np.isfinite(m.data).all() and np.abs(m.data).max() > 0


@pytest.mark.parametrize("cmd", ["extract", "reconstruct"])
def test_no_visible_particle_is_an_error_before_work(project, capsys, cmd):
    base, (pstar, tstar) = project
    far = _edit_particles(base, pstar, "far.star", rlnCenteredCoordinateXAngst=5000.0)
    out = base / ("far_" + cmd)
    before = tree(base)
    rc, _, err = run_cli(_rargv(base, far, tstar, out, cmd), capsys)
    line = one_line(err)
    assert rc == 2 and "none of the 16 particles is visible" in line, err
    assert tree(base) == before


@pytest.mark.parametrize("cmd", ["extract", "reconstruct"])
def test_box_larger_than_the_images_is_an_error_before_work(project, capsys, cmd):
    base, (pstar, tstar) = project
    out = base / ("big_" + cmd)
    before = tree(base)
    rc, _, err = run_cli(_rargv(base, pstar, tstar, out, cmd, box=80), capsys)
    line = one_line(err)
    assert rc == 2 and "80 unbinned px" in line and "64 x 64 px" in line, err
    assert tree(base) == before


def test_missing_orientations_are_a_warning(project, capsys):
    base, (pstar, tstar) = project
    p = _edit_particles(base, pstar, "no_angles.star", rlnAngleRot=None, rlnAngleTilt=None,
                        rlnAnglePsi=None)
    out = base / "rec_noangles"
    rc, _, err = run_cli(_rargv(base, p, tstar, out), capsys)
    assert rc == 0, err
    assert "no rlnAngleRot, rlnAngleTilt, rlnAnglePsi columns" in err
    rep = json.load(open(out / "reconstruction.json"))
    assert any("without any rotation" in w for w in rep["warnings"])


@pytest.mark.parametrize("cmd", ["extract", "reconstruct"])
def test_nonfinite_tilt_images(project, capsys, cmd):
    """A NaN pixel in a tilt image: an error naming the stack before anything is written;
    with --replace-nonfinite the run completes with finite outputs."""
    base, (pstar, tstar) = project
    stack = base / "proj" / "sim1" / "tiltseries" / "ts1.mrcs"
    saved = stack.read_bytes()
    try:
        with mrcfile.mmap(str(stack), "r+") as m:
            m.data[3, 20, 30] = np.nan
        out = base / ("nan_" + cmd)
        before = tree(base)
        rc, _, err = run_cli(_rargv(base, pstar, tstar, out, cmd), capsys)
        line = one_line(err)
        assert rc == 2 and str(stack) in line and "[3, 20, 30]" in line, err
        assert tree(base) == before
        rc, _, err = run_cli(_rargv(base, pstar, tstar, out, cmd) + ["--replace-nonfinite"],
                             capsys)
        assert rc == 0 and "replaced by the mean" in err, err
        for root, _, files in os.walk(out):
            for f in files:
                if f.endswith((".mrc", ".mrcs")):
                    with mrcfile.open(os.path.join(root, f)) as m:
                        assert np.isfinite(m.data).all(), f
    finally:
        stack.write_bytes(saved)


def test_pick_min_distance_beyond_the_map_names_the_option(vols, capsys):
    before = tree(vols)
    argv = _argv("pick", vols, vols / "vol.mrc", vols / "p.csv")
    argv[argv.index("4")] = "1e9"
    rc, _, err = run_cli(argv, capsys)
    line = one_line(err)
    assert rc == 2 and "--min-distance 1e+09" in line and "diagonal" in line, err
    assert tree(vols) == before


@pytest.mark.parametrize("bad", [["--discard_range", "50", "10"], ["--scale_bar",
                                                                    "--pixel_size", "0"]])
def test_movie_rejects_options_before_creating_its_folder(vols, capsys, bad):
    fault_data.write_volume(vols / "nopix.mrc", fault_data.tomogram(SHAPE), voxel_size=0.0)
    before = tree(vols)
    rc, _, err = run_cli(["movie", vols / "nopix.mrc", vols / "new" / "movies"] + bad, capsys)
    assert rc == 2, err
    one_line(err)
    assert tree(vols) == before                # no folder created
