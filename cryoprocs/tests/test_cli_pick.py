"""``cryoprocs pick``: the CSV / STAR / EM outputs hold cryoCAT's picks (0-based in the CSV,
1-based in motive lists), errors are one line with exit status 2.

Reference: cryoCAT 0.7.1 ``scores_extract_particles`` on the real 48^3 ribosome
template-matching maps of its tutorial (STOPGAP conventions: zzx angle list, 1-based angle map,
8.704 A voxels), in the repository's reference subset and the full pack alike."""
import json
import os

import mrcfile
import numpy as np
import pandas as pd
import pytest

from cryoprocs import cli
from cryoprocs.convert import motl as motl_io
from cryoprocs.tests import shared_data

pytestmark = pytest.mark.shared_data


def _real(*parts):
    return shared_data("cryocat_peaks", "real", *parts)


def _summary(run):
    return json.load(open(_real("cryocat_out", run + "_summary.json")))


def _args(out, *extra):
    return ["pick", "--scores", _real("id_2_scores.mrc"), "--angles", _real("id_2_angles.mrc"),
            "--angle-list", _real("AGL_anglist_20_deg_c1.csv"), "--angles-order", "zzx",
            "--angles-numbering", "1", "--min-distance", "10", "--output", out] + list(extra)


def test_csv_is_zero_based_and_equals_cryocat(tmp_path, capsys):
    out = str(tmp_path / "picks.csv")
    png = str(tmp_path / "diag.png")
    rc = cli.main(_args(out, "--threshold-mode", "sigma", "--sigma", "3",
                        "--cryocat-compatible", "--diagnostics", png))
    assert rc == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["x", "y", "z", "score", "phi", "theta", "psi"]
    ref = pd.read_csv(_real("cryocat_out", "id_2_sigma3.csv"))
    assert np.array_equal(df[["x", "y", "z"]].values, ref[["x0", "y0", "z0"]].values)
    assert np.array_equal(df["score"].values.astype(np.float32),
                          ref["score"].values.astype(np.float32))
    assert np.allclose(df[["phi", "theta", "psi"]].values, ref[["phi", "theta", "psi"]].values)
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    S = _summary("id_2_sigma3")
    assert "%d candidate voxels, %d picks" % (S["n_candidate_voxels"], S["n_picks"]) in text


def test_em_and_star_outputs(tmp_path):
    em = str(tmp_path / "picks.em")
    assert cli.main(_args(em, "--threshold-mode", "triangle", "--n-particles", "1",
                          "--cryocat-compatible")) == 0
    ref = pd.read_csv(_real("cryocat_out", "id_2_n1.csv"))
    motl = motl_io.read_em_motl(em)
    assert np.array_equal(motl[["x", "y", "z"]].values, ref[["x", "y", "z"]].values)
    star = str(tmp_path / "picks.star")
    assert cli.main(_args(star, "--threshold-mode", "sigma", "--sigma", "3",
                          "--cryocat-compatible", "--tomo-name", "TS_7")) == 0
    p = motl_io.read_relion5_particles(star)
    ref = pd.read_csv(_real("cryocat_out", "id_2_sigma3.csv"))
    assert p["rlnTomoName"].tolist() == ["TS_7"] * len(ref)
    # header of the real maps: 8.704 A voxels, 48^3; centred Angstrom -> 0-based voxels
    with mrcfile.open(_real("id_2_scores.mrc"), header_only=True) as m:
        vs, nx = float(m.voxel_size.x), int(m.header.nx)
    x = p["rlnCenteredCoordinateXAngst"].values / vs + nx / 2.0
    assert np.allclose(x, ref["x0"].values, atol=1e-4)
    sg = str(tmp_path / "sg.star")
    assert cli.main(_args(sg, "--threshold-mode", "direct", "--threshold", "0.06",
                          "--cryocat-compatible", "--star-format", "stopgap")) == 0
    assert len(motl_io.read_stopgap_star(sg)) == _summary("id_2_direct0.06")["n_picks"]


def test_gapstop_conventions_give_the_same_picks(tmp_path):
    """The same maps in GAPSTOP conventions (zxz angle list, 0-based angle map) give cryoCAT's
    STOPGAP-convention picks and orientations."""
    amap = mrcfile.read(_real("id_2_angles.mrc"))
    angles0 = str(tmp_path / "angles0.mrc")
    with mrcfile.new(angles0) as m:
        m.set_data((amap - 1).astype(np.float32))
    zzx = np.loadtxt(_real("AGL_anglist_20_deg_c1.csv"), delimiter=",")
    zxz = str(tmp_path / "list_zxz.csv")
    np.savetxt(zxz, zzx[:, [0, 2, 1]], delimiter=",", fmt="%.10g")
    out = str(tmp_path / "gapstop.csv")
    assert cli.main(["pick", "--scores", _real("id_2_scores.mrc"), "--angles", angles0,
                     "--angle-list", zxz, "--min-distance", "10", "--threshold-mode", "sigma",
                     "--cryocat-compatible", "--output", out]) == 0
    ref = pd.read_csv(_real("cryocat_out", "id_2_sigma3.csv"))
    df = pd.read_csv(out)
    assert np.array_equal(df[["x", "y", "z"]].values, ref[["x0", "y0", "z0"]].values)
    assert np.allclose(df[["phi", "theta", "psi"]].values, ref[["phi", "theta", "psi"]].values)


def test_errors_are_one_line(tmp_path, capsys):
    out = str(tmp_path / "p.csv")
    # a 0-based map (all zeros) read as 1-based: the message names the numbering
    zeros = str(tmp_path / "zeros.mrc")
    with mrcfile.new(zeros) as m:
        m.set_data(np.zeros(mrcfile.read(_real("id_2_scores.mrc")).shape, np.float32))
    argv = _args(out)
    argv[argv.index("--angles") + 1] = zeros
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and "numbering" in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(out)
    assert cli.main(_args(str(tmp_path / "p.txt"))) == 2
    assert cli.main(_args(out, "--threshold-mode", "direct")) == 2
    open(out, "w").write("x")
    assert cli.main(_args(out)) == 2                      # exists, no --overwrite
    capsys.readouterr()


@pytest.mark.parametrize("case", ["output-is-input", "same-outputs", "diagnostics-exists",
                                  "folder-input", "bad-filter", "diagnostics-not-png"])
def test_paths_are_checked_before_picking(tmp_path, capsys, case):
    """Outputs never replace inputs or each other, every output obeys --overwrite, a folder
    as input or a bad option value is one line (exit status 2): nothing is written."""
    out = str(tmp_path / "p.csv")
    png = str(tmp_path / "d.png")
    if case == "output-is-input":                 # a link to the angle list as --output
        out = str(tmp_path / "link.csv")
        os.symlink(_real("AGL_anglist_20_deg_c1.csv"), out)
        argv, needle = _args(out, "--overwrite"), "is the same file as the --angle-list"
    elif case == "same-outputs":                  # a link to the picks file as --diagnostics
        open(out, "w").write("old")
        os.symlink(out, png)
        argv, needle = _args(out, "--diagnostics", png, "--overwrite"), "are the same file"
    elif case == "diagnostics-exists":
        open(png, "w").write("old")
        argv, needle = _args(out, "--diagnostics", png), "--diagnostics %s exists" % png
    elif case == "folder-input":
        argv = _args(out)
        argv[argv.index("--scores") + 1] = str(tmp_path)
        needle = "is a folder"
    elif case == "bad-filter":
        argv, needle = _args(out, "--angular-filter", "3", "20", "-2"), "--angular-filter"
    else:
        argv, needle = _args(out, "--diagnostics", str(tmp_path / "d.pdf")), ".png"
    listing = {f: os.path.getsize(tmp_path / f) for f in os.listdir(tmp_path)}
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert {f: os.path.getsize(tmp_path / f) for f in os.listdir(tmp_path)} == listing


def test_failed_diagnostics_leave_no_picks(tmp_path, monkeypatch, capsys):
    """The plot and the picks are committed together: when the plot fails there is no picks
    file either, and the error is one line naming the plot (exit 2)."""
    from cryoprocs.pipelines import peaks

    def boom(path, *a, **k):
        raise OSError(28, "No space left on device", path)
    monkeypatch.setattr(peaks, "plot_diagnostics", boom)
    out = str(tmp_path / "p.csv")
    assert cli.main(_args(out, "--diagnostics", str(tmp_path / "d.png"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["cryoprocs pick: error: %s: No space left on device" % (tmp_path / "d.png")]
    assert os.listdir(tmp_path) == []


def test_pick_imports_no_pandas_or_scipy_special_until_needed():
    """pandas (through starfile) costs about 0.5 s at import: the pick pipeline loads it only
    to write STAR/EM motive lists; scipy.special only for the false-positives threshold."""
    import subprocess
    import sys
    code = ("import sys, cryoprocs.cli, cryoprocs.commands.pick, cryoprocs.pipelines.peaks; "
            "print(sorted(m for m in ('pandas', 'starfile', 'scipy.special') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
