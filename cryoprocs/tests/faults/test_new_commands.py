"""The commands that came with OME-Zarr and copick (convert, copick-import, copick-export) and
the protocols' hidden extract-subvolumes, against the fault tables of the other commands:
bad inputs (exit status 2, one line naming the bad value, nothing left behind, inputs
unchanged), existing outputs, an output that is an input, and a second run on one output
(it fails at once naming the holder's process id)."""
import json
import os
import shutil
import signal
import time

import numpy as np
import pandas as pd
import pytest

from . import data as fault_data
from . import (expected_status, held_by, interrupt, one_line, run_cli, slowed, start,
               temporaries, tree, wait_for)
from .test_bad_inputs import FILE_KINDS, _bad_file, _check_failure

SHAPE = (12, 32, 32)


@pytest.fixture
def work(tmp_path):
    w = tmp_path / "w"
    w.mkdir()
    fault_data.write_volume(w / "vol.mrc", fault_data.tomogram(SHAPE))
    return w


def _ngff(path, data, voxel_size=5.0):
    from cryoprocs.tests import zarr_helpers
    return zarr_helpers.write_ngff(path, data, voxel_size, (4, 16, 16), tilt_series=False)


# ============================================================================ convert
@pytest.mark.parametrize("to", ["out.mrc", "out.zarr"])
@pytest.mark.parametrize("kind", FILE_KINDS)
def test_convert_bad_input_file(work, capsys, kind, to):
    needle = _bad_file(kind, work / "vol.mrc")
    before = tree(work)
    rc, _, err = run_cli(["convert", work / "vol.mrc", work / to], capsys)
    _check_failure(rc, err, needle, before, work)


@pytest.mark.parametrize("kind", ["missing", "empty-folder", "no-ngff", "missing-level", "nan"])
def test_convert_bad_ome_zarr_input(work, capsys, kind):
    import zarr
    store = str(work / "in.zarr")
    data = fault_data.tomogram(SHAPE)
    src, needle = store, store
    if kind == "empty-folder":
        os.mkdir(store)
    elif kind == "no-ngff":
        zarr.save_array(zarr.storage.DirectoryStore(store + "/0"), data)
        needle = "no OME-NGFF metadata"
    elif kind == "missing-level":
        _ngff(store, data)
        src, needle = store + "/3", "no scale level '3'"
    elif kind == "nan":
        data[5, 6, 7] = np.inf
        _ngff(store, data)
        needle = "the first at [z, y, x] = [5, 6, 7]"
    before = tree(work)
    rc, _, err = run_cli(["convert", src, work / "out.mrc"], capsys)
    _check_failure(rc, err, needle, before, work)
    if kind == "nan":                      # replaced by the mean of the finite voxels
        assert run_cli(["convert", src, work / "out.mrc", "--replace-nonfinite"],
                       capsys)[0] == 0
        from cryoprocs.convert.mrc import read_mrc
        got = read_mrc(str(work / "out.mrc"))
        finite = np.isfinite(data)
        assert np.isfinite(got).all() and got[5, 6, 7] == pytest.approx(
            data[finite].mean(dtype=np.float64), rel=1e-5)
        np.testing.assert_array_equal(got[finite], data[finite])


@pytest.mark.parametrize("to", ["out.mrc", "out.zarr"])
def test_convert_existing_output(work, capsys, to):
    assert run_cli(["convert", work / "vol.mrc", work / to], capsys)[0] == 0
    before = tree(work)
    rc, _, err = run_cli(["convert", work / "vol.mrc", work / to], capsys)
    _check_failure(rc, err, "%s exists; pass --overwrite" % (work / to), before, work)


@pytest.mark.parametrize("how", ["same-path", "hard-link", "symlink", "same-store"])
def test_convert_output_is_its_input(work, capsys, how):
    src = str(work / "vol.mrc")
    if how == "same-store":
        src = _ngff(str(work / "in.zarr"), fault_data.tomogram(SHAPE))
        target = src
    elif how == "same-path":
        target = src
    else:
        target = str(work / "link.mrc")
        (os.link if how == "hard-link" else os.symlink)(src, target)
    before = tree(work)
    rc, _, err = run_cli(["convert", src, target, "--overwrite"], capsys)
    _check_failure(rc, err, "same file", before, work)


def test_convert_second_run_fails_fast(work, capsys):
    out = work / "out.zarr"
    proc = start(["convert", work / "vol.mrc", out],
                 prefix=slowed("cryoprocs.pipelines.convert:_convert", 1.5))
    wait_for(held_by(work / ".out.zarr.lock", proc), proc, what="the first run's claim")
    t0 = time.time()
    rc, _, err = run_cli(["convert", work / "vol.mrc", out, "--overwrite"], capsys)
    line = one_line(err)
    assert rc == 2 and str(out) in line and "process %d" % proc.pid in line, err
    assert time.time() - t0 < 2.0
    assert proc.wait(timeout=60) == 0, proc.communicate()
    assert temporaries(work) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_convert_interrupted_then_rerun(work, capsys, sig):
    """SIGTERM (cleaned up) or SIGKILL while the OME-Zarr output is being written: no output,
    no temporary folder after the rerun (a dead run's are removed by the next claim), and the
    rerun without --overwrite equals an uninterrupted conversion."""
    ref = work / "ref.zarr"
    assert run_cli(["convert", work / "vol.mrc", ref, "--block-mb", "0.01"], capsys)[0] == 0
    out = work / "out.zarr"
    proc = start(["convert", work / "vol.mrc", out, "--block-mb", "0.01"],
                 prefix=slowed("cryoprocs.convert.zarr_write:OmeZarrWriter.write", 0.3))
    wait_for(lambda: any(n.startswith(".out.zarr.") and n.endswith(".partial")
                         for n in os.listdir(work)), proc, what="the temporary folder")
    rc, err = interrupt(proc, sig)
    assert rc == expected_status(sig), err
    assert not out.exists()
    if sig == signal.SIGTERM:
        assert temporaries(work) == [] and "interrupted by SIGTERM" in err, err
    assert run_cli(["convert", work / "vol.mrc", out], capsys)[0] == 0
    assert temporaries(work) == []
    from cryoprocs.convert.images import open_image
    with open_image(str(out)) as a, open_image(str(ref)) as b:
        np.testing.assert_array_equal(a.full(), b.full())


# ============================================================================ copick
@pytest.fixture
def copick_project(tmp_path):
    from cryoprocs.tests import copick_helpers
    cfg, _ = copick_helpers.make_project(str(tmp_path / "proj"), runs=("TS_01",), n_picks=4)
    return tmp_path, cfg


def _import_argv(cfg, out, objects="ribosome"):
    return ["copick-import", "--config", cfg, "--voxel-spacing", "10", "--objects", objects,
            "--output-dir", out]


@pytest.mark.parametrize("kind", ["missing", "folder", "text", "empty"])
def test_copick_import_bad_config(copick_project, capsys, kind):
    base, cfg = copick_project
    bad = str(base / "bad.json")
    if kind == "folder":
        os.mkdir(bad)
    elif kind == "text":
        with open(bad, "w") as fh:
            fh.write("this is not a copick config\n")
    elif kind == "empty":
        open(bad, "w").close()
    before = tree(base)
    rc, _, err = run_cli(_import_argv(bad, base / "out"), capsys)
    _check_failure(rc, err, bad, before, base)


def test_copick_import_unknown_object_and_existing_outputs(copick_project, capsys):
    base, cfg = copick_project
    before = tree(base)
    rc, _, err = run_cli(_import_argv(cfg, base / "out", "ribozyme"), capsys)
    _check_failure(rc, err, "ribozyme", before, base)
    assert run_cli(_import_argv(cfg, base / "out"), capsys)[0] == 0
    before = tree(base)
    rc, _, err = run_cli(_import_argv(cfg, base / "out"), capsys)
    _check_failure(rc, err, "%s exists; pass --overwrite" % (base / "out" / "particles.star"),
                   before, base)


def test_copick_import_output_is_its_config(copick_project, capsys):
    """A config named particles.star in the output folder: refused even with --overwrite."""
    base, cfg = copick_project
    os.makedirs(base / "out")
    shutil.copy(cfg, base / "out" / "particles.star")
    before = tree(base)
    rc, _, err = run_cli(_import_argv(base / "out" / "particles.star", base / "out")
                         + ["--overwrite"], capsys)
    _check_failure(rc, err, "same file", before, base)


def _particles(base, name="parts.star"):
    path = str(base / name)
    from cryoprocs.convert.star import write_star
    write_star(path, {"particles": pd.DataFrame({
        "rlnTomoName": ["TS_01"] * 3, "rlnCoordinateX": [5.0, 6.0, 7.0],
        "rlnCoordinateY": [5.0, 9.0, 7.0], "rlnCoordinateZ": [4.0, 6.0, 3.0]})})
    return path


def _export_argv(cfg, parts, *extra):
    return ["copick-export", "--particles", parts, "--pixel-size", "10", "--config", cfg,
            "--object", "ribosome"] + list(extra)


@pytest.mark.parametrize("what, kind", [("particles", "missing"), ("particles", "text"),
                                        ("particles", "truncated"), ("config", "missing"),
                                        ("config", "text")])
def test_copick_export_bad_inputs(copick_project, capsys, what, kind):
    base, cfg = copick_project
    parts = _particles(base)
    bad = parts if what == "particles" else cfg
    if kind == "missing":
        os.remove(bad)
    elif kind == "text":
        with open(bad, "w") as fh:
            fh.write("this is not what it should be\n")
    else:
        with open(bad, "r+b") as fh:
            fh.truncate(os.path.getsize(bad) - 5)
    before = tree(base)
    rc, _, err = run_cli(_export_argv(cfg, parts), capsys)
    _check_failure(rc, err, bad, before, base)


def test_copick_export_existing_picks_and_output_is_an_input(copick_project, capsys):
    """Existing picks of the identity without --overwrite; with --overwrite, a pick file that
    is (a link to) the particles input: both refused, nothing changed."""
    base, cfg = copick_project
    parts = _particles(base)
    assert run_cli(_export_argv(cfg, parts), capsys)[0] == 0
    before = tree(base)
    rc, _, err = run_cli(_export_argv(cfg, parts), capsys)
    _check_failure(rc, err, "already has picks of ribosome by cryoprocs", before, base)
    picks = base / "proj" / "overlay" / "ExperimentRuns" / "TS_01" / "Picks" / \
        "cryoprocs_1_ribosome.json"
    os.remove(picks)
    os.symlink(parts, picks)
    before = tree(base)
    rc, _, err = run_cli(_export_argv(cfg, parts, "--overwrite"), capsys)
    _check_failure(rc, err, "are the input %s" % parts, before, base)


def test_copick_export_second_run_fails_fast(copick_project, capsys):
    base, cfg = copick_project
    parts = _particles(base)
    proc = start(_export_argv(cfg, parts),
                 prefix=slowed("cryoprocs.convert.copick_io:write_picks", 1.5))
    lock = base / "proj" / ".copick.json.cryoprocs_1_ribosome.picks.lock"
    wait_for(held_by(lock, proc), proc, what="the first run's claim")
    rc, _, err = run_cli(_export_argv(cfg, parts, "--overwrite"), capsys)
    line = one_line(err)
    assert rc == 2 and "ribosome by cryoprocs, session 1" in line and \
        "process %d" % proc.pid in line, err
    assert proc.wait(timeout=60) == 0, proc.communicate()
    assert temporaries(base) == []


# ============================================================================ subvolumes
def _subvolumes(w, *extra, coords="coords.json", status="status.json"):
    return ["extract-subvolumes", "--coordinates", w / coords, "--tilt-series", "TS 01",
            "--box-size", "8", "--output-dir", w / "Subtomograms", "--status", w / status] \
        + list(extra)


def _coordinates(w, tomogram=None):
    with open(w / "coords.json", "w") as fh:
        json.dump({"TS 01": {"tomogram": str(tomogram or w / "vol.mrc"), "sampling": 10.0,
                             "dims": [32, 32, 12], "coords": [[1, 16.0, 16.0, 6.0],
                                                               [2, 10.0, 12.0, 5.0]]}}, fh)


@pytest.mark.parametrize("kind", ["missing", "text", "no-tilt-series", "nan", "truncated"])
def test_subvolumes_bad_inputs(work, capsys, kind):
    _coordinates(work)
    needle = str(work / "coords.json")
    if kind == "missing":
        os.remove(work / "coords.json")
    elif kind == "text":
        (work / "coords.json").write_text("not JSON\n")
    elif kind == "no-tilt-series":
        (work / "coords.json").write_text(json.dumps({"TS_02": {}}))
        needle = "--tilt-series TS 01 is not in"
    else:
        needle = _bad_file(kind, work / "vol.mrc")
    before = tree(work)
    rc, _, err = run_cli(_subvolumes(work), capsys)
    _check_failure(rc, err, needle, before, work)


def test_subvolumes_outputs(work, capsys):
    """The folder of a tsId that sanitising changes carries a hash (no collision with
    "TS_01"); the status may not be the coordinates file, nor replace an existing one
    without --overwrite."""
    from cryoprocs.convert.paths import safe_name
    _coordinates(work)
    before = tree(work)
    rc, _, err = run_cli(_subvolumes(work, status="coords.json"), capsys)
    _check_failure(rc, err, "same file", before, work)
    assert run_cli(_subvolumes(work), capsys)[0] == 0
    name = safe_name("TS 01")
    assert name != "TS_01" and sorted(os.listdir(work / "Subtomograms" / name)) == \
        [".fingerprint.json", "%s_000001.mrc" % name, "%s_000002.mrc" % name]
    before = tree(work)
    rc, _, err = run_cli(_subvolumes(work), capsys)
    _check_failure(rc, err, "%s exists; pass --overwrite" % (work / "status.json"), before,
                   work)


# ============================================================================ mask --sources
@pytest.mark.parametrize("kind", ["missing", "text", "truncated", "output-is-an-image",
                                  "nan"])
def test_mask_sources(work, capsys, kind):
    """The protocols' `mask --sources` (a location list, items --range I0 I1, one chunk
    stack): a bad list, a chunk stack that is one of the listed images, a non-finite
    image."""
    from cryoprocs.pipelines.masks import ImageSources
    fault_data.write_volume(work / "ts.mrcs", fault_data.tomogram((14, 32, 32), seed=3), stack=True)
    ImageSources.from_locations([(i + 1, str(work / "ts.mrcs")) for i in range(14)]).save(
        str(work / "list.npz"), voxel_size=5.0)
    out, needle = work / "chunk.mrcs", str(work / "list.npz")
    if kind == "missing":
        os.remove(work / "list.npz")
    elif kind == "text":
        (work / "list.npz").write_text("not a location list\n")
    elif kind == "truncated":
        with open(work / "list.npz", "r+b") as fh:
            fh.truncate(os.path.getsize(work / "list.npz") // 2)
    elif kind == "output-is-an-image":
        out, needle = work / "ts.mrcs", "same file"
    else:
        needle = _bad_file("nan", work / "ts.mrcs")
    before = tree(work)
    rc, _, err = run_cli(["mask", "--input", work / "list.npz", "--sources", "--range", "0",
                          "14", "--output", out, "--geometry", "circular", "--radius", "8",
                          "--overwrite"], capsys)
    _check_failure(rc, err, needle, before, work)


# ============================================================================ all commands
IMAGE_READERS = ("mask", "noise-fill", "pick", "extract", "reconstruct", "movie", "convert",
                 "extract-subvolumes")


def test_every_image_reading_command_has_the_nonfinite_option():
    from cryoprocs import cli
    parsers = cli.build_parser()._subparsers._group_actions[0].choices
    for name in IMAGE_READERS:
        opts = {o for a in parsers[name]._actions for o in a.option_strings}
        assert "--replace-nonfinite" in opts, name


def test_noise_fill_ome_zarr_output(work, capsys):
    """noise-fill into an OME-Zarr folder: written under a unique temporary folder and
    renamed with its side outputs (the tomogram last); equal to the MRC output; an existing
    folder is kept without --overwrite, and a folder named like an input store is refused."""
    fault_data.write_volume(work / "mask.mrc", fault_data.mask_volume(SHAPE))

    def argv(out, *extra):
        return ["noise-fill", "--input_tomo", work / "vol.mrc", "--input_mask",
                work / "mask.mrc", "--output_tomo", out, "--expand_pixels", "2",
                "--threads", "1", "--report", work / (os.path.basename(str(out)) + ".json")] \
            + list(extra)
    assert run_cli(argv(work / "ref.mrc"), capsys)[0] == 0
    assert run_cli(argv(work / "out.zarr"), capsys)[0] == 0
    from cryoprocs.convert.images import open_image
    from cryoprocs.convert.mrc import read_mrc
    with open_image(str(work / "out.zarr")) as img:
        np.testing.assert_array_equal(img.full(), read_mrc(str(work / "ref.mrc")))
    assert temporaries(work) == []
    before = tree(work)
    rc, _, err = run_cli(argv(work / "out.zarr"), capsys)
    _check_failure(rc, err, "%s exists; pass --overwrite" % (work / "out.zarr"), before, work)
    src = _ngff(str(work / "in.zarr"), fault_data.tomogram(SHAPE))
    before = tree(work)
    rc, _, err = run_cli(["noise-fill", "--input_tomo", src, "--input_mask", work / "mask.mrc",
                          "--output_tomo", src, "--overwrite"], capsys)
    _check_failure(rc, err, "same file", before, work)
