"""``cryoprocs extract`` on the RELION 5 reference project: every stack, every STAR value."""
import os

import numpy as np
import pytest
import starfile

from cryoprocs.cli import main
from cryoprocs.tests import relion5_reference as REF


def _link_project(tmp_path):
    """A writable RELION project: the shared inputs linked into tmp_path (never copied into
    the repository)."""
    base = REF.pack_dir()
    proj = tmp_path / "project"
    proj.mkdir()
    for name in ("tomograms.star", "particles.star", "tiltseries"):
        os.symlink(os.path.join(base, name), proj / name)
    return proj


def _argv(case, out, project=None, particles="particles.star", tomograms="tomograms.star"):
    s = case["settings"]
    argv = ["extract", "--particles", particles, "--tomograms", tomograms,
            "--box-size", str(s["box"]), "--crop-size", str(s["crop"]),
            "--bin", str(s["binning"]), "--output-dir", str(out)]
    if not s["do_ctf"]:
        argv.append("--no-ctf")
    if not s["circle_crop"]:
        argv.append("--no-circle-crop")
    if s["float16"]:
        argv.append("--float16")
    if s["max_dose"] > 0:
        argv += ["--max-dose", str(s["max_dose"])]
    if s["min_frames"] != 1:
        argv += ["--min-frames", str(s["min_frames"])]
    if project is not None:
        argv += ["--project-dir", str(project)]
    return argv


@pytest.mark.parametrize("cid", REF.case_ids())
def test_cli_matches_relion(tmp_path, monkeypatch, cid):
    case = REF.case(cid)
    proj = _link_project(tmp_path)
    monkeypatch.chdir(proj)
    out_rel = case["folder"] + "/"            # same --o as RELION, inside the project
    assert main(_argv(case, out_rel)) == 0
    res = REF.compare_stacks(proj / case["folder"], case)
    assert res["worst_units"] <= 16
    if case["settings"]["float16"]:
        assert res["bit_exact"] > 0.99
    # STAR: same particles, same values in every column; same relative image names
    REF.compare_star(proj / case["folder"] / "particles.star", case,
                     image_prefix=case["folder"] + "/")
    opt = starfile.read(proj / case["folder"] / "optimisation_set.star", always_dict=True)
    block = next(iter(opt.values()))
    assert block["rlnTomoParticlesFile"] == case["folder"] + "/particles.star"
    assert block["rlnTomoTomogramsFile"] == "tomograms.star"
    removed = case["removed_particles"]
    parts = starfile.read(proj / case["folder"] / "particles.star")["particles"]
    assert not set(removed) & set(parts["rlnTomoParticleName"])
    assert len(parts) == case["n_particles_written"]


def test_cli_project_dir_and_resume(tmp_path, capsys):
    """Inputs read from a project elsewhere (--project-dir), output outside it: absolute image
    names; a second run skips the finished stacks; a deleted stack is redone identically."""
    case = REF.case("c1")
    base = REF.pack_dir()
    out = tmp_path / "out"
    argv = _argv(case, out, project=base, particles=os.path.join(base, "particles.star"),
                 tomograms=os.path.join(base, "tomograms.star"))
    assert main(argv) == 0
    parts = starfile.read(out / "particles.star")["particles"]
    assert all(os.path.isabs(p) and os.path.exists(p) for p in parts["rlnImageName"])
    REF.compare_star(out / "particles.star", case)
    victim = out / "Subtomograms" / "TS_01" / "3_stack2d.mrcs"
    before = victim.read_bytes()
    os.remove(victim)
    capsys.readouterr()
    assert main(argv) == 0
    msg = capsys.readouterr().out
    assert "12 stacks already present" in msg, msg
    import mrcfile
    with mrcfile.open(victim) as m:
        a = np.array(m.data)
    with mrcfile.open(REF.pack_dir() + "/" + case["folder"] + "/Subtomograms/TS_01/3_stack2d.mrcs") as m:
        b = np.array(m.data)
    assert np.abs(a - b).max() <= 16 * np.spacing(np.float32(REF.max_abs_tilts() / 2))
    assert len(before) == victim.stat().st_size


def test_cli_other_settings_never_reuse_stacks(tmp_path, capsys):
    """Stacks of a run with other settings (c1, with CTF) in the output folder are not taken
    for this run's (c3, no CTF): without --overwrite the run stops with one line and changes
    nothing; with --overwrite they are replaced, and a replacement killed half-way resumes
    with RELION's c3 stacks only. Stacks of unknown origin (no fingerprint) count as other
    settings."""
    base = REF.pack_dir()
    out = tmp_path / "out"
    inputs = dict(project=base, particles=os.path.join(base, "particles.star"),
                  tomograms=os.path.join(base, "tomograms.star"))
    c1, c3 = REF.case("c1"), REF.case("c3")
    assert main(_argv(c1, out, **inputs)) == 0
    victim = out / "Subtomograms" / "TS_01" / "3_stack2d.mrcs"
    before = victim.read_bytes()
    capsys.readouterr()
    assert main(_argv(c3, out, **inputs)) == 2
    err = capsys.readouterr().err
    assert "TS_01" in err and "other inputs or settings" in err and "--overwrite" in err
    assert victim.read_bytes() == before
    # a replacement killed after 3 stacks, then resumed without --overwrite: no stack of
    # the old settings survives
    from cryoprocs.pipelines import extract
    real_write, written = extract.write_stack, []

    def dying_write(*a, **k):
        if len(written) == 3:
            raise KeyboardInterrupt
        written.append(a[0])
        return real_write(*a, **k)
    extract.write_stack = dying_write
    try:
        assert main(_argv(c3, out, **inputs) + ["--overwrite"]) == 130
    finally:
        extract.write_stack = real_write
    capsys.readouterr()
    assert main(_argv(c3, out, **inputs)) == 0
    assert "frames written, 3 stacks already present" in capsys.readouterr().out
    res = REF.compare_stacks(out, c3)
    assert res["worst_units"] <= 16
    REF.compare_star(out / "particles.star", c3)
    # a re-run with the same settings resumes (nothing redone) ...
    capsys.readouterr()
    assert main(_argv(c3, out, **inputs)) == 0
    assert "0 frames written, 13 stacks already present" in capsys.readouterr().out
    # ... but stacks without a fingerprint are not trusted
    for f in (out / ".cryoprocs").iterdir():
        f.unlink()
    assert main(_argv(c3, out, **inputs)) == 2


def test_cli_output_dir_never_replaces_inputs(tmp_path, capsys):
    """--output-dir the project folder itself would write particles.star over the input:
    refused before anything is read or written. A folder given as --particles and a file
    given as --output-dir: one-line errors."""
    proj = _link_project(tmp_path)
    case = REF.case("c1")
    argv = _argv(case, proj, project=proj, particles=str(proj / "particles.star"),
                 tomograms=str(proj / "tomograms.star"))
    listing = sorted(os.listdir(proj))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "would replace the input particles" in err
    assert sorted(os.listdir(proj)) == listing
    assert main(_argv(case, tmp_path / "o", project=proj, particles=str(proj),
                      tomograms=str(proj / "tomograms.star"))) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(_argv(case, proj / "tomograms.star" / "x", project=proj,
                      particles=str(proj / "particles.star"),
                      tomograms=str(proj / "tomograms.star"))) == 2
    assert "is a file" in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path, capsys):
    base = REF.pack_dir()
    rc = main(["extract", "--particles", os.path.join(base, "particles.star"),
               "--tomograms", os.path.join(base, "tomograms.star"), "--box-size", "33",
               "--output-dir", str(tmp_path / "o"), "--project-dir", base])
    assert rc == 2
    err = capsys.readouterr().err
    assert "box size must be an even number" in err and "33" in err
    rc = main(["extract", "--particles", os.path.join(base, "particles.star"),
               "--tomograms", os.path.join(base, "tomograms.star"), "--box-size", "32",
               "--output-dir", str(tmp_path / "o"), "--project-dir", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "TS_01" in err and "tiltseries/TS_01.star" in err


def _write_variant(tmp_path, transform):
    """A copy of the reference particles.star changed by ``transform(particles) -> particles``
    in a project linked to the shared tilt series."""
    proj = _link_project(tmp_path)
    os.remove(proj / "particles.star")
    blocks = starfile.read(os.path.join(REF.pack_dir(), "particles.star"), always_dict=True)
    blocks["particles"] = transform(blocks["particles"].copy())
    starfile.write(blocks, proj / "particles.star", overwrite=True)
    return proj


def test_relion4_pixel_coordinates_give_relion_stacks(tmp_path, monkeypatch):
    """rlnCoordinateX/Y/Z (decentred px) instead of centred Å: the same stacks (RELION reads
    both; zarr-particle-tools raises KeyError, doc D-C1) and centred Å in the output."""
    def to_pixels(p):
        c = p[["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
               "rlnCenteredCoordinateZAngst"]].to_numpy(dtype=float)
        px = c / 6.72 + np.array([128.0, 128.0, 70.0])
        p = p.drop(columns=["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
                            "rlnCenteredCoordinateZAngst"])
        p.insert(1, "rlnCoordinateX", px[:, 0])
        p.insert(2, "rlnCoordinateY", px[:, 1])
        p.insert(3, "rlnCoordinateZ", px[:, 2])
        return p
    case = REF.case("c1")
    proj = _write_variant(tmp_path, to_pixels)
    monkeypatch.chdir(proj)
    assert main(_argv(case, "out/")) == 0
    assert REF.compare_stacks(proj / "out", case)["worst_units"] <= 16
    ours = starfile.read(proj / "out" / "particles.star")["particles"]
    ref = starfile.read(os.path.join(REF.pack_dir(), case["folder"], "particles.star"))[
        "particles"]
    assert "rlnCoordinateX" not in ours.columns
    for c in ("rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
              "rlnCenteredCoordinateZAngst"):
        assert np.allclose(ours[c], ref[c], atol=1e-5)


def test_rotated_offsets_are_folded_like_relion(tmp_path, monkeypatch):
    """Origins with subtomogram angles: p -= A_subtomo . origin / ps (RELION; doc D-O1). Moving
    the coordinates by A o and adding the origin o gives RELION's stacks and coordinates."""
    from cryoprocs.kernels.euler import relion_euler_matrix
    rng = np.random.default_rng(5)

    def add_offsets(p):
        n = len(p)
        ang = np.stack([rng.uniform(-180, 180, n), rng.uniform(0, 180, n),
                        rng.uniform(-180, 180, n)], axis=1).round(3)
        o = rng.uniform(-20, 20, (n, 3)).round(3)
        A = relion_euler_matrix(ang[:, 0], ang[:, 1], ang[:, 2])
        shift = np.einsum("nij,nj->ni", A, o)
        for i, c in enumerate(("rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
                               "rlnCenteredCoordinateZAngst")):
            p[c] = p[c] + shift[:, i]
        for i, c in enumerate(("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt",
                               "rlnTomoSubtomogramPsi")):
            p[c] = ang[:, i]
        for i, c in enumerate(("rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst")):
            p[c] = o[:, i]
        return p
    case = REF.case("c1")
    proj = _write_variant(tmp_path, add_offsets)
    monkeypatch.chdir(proj)
    assert main(_argv(case, "out/")) == 0
    res = REF.compare_stacks(proj / "out", case)
    assert res["worst_units"] <= 16
    ours = starfile.read(proj / "out" / "particles.star")["particles"]
    ref = starfile.read(os.path.join(REF.pack_dir(), case["folder"], "particles.star"))[
        "particles"]
    for c in ("rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
              "rlnCenteredCoordinateZAngst"):
        assert np.allclose(ours[c], ref[c], atol=1e-4)
    assert np.all(ours["rlnOriginXAngst"] == 0)
