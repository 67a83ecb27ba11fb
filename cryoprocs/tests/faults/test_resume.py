"""What a rerun reuses is checked (issue 11, point 6), file names from ids never collide
(point 7), and files a command does not own are replaced only with --overwrite (point 3)."""
import os

import pytest

from . import data as fault_data
from . import one_line, run_cli, tree
from .test_interrupts import same_results


def _argv(cmd, base, out, pstar, tstar):
    return [cmd, "--particles", pstar, "--tomograms", tstar, "--box-size", "16",
            "--project-dir", base / "proj", "--output-dir", out] + \
        (["--backend", "numpy"] if cmd == "reconstruct" else [])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    return base, fault_data.relion_project(base / "proj", n_particles=8)


def test_extract_redoes_damaged_stacks(project, capsys):
    """A stack truncated to 2000 bytes and one replaced by 8 bytes of text are extracted
    again (the issue: "16 stacks already present" and both kept)."""
    base, (pstar, tstar) = project
    ref, out = base / "ex_ref", base / "ex_damaged"
    assert run_cli(_argv("extract", base, ref, pstar, tstar), capsys)[0] == 0
    assert run_cli(_argv("extract", base, out, pstar, tstar), capsys)[0] == 0
    stacks = sorted((out / "Subtomograms" / "TS_01").iterdir())
    with open(stacks[0], "r+b") as fh:
        fh.truncate(2000)
    stacks[1].write_bytes(b"garbage!")
    rc, stdout, err = run_cli(_argv("extract", base, out, pstar, tstar), capsys)
    assert rc == 0, err
    assert "14 stacks already present" in stdout, stdout
    assert str(stacks[0]) in err and str(stacks[1]) in err     # warned, then redone
    same_results(out, ref)


def test_reconstruct_redoes_damaged_partial_sums(project, capsys):
    base, (pstar, tstar) = project
    ref, out = base / "rec_ref", base / "rec_damaged"
    assert run_cli(_argv("reconstruct", base, ref, pstar, tstar), capsys)[0] == 0
    assert run_cli(_argv("reconstruct", base, out, pstar, tstar), capsys)[0] == 0
    part = out / "partial" / "TS_01.npz"
    with open(part, "r+b") as fh:
        fh.truncate(3000)
    (out / "partial" / "TS_02.npz").write_bytes(b"garbage!")
    rc, _, err = run_cli(_argv("reconstruct", base, out, pstar, tstar), capsys)
    assert rc == 0, err
    assert "damaged or incomplete" in err
    same_results(out, ref)


def test_ids_differing_only_by_a_space(tmp_path, capsys):
    """rlnTomoName "TS_01" and "TS 01" (the issue: one partial/TS_01.npz and one
    .cryoprocs/extract_TS_01.json for both; reconstruct failed, extract refused to
    resume)."""
    pstar, tstar = fault_data.relion_project(tmp_path / "proj", tomo_names=("TS_01", "TS 01"),
                                             n_particles=6)
    for cmd in ("extract", "reconstruct"):
        out = tmp_path / cmd
        rc, stdout, err = run_cli(_argv(cmd, tmp_path, out, pstar, tstar), capsys)
        assert rc == 0, err
        assert " 12 particles" in stdout, stdout
        rc, stdout, err = run_cli(_argv(cmd, tmp_path, out, pstar, tstar), capsys)
        assert rc == 0, err
        if cmd == "extract":
            assert "0 frames written, 12 stacks already present" in stdout, stdout
            records = sorted(os.listdir(out / ".cryoprocs"))
            assert len([r for r in records if r.startswith("extract_TS")]) == 2, records
        else:
            assert "partial sums found" in err and "redoing" not in err, err
            assert len([f for f in os.listdir(out / "partial") if f.endswith(".npz")]) == 2


def test_extract_never_replaces_foreign_star_files(project, capsys):
    """particles.star / optimisation_set.star in the output folder that this command did
    not write (the issue: replaced, exit 0): refused without --overwrite; with it, the
    run writes its own."""
    base, (pstar, tstar) = project
    for name in ("particles.star", "optimisation_set.star"):
        out = base / ("foreign_" + name.split(".")[0])
        out.mkdir()
        (out / name).write_text("someone else's\n")
        before = tree(base)
        rc, _, err = run_cli(_argv("extract", base, out, pstar, tstar), capsys)
        line = one_line(err)
        assert rc == 2 and str(out / name) in line and "--overwrite" in line, err
        assert tree(base) == before
        rc, _, err = run_cli(_argv("extract", base, out, pstar, tstar) + ["--overwrite"],
                             capsys)
        assert rc == 0, err
        assert (out / name).read_text() != "someone else's\n"


def test_reconstruct_intermediates_never_replace_foreign_maps(project, capsys):
    """--write-intermediates over RELION's data_merged.mrc / weight_merged.mrc (the issue:
    replaced, exit 0): refused without --overwrite."""
    base, (pstar, tstar) = project
    out = base / "relion_job"
    out.mkdir()
    for name in ("data_merged.mrc", "weight_half1.mrc"):
        fault_data.write_volume(out / name, fault_data.tomogram((16, 16, 16)))
    before = tree(base)
    rc, _, err = run_cli(_argv("reconstruct", base, out, pstar, tstar)
                         + ["--write-intermediates"], capsys)
    line = one_line(err)
    assert rc == 2 and "data_merged.mrc" in line and "weight_half1.mrc" in line, err
    assert tree(base) == before
    # without --write-intermediates the foreign maps are not this run's business
    rc, _, err = run_cli(_argv("reconstruct", base, out, pstar, tstar), capsys)
    assert rc == 0, err
    after = tree(base)
    for name in ("data_merged.mrc", "weight_half1.mrc"):
        assert after["relion_job/" + name] == before["relion_job/" + name]


def test_empty_stack_is_complete_only_as_written(tmp_path):
    """The stack of a particle visible in no tilt image (--min-frames 0) has 0 sections: a
    resumed run reuses it as extraction writes it (header alone, nz = 0, the box size and
    mode), and redoes one of another box size or mode, with data after the header, or
    replaced by text."""
    import numpy as np

    from cryoprocs.convert.mrc import is_complete_mrc
    from cryoprocs.pipelines.extract import write_stack
    path = str(tmp_path / "1_stack2d.mrcs")
    write_stack(path, np.zeros((0, 16, 16), np.float32), 10.0)
    assert os.path.getsize(path) == 1024
    assert is_complete_mrc(path, (0, 16, 16), (2,))
    assert not is_complete_mrc(path, (0, 16, 18), (2,))
    assert not is_complete_mrc(path, (0, 16, 16), (12,))
    assert not is_complete_mrc(path, (1, 16, 16), (2,))
    with open(path, "ab") as fh:
        fh.write(b"\0" * 16)
    assert not is_complete_mrc(path, (0, 16, 16), (2,))
    with open(path, "wb") as fh:
        fh.write(b"garbage!")
    assert not is_complete_mrc(path, (0, 16, 16), (2,))
