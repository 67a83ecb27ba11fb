"""Two runs on one output: exactly one succeeds, the other fails at once naming the output
and the holder's process id, and the output is the winner's."""
import time

import pytest

from . import data as D
from . import (claimed_tilt_series, mrc_digest, one_line, run_cli, slowed, start, temporaries,
               wait_for)


@pytest.fixture
def vol(tmp_path):
    D.write_volume(tmp_path / "vol.mrc", D.tomogram((16, 48, 48)))
    D.write_volume(tmp_path / "mask.mrc", D.mask_volume((16, 48, 48)))
    return tmp_path


def _mask_argv(tmp, out, radius):
    return ["mask", "--input", tmp / "vol.mrc", "--output", out, "--geometry", "sphere",
            "--radius", str(radius), "--fill", "avg", "--overwrite"]


def _reference(capsys, argv, out, ref):
    argv = [ref if str(a) == str(out) else a for a in argv]
    assert run_cli(argv, capsys)[0] == 0
    return mrc_digest(ref)


def test_second_run_fails_fast_and_first_output_wins(vol, capsys):
    """mask: a slowed run holds out.mrc; a second run (other radius, --overwrite) fails in
    well under a second naming out.mrc and the holder's pid; the first run's data end up in
    out.mrc (the issue's case: the first said "wrote" over the second's data)."""
    out = vol / "out.mrc"
    want = _reference(capsys, _mask_argv(vol, out, 5), out, vol / "ref5.mrc")
    proc = start(_mask_argv(vol, out, 5),
                 prefix=slowed("cryoprocs.pipelines.masks:_mask_file", 1.5))
    lock = vol / ".out.mrc.lock"
    wait_for(lock.exists, proc, what="the first run's claim")
    t0 = time.time()
    rc, _, err = run_cli(_mask_argv(vol, out, 15), capsys)
    elapsed = time.time() - t0
    line = one_line(err)
    assert rc == 2 and str(out) in line and "process %d" % proc.pid in line, err
    assert elapsed < 1.0, elapsed
    assert proc.wait(timeout=60) == 0, proc.communicate()
    assert mrc_digest(out) == want
    assert temporaries(vol) == []


def test_simultaneous_runs_exactly_one_wins(vol, capsys):
    """noise-fill: two slowed runs started together on one output (other settings): one
    succeeds, the other fails naming the output; the output is the winner's."""
    out = vol / "out.mrc"

    def argv(expand, seed):
        return ["noise-fill", "--input_tomo", vol / "vol.mrc", "--input_mask",
                vol / "mask.mrc", "--output_tomo", out, "--expand_pixels", str(expand),
                "--seed", str(seed), "--overwrite", "--threads", "1"]
    refs = {expand: _reference(capsys, argv(expand, seed), out, vol / ("ref%d.mrc" % expand))
            for expand, seed in ((3, 1), (1, 7))}
    prefix = slowed("cryoprocs.kernels.noisefill:noise_fill", 1.5)
    procs = {expand: start(argv(expand, seed), prefix=prefix)
             for expand, seed in ((3, 1), (1, 7))}
    results = {e: (p.wait(timeout=120), p.communicate()[1]) for e, p in procs.items()}
    winners = [e for e, (rc, _) in results.items() if rc == 0]
    losers = [e for e, (rc, _) in results.items() if rc != 0]
    assert len(winners) == 1 and len(losers) == 1, results
    rc, err = results[losers[0]]
    line = one_line(err)
    assert rc == 2 and "is being written by another cryoprocs run" in line and \
        str(out) in line, err
    assert mrc_digest(out) == refs[winners[0]]
    assert temporaries(vol) == []


def test_extract_folder_has_one_writer(tmp_path, capsys):
    """extract with and without --no-ctf into one folder (the issue's case: stacks of both
    kinds, or a fingerprint that does not describe the stacks): the second run fails at
    once naming the folder; the folder is exactly the first run's."""
    pstar, tstar = D.relion_project(tmp_path / "proj")
    base = ["extract", "--particles", pstar, "--tomograms", tstar, "--box-size", "16",
            "--project-dir", tmp_path / "proj"]
    ref = tmp_path / "ref"
    assert run_cli(base + ["--output-dir", ref], capsys)[0] == 0
    out = tmp_path / "out"
    proc = start(base + ["--output-dir", out],
                 prefix=slowed("cryoprocs.pipelines.extract:write_stack", 0.1))
    wait_for(lambda: claimed_tilt_series(out), proc, what="the tilt-series claims")
    rc, _, err = run_cli(base + ["--output-dir", out, "--no-ctf", "--overwrite"], capsys)
    line = one_line(err)
    assert rc == 2 and "output folder %s" % out in line and str(proc.pid) in line, err
    assert proc.wait(timeout=120) == 0, proc.communicate()
    from .test_interrupts import same_results
    same_results(out, ref)
