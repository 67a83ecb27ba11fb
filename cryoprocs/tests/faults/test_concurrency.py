"""Two runs on one output: exactly one succeeds, the other fails at once naming the output
and the holder's process id, and the output is the winner's. Runs of one tilt series each
(a protocol's item steps) share a folder."""
import os
import time

import pytest

from . import data as fault_data
from . import (claimed_tilt_series, held_by, mrc_digest, one_line, run_cli, slowed, start,
               temporaries, wait_for)


@pytest.fixture
def vol(tmp_path):
    fault_data.write_volume(tmp_path / "vol.mrc", fault_data.tomogram((16, 48, 48)))
    fault_data.write_volume(tmp_path / "mask.mrc", fault_data.mask_volume((16, 48, 48)))
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
    wait_for(held_by(lock, proc), proc, what="the first run's claim")
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
    pstar, tstar = fault_data.relion_project(tmp_path / "proj")
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


# ----------------------------------------------------------------------------- per-item runs
@pytest.fixture
def project(tmp_path):
    pstar, tstar = fault_data.relion_project(tmp_path / "proj")
    return tmp_path, pstar, tstar


def _relion_argv(cmd, base, pstar, tstar, out):
    argv = [cmd, "--particles", pstar, "--tomograms", tstar, "--box-size", "16",
            "--project-dir", base / "proj", "--output-dir", out]
    return argv + (["--backend", "numpy"] if cmd == "reconstruct" else [])


def _slow_target(cmd):
    return ("cryoprocs.pipelines.extract:write_stack" if cmd == "extract" else
            "cryoprocs.pipelines.reconstruct:ReconstructJob._accumulate", 0.1 if
            cmd == "extract" else 1.5)


@pytest.mark.parametrize("cmd", ["extract", "reconstruct"])
def test_tilt_series_runs_of_one_folder_never_refuse_each_other(project, capsys, cmd):
    """What a protocol does (issue 12): one `--tilt-series` run per tilt series, at the same
    time into one folder, then the final stage (the STAR files / the final sum). Both item
    runs succeed, the final stage reuses their results, and the folder equals a whole run's;
    meanwhile another run of a tilt series being written, or a whole run into the folder,
    fails at once naming the holder's process id."""
    base, pstar, tstar = project
    ref = base / "ref"
    assert run_cli(_relion_argv(cmd, base, pstar, tstar, ref), capsys)[0] == 0
    out = base / "out"
    argv = _relion_argv(cmd, base, pstar, tstar, out)
    target, delay = _slow_target(cmd)
    procs = {}
    for name in ("TS_01", "TS_02"):
        extra = ["--tilt-series", name]
        if cmd == "extract":
            extra += ["--result", out / ("%s_extraction.json" % name)]
        procs[name] = start(argv + extra, prefix=slowed(target, delay))
    wait_for(lambda: len(claimed_tilt_series(out)) == 2, procs["TS_01"],
             what="both tilt-series claims")
    for extra in (["--tilt-series", "TS_02"], []):   # the same tilt series; a whole run
        t0 = time.time()
        rc, _, err = run_cli(argv + extra, capsys)
        line = one_line(err)
        assert rc == 2 and "output folder %s (tilt series TS_0" % out in line, err
        assert "process %d" % procs["TS_01"].pid in line or \
            "process %d" % procs["TS_02"].pid in line, err
        assert time.time() - t0 < 5.0
    for name, proc in procs.items():
        assert proc.wait(timeout=120) == 0, (name, proc.communicate())
    rc, stdout, err = run_cli(argv, capsys)             # the final stage
    assert rc == 0, err
    if cmd == "extract":
        assert "0 frames written" in stdout, stdout
        for name in ("TS_01", "TS_02"):
            os.remove(out / ("%s_extraction.json" % name))
    from .test_interrupts import same_results
    same_results(out, ref)
    assert temporaries(base) == []


def test_final_stage_claims_the_shared_outputs(project, capsys):
    """While a run writes the STAR files of a folder (the final stage of an extraction), a
    run of one tilt series into it may go on (its own stacks), but a second final stage
    fails at once naming particles.star and the holder's process id."""
    base, pstar, tstar = project
    out = base / "out"
    argv = _relion_argv("extract", base, pstar, tstar, out)
    assert run_cli(argv, capsys)[0] == 0
    os.remove(out / "particles.star")
    proc = start(argv, prefix=slowed("cryoprocs.convert.relion5:write_particles_star", 2.0))
    wait_for(held_by(out / ".particles.star.lock", proc), proc, what="the STAR files' claim")
    # the whole run holds every tilt series too: a tilt series run waits for it
    rc, _, err = run_cli(argv + ["--tilt-series", "TS_01"], capsys)
    assert rc == 2 and "process %d" % proc.pid in one_line(err), err
    assert proc.wait(timeout=60) == 0, proc.communicate()
    # a final stage alone (the protocol's registration, in another process) claims only
    # the STAR files: a tilt series run goes on, a second final stage fails
    code = ("import sys\n"
            "from cryoprocs.pipelines.extract import Stack2DJob, Stack2DSettings\n"
            "job = Stack2DJob(%r, %r, %r, Stack2DSettings(box=16), project_dir=%r)\n"
            "job.claim_shared()\nprint('held', flush=True)\nsys.stdin.readline()\n"
            % (str(pstar), str(tstar), str(out), str(base / "proj")))
    import subprocess
    import sys
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert claimed_tilt_series(out) == []
        assert run_cli(argv + ["--tilt-series", "TS_02"], capsys)[0] == 0
        rc, _, err = run_cli(argv, capsys)
        line = one_line(err)
        assert rc == 2 and "particles.star" in line and "process %d" % holder.pid in line, err
    finally:
        holder.communicate("done\n", timeout=30)      # exits: its claims are given back
    assert temporaries(base) == []
