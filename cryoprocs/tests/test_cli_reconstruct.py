"""``cryoprocs reconstruct`` on the RELION 5 reference project (case c7): the merged map and
both half maps against RELION 5.0.1's relion_tomo_reconstruct_particle, headers, RELION's
intermediate volumes, the FSC files, resume, backends, symmetry and errors."""
import json
import os
import shutil

import mrcfile
import numpy as np
import pytest
import starfile

from cryoprocs.cli import main
from cryoprocs.kernels import backprojection
from cryoprocs.tests import relion5_reference as REF

C7 = "Reconstruct/c7_b32_bin2_C1"


def _link_project(tmp_path, particles=None):
    """A writable RELION project: the shared inputs linked into tmp_path (never copied into
    the repository); ``particles`` replaces particles.star by a DataFrame."""
    base = REF.pack_dir()
    proj = tmp_path / "project"
    proj.mkdir()
    for name in ("tomograms.star", "tiltseries"):
        os.symlink(os.path.join(base, name), proj / name)
    if particles is None:
        os.symlink(os.path.join(base, "particles.star"), proj / "particles.star")
    else:
        blocks = starfile.read(os.path.join(base, "particles.star"), always_dict=True)
        blocks["particles"] = particles
        starfile.write(blocks, proj / "particles.star")
    return proj


def _ref(name):
    with mrcfile.open(os.path.join(REF.pack_dir(), C7, name), permissive=True) as m:
        return np.array(m.data, dtype=np.float64), m.voxel_size.x, m.header


def compare_maps(out_dir, names=("merged.mrc", "half1.mrc", "half2.mrc"), bar=1e-5):
    """max|ours - RELION| / max|RELION| per map (asserts the bar of docs/reconstruct.md and the header
    geometry: size, voxel size 13.44 Å, origin 0)."""
    worst = {}
    for name in names:
        ref, vs, href = _ref(name)
        with mrcfile.open(os.path.join(out_dir, name)) as m:
            ours = np.array(m.data, dtype=np.float64)
            assert m.data.dtype == np.float32
            assert ours.shape == ref.shape == (32, 32, 32)
            assert abs(float(m.voxel_size.x) - vs) < 1e-4
            assert abs(float(m.voxel_size.z) - vs) < 1e-4
            for ax in "xyz":
                assert float(getattr(m.header.origin, ax)) == float(getattr(href.origin, ax))
            assert (int(m.header.nxstart), int(m.header.nystart), int(m.header.nzstart)) == \
                (int(href.nxstart), int(href.nystart), int(href.nzstart))
        d = np.abs(ours - ref).max() / np.abs(ref).max()
        assert d <= bar, (name, d)
        worst[name] = d
    return worst


def test_cli_matches_relion_c7(tmp_path, monkeypatch, capsys):
    proj = _link_project(tmp_path)
    monkeypatch.chdir(proj)
    assert main(["reconstruct", "--particles", "particles.star", "--tomograms",
                 "tomograms.star", "--box-size", "32", "--bin", "2", "--sym", "C1",
                 "--output-dir", C7, "--write-intermediates", "--threads", "2"]) == 0
    msg = capsys.readouterr().out
    assert "reconstructed 14 particles (0 skipped" in msg, msg
    out = proj / C7
    worst = compare_maps(out)
    # a faithful port: about one float32 ULP
    assert max(worst.values()) < 5e-7, worst
    # RELION's intermediates: gridding-corrected data and the CTF^2 weights
    compare_maps(out, ("data_half1.mrc", "data_half2.mrc", "data_merged.mrc",
                       "weight_half1.mrc", "weight_half2.mrc"))
    # FSC files: identical shells, a resolution between Nyquist and the box
    fsc = starfile.read(out / "fsc.star", always_dict=True)
    table = fsc["fsc"]
    assert list(table["rlnSpectralIndex"]) == list(range(17))
    assert np.allclose(table["rlnResolution"], np.arange(17) / (32 * 13.44), atol=1e-6)
    assert table["rlnFourierShellCorrelation"].iloc[0] == pytest.approx(1.0, abs=1e-6)
    info = json.loads((out / "reconstruction.json").read_text())
    assert 2 * 13.44 <= info["resolution"] < 32 * 13.44
    assert float(fsc["general"]["rlnFinalResolution"]) == pytest.approx(info["resolution"],
                                                                         rel=1e-5)
    assert "FSC 0.143 resolution" in msg
    png = (out / "fsc.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_cli_resume_and_backends(tmp_path, capsys):
    """Inputs from a project elsewhere (--project-dir); the partial sums of a finished tilt
    series are reused by a re-run (same maps); the NumPy backprojection gives the same maps
    as the compiled one."""
    base = REF.pack_dir()
    out = tmp_path / "out"
    argv = ["reconstruct", "--particles", os.path.join(base, "particles.star"),
            "--tomograms", os.path.join(base, "tomograms.star"), "--project-dir", base,
            "--box-size", "32", "--bin", "2", "--output-dir", str(out)]
    assert main(argv) == 0
    partial = out / "partial" / "TS_01.npz"
    assert partial.exists()
    first = {n: (out / n).read_bytes() for n in ("merged.mrc", "half1.mrc", "half2.mrc")}
    mtime = partial.stat().st_mtime_ns
    assert main(argv) == 0
    assert partial.stat().st_mtime_ns == mtime                       # reused, not redone
    for n, b in first.items():
        assert (out / n).read_bytes()[1024:] == b[1024:]
    compare_maps(out)
    out2 = tmp_path / "out_numpy"
    argv2 = [a if a != str(out) else str(out2) for a in argv] + ["--backend", "numpy"]
    assert main(argv2) == 0
    for n in ("merged.mrc", "half1.mrc", "half2.mrc"):
        with mrcfile.open(out / n) as a, mrcfile.open(out2 / n) as b:
            assert np.abs(a.data - b.data).max() <= 2e-7 * np.abs(a.data).max()
    if backprojection.numba_available():
        out3 = tmp_path / "out_numba"
        argv3 = [a if a != str(out) else str(out3) for a in argv] + ["--backend", "numba"]
        assert main(argv3) == 0
        compare_maps(out3)                      # the compiled backend: RELION's maps too
    # a final-stage setting changed: the maps are replaced only with --overwrite, and the
    # partial sums are reused (only symmetrisation and division are redone)
    capsys.readouterr()
    assert main(argv + ["--sym", "C2"]) == 2
    assert "other inputs or settings" in capsys.readouterr().err
    assert main(argv + ["--sym", "C2", "--overwrite"]) == 0
    assert partial.stat().st_mtime_ns == mtime
    with mrcfile.open(out / "merged.mrc") as m:
        c2 = np.array(m.data)
    rot = np.rot90(c2, 2, axes=(1, 2))          # C2 about z: (x, y) -> (-x, -y) about s/2
    rot = np.roll(rot, 1, axis=(1, 2))
    assert np.abs(rot - c2).max() <= 1e-4 * np.abs(c2).max()


def test_cli_without_half_sets_matches_relion_merged(tmp_path, monkeypatch, capsys):
    """Without rlnRandomSubset every particle goes to one set: only merged.mrc is written,
    and it equals RELION's merged map (the sum of both halves' data and weights)."""
    parts = starfile.read(os.path.join(REF.pack_dir(), "particles.star"))["particles"]
    proj = _link_project(tmp_path, parts.drop(columns=["rlnRandomSubset"]))
    monkeypatch.chdir(proj)
    assert main(["reconstruct", "--particles", "particles.star", "--tomograms",
                 "tomograms.star", "--box-size", "32", "--bin", "2", "--output-dir", "o"]) == 0
    assert "no rlnRandomSubset" in capsys.readouterr().out
    compare_maps(proj / "o", ("merged.mrc",))
    assert not (proj / "o" / "half1.mrc").exists() and not (proj / "o" / "fsc.star").exists()


def _c4_asymmetry(vol):
    """max|f(R p) - f(p)| / max|f| for the 90 degree rotation about z through voxel s/2
    (p' = R p, R = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], RELION's first C4 operator)."""
    s = vol.shape[-1]
    c = s // 2
    rot = np.empty_like(vol)
    for y in range(s):
        for x in range(s):
            rot[:, (c - (x - c)) % s, (c + (y - c)) % s] = vol[:, y, x]
    return np.abs(rot - vol).max() / np.abs(vol).max()


def test_cli_symmetry_c4_crop_and_wiener(tmp_path):
    """C4: the map becomes invariant under a 90 degree rotation about z (up to the unpaired
    Nyquist planes RELION keeps in the half spectrum, which the gridding correction spreads,
    ~2e-3 of the maximum here; the C1 map is far from invariant); --crop-size gives the cropped size with
    RELION's *_full.mrc; --snr switches to the Wiener division."""
    base = REF.pack_dir()
    asym = {}
    for sym in ("C1", "c4"):
        out = tmp_path / sym
        assert main(["reconstruct", "--particles", os.path.join(base, "particles.star"),
                     "--tomograms", os.path.join(base, "tomograms.star"), "--project-dir",
                     base, "--box-size", "32", "--crop-size", "24", "--bin", "2", "--sym", sym,
                     "--snr", "2", "--write-intermediates", "--output-dir", str(out)]) == 0
        with mrcfile.open(out / "merged_full.mrc") as m:
            asym[sym] = _c4_asymmetry(np.array(m.data, dtype=np.float64))
        with mrcfile.open(out / "merged.mrc") as m:
            assert m.data.shape == (24, 24, 24)
        info = json.loads((out / "reconstruction.json").read_text())
        assert info["symmetry"] == sym.upper() and info["settings"]["snr"] == 2.0
    assert asym["c4"] < 5e-3 and asym["C1"] > 0.3, asym


def test_cli_errors_are_one_line(tmp_path, capsys):
    base = REF.pack_dir()
    common = ["reconstruct", "--particles", os.path.join(base, "particles.star"),
              "--tomograms", os.path.join(base, "tomograms.star"), "--project-dir", base,
              "--output-dir", str(tmp_path / "o")]
    assert main(common + ["--box-size", "33"]) == 2
    err = capsys.readouterr().err
    assert "box size must be an even number" in err and "33" in err
    assert main(common + ["--box-size", "32", "--sym", "Oh"]) == 2
    assert "unsupported symmetry 'Oh'" in capsys.readouterr().err
    parts = starfile.read(os.path.join(base, "particles.star"))["particles"]
    parts["rlnRandomSubset"] = 3
    proj = _link_project(tmp_path, parts)
    assert main(["reconstruct", "--particles", str(proj / "particles.star"), "--tomograms",
                 str(proj / "tomograms.star"), "--project-dir", str(proj), "--box-size", "32",
                 "--output-dir", str(tmp_path / "o2")]) == 2
    assert "rlnRandomSubset must be 1 or 2" in capsys.readouterr().err


def test_cli_stale_partial_sums_are_redone(tmp_path, capsys):
    """Maps made with other settings (here another box) are replaced only with --overwrite;
    partial sums made with other settings are never reused (a run interrupted before its maps
    were written, then run again with a new box, gives RELION's maps of that box)."""
    base = REF.pack_dir()
    out = tmp_path / "out"
    common = ["reconstruct", "--particles", os.path.join(base, "particles.star"),
              "--tomograms", os.path.join(base, "tomograms.star"), "--project-dir", base,
              "--bin", "2", "--output-dir", str(out)]
    assert main(common + ["--box-size", "24"]) == 0
    before = (out / "merged.mrc").read_bytes()
    capsys.readouterr()
    assert main(common + ["--box-size", "32"]) == 2
    err = capsys.readouterr().err
    assert "other inputs or settings" in err and "--overwrite" in err
    assert (out / "merged.mrc").read_bytes() == before                 # untouched
    assert main(common + ["--box-size", "32", "--overwrite"]) == 0
    compare_maps(out)
    # stale partial sums alone (the maps of a killed run are not there yet) are redone
    assert main(common + ["--box-size", "24", "--overwrite"]) == 0
    for n in ("merged.mrc", "half1.mrc", "half2.mrc", "fsc.star", "fsc.png",
              "reconstruction.json"):
        (out / n).unlink()
    assert main(common + ["--box-size", "32"]) == 0
    compare_maps(out)


def test_cli_partial_sums_follow_the_tilt_series_files(tmp_path, capsys):
    """A tilt-series STAR file changed after a run (a later modification time) invalidates
    the partial sums of that tilt series: a re-run recomputes them instead of reusing them,
    and the maps of the old inputs are replaced only with --overwrite."""
    base = REF.pack_dir()
    proj = tmp_path / "project"
    (proj / "tiltseries").mkdir(parents=True)
    for name in ("tomograms.star", "particles.star"):
        os.symlink(os.path.join(base, name), proj / name)
    os.symlink(os.path.join(base, "tiltseries", "TS_01.mrcs"), proj / "tiltseries" / "TS_01.mrcs")
    star = proj / "tiltseries" / "TS_01.star"
    shutil.copyfile(os.path.join(base, "tiltseries", "TS_01.star"), star)
    argv = ["reconstruct", "--particles", str(proj / "particles.star"), "--tomograms",
            str(proj / "tomograms.star"), "--project-dir", str(proj), "--box-size", "32",
            "--bin", "2", "--output-dir", str(proj / "out")]
    assert main(argv) == 0
    partial = proj / "out" / "partial" / "TS_01.npz"
    mtime = partial.stat().st_mtime_ns
    assert main(argv) == 0
    assert partial.stat().st_mtime_ns == mtime                       # same inputs: reused
    st = star.stat()
    os.utime(star, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    capsys.readouterr()
    assert main(argv) == 2                       # maps of other inputs: not replaced silently
    assert "other inputs or settings" in capsys.readouterr().err
    assert partial.stat().st_mtime_ns == mtime
    for n in ("merged.mrc", "half1.mrc", "half2.mrc", "fsc.star", "fsc.png",
              "reconstruction.json"):
        (proj / "out" / n).unlink()             # as if killed before the maps
    assert main(argv) == 0
    assert partial.stat().st_mtime_ns != mtime                       # changed: redone
    compare_maps(proj / "out")


def test_cli_output_dir_never_replaces_inputs(tmp_path, capsys):
    """An output folder whose outputs would replace an input, a folder given as the particle
    file: one-line errors (exit status 2), nothing written."""
    base = REF.pack_dir()
    proj = tmp_path / "p"
    proj.mkdir()
    shutil.copy(os.path.join(base, "particles.star"), proj / "reconstruction.json")
    argv = ["reconstruct", "--particles", str(proj / "reconstruction.json"),
            "--tomograms", os.path.join(base, "tomograms.star"), "--project-dir", base,
            "--box-size", "32", "--bin", "2", "--output-dir", str(proj)]
    assert main(argv) == 2
    assert "would replace the input" in capsys.readouterr().err
    argv[2] = str(proj)
    assert main(argv) == 2
    assert "is a folder" in capsys.readouterr().err
    assert sorted(os.listdir(proj)) == ["reconstruction.json"]


def test_reconstruction_visibility_radius_is_box_over_two():
    """RELION's reconstruction tests visibility with r = box/2 unbinned px (not the
    extraction's bin x crop/2 that zarr-particle-tools uses): TS_01/5, invisible to the
    extraction at r = 32, is used in all 41 tilts at r = 16 (and RELION's maps include it)."""
    import numpy as np
    from cryoprocs.kernels import relion_geometry
    from cryoprocs.pipelines.reconstruct import ReconstructJob, ReconstructSettings
    base = REF.pack_dir()
    job = ReconstructJob(os.path.join(base, "particles.star"),
                         os.path.join(base, "tomograms.star"), "/nonexistent",
                         ReconstructSettings(box=32, binning=2), project_dir=base)
    plan = job.plan("TS_01")
    assert job.settings.radius == 16.0
    assert int(plan.visible[:, 4].sum()) == 41 and plan.used.all()
    q = relion_geometry.project(plan.ts.matrices, plan.positions)
    vis32, _ = relion_geometry.select_frames(q, plan.ts.image_size, 32.0, plan.ts.pre_exposure)
    assert int(vis32[:, 4].sum()) == 0
    assert np.array_equal(plan.visible, relion_geometry.select_frames(q, plan.ts.image_size, 16.0,
                                                                      plan.ts.pre_exposure)[0])
