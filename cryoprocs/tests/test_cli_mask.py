"""``cryoprocs mask``: same numbers as the form, clear errors, no partial output."""
import json
import os
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from cryoprocs.cli import main
from cryoprocs.tests import shared_data


def _case(case_id):
    base = shared_data("xmipp_masks")
    cases = json.load(open(os.path.join(base, "cases.json")))
    return base, next(c for c in cases["cases"] if c["id"] == case_id)


def _rel(out, ref):
    return np.abs(out.astype(np.float64) - ref).max() / np.abs(ref).max()


@pytest.mark.parametrize("case_id,args", [
    ("m2d05_circular_r30_shift_fillmax",
     ["--geometry", "circular", "--radius", "30", "--center", "7", "-5", "--fill", "max"]),
    ("m2d03_circular_default_fillavg", ["--geometry", "circular", "--fill", "avg"]),
    ("m2d07_gaussian_default", ["--geometry", "gaussian"]),
    ("m3d02_sphere_r15_shift_fillavg",
     ["--geometry", "sphere", "--radius", "15", "--center", "3", "-4", "2", "--fill", "avg"]),
    ("m3d05_cylinder_r12_h20", ["--geometry", "cylinder", "--radius", "12", "--height", "20"]),
    ("m3d08_raisedcrown_6_18_decay3", ["--geometry", "raised_crown", "--inner-radius", "6",
                                       "--outer-radius", "18", "--border-decay", "3"]),
])
def test_cli_matches_xmipp(tmp_path, case_id, args):
    base, case = _case(case_id)
    out = str(tmp_path / ("out.mrcs" if case["dims"] == 2 else "out.mrc"))
    assert main(["mask", "--input", os.path.join(base, case["input"]), "--output", out]
                + args) == 0
    ref = mrcfile.read(os.path.join(base, case["output_file"]))
    res = mrcfile.read(out)
    assert res.dtype == np.float32 and res.shape == ref.shape
    assert _rel(res, ref) <= 1e-6
    with mrcfile.open(out) as m:
        assert m.voxel_size.x == pytest.approx(2.806 if case["dims"] == 2 else 8.66, rel=1e-5)


def test_cli_created_mask(tmp_path):
    base, case = _case("m3d09_createdmask_binary")
    out = str(tmp_path / "o.mrc")
    mask = os.path.join(base, "inputs", "createdmask3d_binary_thr_x41y46z39.mrc")
    assert main(["mask", "--input", os.path.join(base, case["input"]), "--output", out,
                 "--mask-file", mask]) == 0
    assert _rel(mrcfile.read(out), mrcfile.read(os.path.join(base, case["output_file"]))) == 0


def test_cli_errors_are_clear_and_leave_nothing(tmp_path, capsys):
    vol = np.random.default_rng(0).normal(size=(10, 12, 14)).astype(np.float32)
    inp = str(tmp_path / "v.mrc")
    with mrcfile.new(inp) as m:
        m.set_data(vol)
    out = str(tmp_path / "o.mrc")

    # mask file of another shape
    bad = str(tmp_path / "m.mrc")
    with mrcfile.new(bad) as m:
        m.set_data(np.ones((10, 12, 15), np.float32))
    assert main(["mask", "--input", inp, "--output", out, "--mask-file", bad]) == 2
    err = capsys.readouterr().err
    assert "15x12x10" in err and "14x12x10" in err
    # a radius that leaves nothing inside
    assert main(["mask", "--input", inp, "--output", out, "--geometry", "sphere",
                 "--radius", "2", "--center", "30", "0", "0"]) == 2
    assert "keeps no voxel" in capsys.readouterr().err
    # not an MRC file
    txt = str(tmp_path / "notes.txt")
    open(txt, "w").write("hello" * 400)
    assert main(["mask", "--input", txt, "--output", out, "--geometry", "sphere"]) == 2
    assert "not an MRC file" in capsys.readouterr().err
    # nothing written, not even a temporary file
    assert sorted(os.listdir(tmp_path)) == ["m.mrc", "notes.txt", "v.mrc"]
    # existing output is not replaced without --overwrite
    assert main(["mask", "--input", inp, "--output", out, "--geometry", "sphere"]) == 0
    before = os.path.getmtime(out)
    assert main(["mask", "--input", inp, "--output", out, "--geometry", "box"]) == 2
    assert os.path.getmtime(out) == before
    assert main(["mask", "--input", inp, "--output", out, "--geometry", "box",
                 "--overwrite"]) == 0


def test_cli_noise_fill_and_threads_agree(tmp_path):
    src = shared_data("real", "cryodrgn_tiltparticles",
                      "ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs")
    a, b = str(tmp_path / "a.mrcs"), str(tmp_path / "b.mrcs")
    common = ["--input", src, "--geometry", "circular", "--radius", "20", "--fill", "noise"]
    assert main(["mask", "--output", a, "--threads", "1"] + common) == 0
    assert main(["mask", "--output", b, "--threads", "2"] + common) == 0
    np.testing.assert_array_equal(mrcfile.read(a), mrcfile.read(b))
    data, out = mrcfile.read(src), mrcfile.read(a)
    yy, xx = np.mgrid[:64, :64]
    outside = (yy - 32) ** 2 + (xx - 32) ** 2 > 400
    # the noise has each image's own outside mean and std (220 real tilt images)
    np.testing.assert_allclose(out[:, outside].mean(1), data[:, outside].mean(1),
                               atol=0.1 * data[:, outside].std(1).max())
    np.testing.assert_allclose(out[:, outside].std(1), data[:, outside].std(1), rtol=0.1)


def test_console_script_runs():
    res = subprocess.run([sys.executable, "-m", "cryoprocs.cli", "mask", "--help"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "--border-decay" in res.stdout
