"""SIGKILL and SIGTERM at several moments of extract, reconstruct, noise-fill and movie, then
a rerun without --overwrite: it completes and its outputs equal an uninterrupted run's.
SIGTERM (what SLURM and PBS send on time-out and scancel) and SIGHUP leave no temporary."""
import contextlib
import json
import os
import signal

import pytest

from . import data as fault_data
from . import (claimed_tilt_series, expected_status, interrupt, mrc_digest, run_cli, slowed,
               start, temporaries, tree, wait_for)

KILL, TERM, HUP = signal.SIGKILL, signal.SIGTERM, signal.SIGHUP


def _normalised(folder):
    """Content digests of every file under ``folder`` (hidden ones included), with the
    parts that legitimately differ between two runs left out: STAR comment lines and MRC
    header labels (creation times), run times in JSON reports, and the output folder's own
    path."""
    out = {}
    for rel, digest in tree(folder).items():
        p = os.path.join(folder, rel)
        if rel.endswith((".mrc", ".mrcs")):
            digest = mrc_digest(p)
        elif rel.endswith(".star"):
            with open(p) as fh:
                digest = [ln.replace(str(folder), "<OUT>") for ln in fh
                          if not ln.startswith("#")]
        elif rel.endswith(".json") and "partial" not in rel:
            with open(p) as fh:
                try:
                    doc = json.load(fh)
                except ValueError:
                    doc = None
            if isinstance(doc, dict):
                digest = json.dumps(_untimed(doc), sort_keys=True).replace(str(folder),
                                                                          "<OUT>")
        out[rel] = digest
    return out


def _untimed(doc):
    if isinstance(doc, dict):
        return {k: _untimed(v) for k, v in doc.items()
                if "seconds" not in k and "time" not in k}
    return [_untimed(v) for v in doc] if isinstance(doc, list) else doc


def same_results(folder, reference):
    """Assert that ``folder`` holds what an uninterrupted run wrote into ``reference``."""
    got, want = _normalised(folder), _normalised(reference)
    assert sorted(got) == sorted(want), (sorted(set(got) ^ set(want)))
    for k in want:
        assert got[k] == want[k], k


def _interrupted_then_rerun(capsys, argv_for, prefix, moment, sig, ref, out, base):
    """Run ``argv_for(out)`` (slowed by ``prefix``), send ``sig`` when ``moment()`` holds,
    check the interruption, rerun in process without --overwrite and compare with ``ref``."""
    proc = start(argv_for(out), prefix=prefix)
    wait_for(moment, proc)
    rc, err = interrupt(proc, sig)
    assert rc == expected_status(sig), err
    if sig != KILL:
        assert "interrupted by %s" % signal.Signals(sig).name in err, err
        assert "Traceback" not in err
        assert temporaries(base) == [], temporaries(base)
    rc, _, err = run_cli(argv_for(out), capsys)
    assert rc == 0, err
    assert temporaries(base) == []
    same_results(out, ref)


# ----------------------------------------------------------------------------- extract
@pytest.fixture(scope="module")
def project(tmp_path_factory):
    base = tmp_path_factory.mktemp("interrupts")
    pstar, tstar = fault_data.relion_project(base / "proj", n_particles=10)
    return base, pstar, tstar


def _exists_n(folder, pattern, n):
    def check():
        count = 0
        for root, _, files in os.walk(folder):
            count += sum(1 for f in files if f.endswith(pattern) and not f.startswith("."))
        return count >= n
    return check


@pytest.mark.parametrize("sig, when", [(TERM, "claimed"), (KILL, "3 stacks"),
                                       (TERM, "10 stacks"), (HUP, "15 stacks")])
def test_extract(project, capsys, sig, when):
    base, pstar, tstar = project

    def argv(out):
        return ["extract", "--particles", pstar, "--tomograms", tstar, "--box-size", "16",
                "--project-dir", base / "proj", "--output-dir", out]
    ref = base / "extract_ref"
    if not ref.exists():
        assert run_cli(argv(ref), capsys)[0] == 0
    out = base / ("extract_%s_%s" % (signal.Signals(sig).name, when.replace(" ", "")))
    if when == "claimed":
        moment = lambda: claimed_tilt_series(out)             # noqa: E731
    else:
        moment = _exists_n(out, "_stack2d.mrcs", int(when.split()[0]))
    _interrupted_then_rerun(capsys, argv, slowed("cryoprocs.pipelines.extract:write_stack",
                                                 0.08), moment, sig, ref, out, base)


# ----------------------------------------------------------------------------- reconstruct
@pytest.mark.parametrize("sig, when", [(KILL, "partial"), (TERM, "partial"),
                                       (KILL, "maps"), (TERM, "maps")])
def test_reconstruct(project, capsys, sig, when):
    base, pstar, tstar = project

    def argv(out):
        return ["reconstruct", "--particles", pstar, "--tomograms", tstar, "--box-size", "16",
                "--project-dir", base / "proj", "--output-dir", out, "--backend", "numpy"]
    ref = base / "reconstruct_ref"
    if not ref.exists():
        assert run_cli(argv(ref), capsys)[0] == 0
    out = base / ("reconstruct_%s_%s" % (signal.Signals(sig).name, when))
    if when == "partial":               # between the two tilt series
        prefix = slowed("cryoprocs.pipelines.reconstruct:ReconstructJob."
                        "accumulate_tilt_series", 0.6)
        moment = _exists_n(out / "partial", ".npz", 1)
    else:                               # while the maps are written (half1 before merged)
        prefix = slowed("cryoprocs.pipelines.reconstruct:write_fsc_star", 1.5)
        moment = (out / "merged.mrc").exists
    _interrupted_then_rerun(capsys, argv, prefix, moment, sig, ref, out, base)


# ----------------------------------------------------------------------------- noise-fill
@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    base = tmp_path_factory.mktemp("noisefill")
    fault_data.write_volume(base / "vol.mrc", fault_data.tomogram((24, 64, 64)))
    fault_data.write_volume(base / "mask.mrc", fault_data.mask_volume((24, 64, 64)))
    return base


@pytest.mark.parametrize("sig, when", [(KILL, "working"), (TERM, "working"),
                                       (KILL, "side outputs"), (TERM, "side outputs")])
def test_noise_fill(volumes, capsys, sig, when):
    """'side outputs': killed after the soft mask, preview and report got their names but
    before the tomogram (the issue's case: the rerun was refused)."""
    base = volumes

    def argv(out):
        out = str(out)
        return ["noise-fill", "--input_tomo", base / "vol.mrc", "--input_mask",
                base / "mask.mrc", "--output_tomo", out + "/t.mrc", "--soft-mask-out",
                out + "/t_w.mrc", "--preview", out + "/t.png", "--report", out + "/t.json",
                "--expand_pixels", "2", "--threads", "1"]
    ref = base / "ref"
    if not ref.exists():
        assert run_cli(argv(ref), capsys)[0] == 0
    out = base / ("nf_%s_%s" % (signal.Signals(sig).name, when.replace(" ", "")))
    if when == "working":
        prefix = slowed("cryoprocs.kernels.noisefill:noise_fill", 1.0)
        moment = lambda: out.exists() and any(".t.mrc." in f for f in os.listdir(out))  # noqa
    else:
        prefix = slowed("cryoprocs.convert.outputs:commit_temp", 0.4)
        moment = lambda: (out / "t_w.mrc").exists() and not (out / "t.mrc").exists()  # noqa
    _interrupted_then_rerun(capsys, argv, prefix, moment, sig, ref, out, base)


# ----------------------------------------------------------------------------- movie
@pytest.mark.parametrize("sig, when", [(KILL, "encoding"), (TERM, "encoding"),
                                       (KILL, "renaming"), (TERM, "renaming")])
def test_movie(volumes, capsys, sig, when):
    """An MJPG AVI with its PNG frames (--png): killed while encoding, or after the frames
    folder got its name and before the movie did."""
    base = volumes

    def argv(out):
        return ["movie", base / "vol.mrc", out, "--codec", "MJPG", "--png"]
    ref = base / "movie_ref"
    if not ref.exists():
        assert run_cli(argv(ref), capsys)[0] == 0
    out = base / ("movie_%s_%s" % (signal.Signals(sig).name, when))
    if when == "encoding":
        prefix = slowed("cryoprocs.kernels.movie:render_frame", 0.03)
        moment = lambda: out.exists() and any(".vol.avi." in f for f in os.listdir(out))  # noqa
    else:
        prefix = slowed("cryoprocs.convert.outputs:commit_temp", 0.5)
        moment = lambda: (out / "vol_frames").exists() and not (out / "vol.avi").exists()  # noqa
    _interrupted_then_rerun(capsys, argv, prefix, moment, sig, ref, out, base)


def _group_members(pgid):
    """Running processes (zombies left out: an orphan's exit status is for init to collect)
    of the process group ``pgid``, from /proc."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(name))
    return found


def _group_gone(pgid, timeout=0.0):
    """True when no running process of the process group ``pgid`` is left (e.g. an ffmpeg
    child) now, or within ``timeout`` s; what is left then is killed."""
    import time
    t0 = time.time()
    while _group_members(pgid):
        if time.time() - t0 >= timeout:
            for pid in _group_members(pgid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("sig, kind", [(TERM, "h264"), (HUP, "h264"), (KILL, "h264"),
                                       (TERM, "gif-particles")])
def test_movie_ffmpeg(volumes, capsys, sig, kind):
    """An H.264 movie (frames fed to ffmpeg, repeats from the frame cache) and a colour GIF
    with particles drawn (ffmpeg with a palette file): SIGTERM / SIGHUP kill the ffmpeg child
    and remove its temporaries (movie and palette); after any interruption a rerun without
    --overwrite gives the uninterrupted movie."""
    base = volumes
    parts = base / "parts.csv"
    parts.write_text("x,y,z,score\n20,30,12,0.5\n40,12,5,0.9\n")
    codec = ["--codec", "h264"] if kind == "h264" else \
        ["--codec", "gif", "--particles", parts, "--color-by", "score"]
    ext = ".mp4" if kind == "h264" else ".gif"

    def argv(out):
        return ["movie", base / "vol.mrc", out] + codec
    ref = base / ("movie_ref_%s" % kind)
    if not ref.exists():
        assert run_cli(argv(ref), capsys)[0] == 0
    out = base / ("movie_%s_%s" % (signal.Signals(sig).name, kind))
    prefix = slowed("cryoprocs.kernels.movie:render_frame", 0.03)
    proc = start(argv(out), prefix=prefix)
    # the moment: the movie's temporary exists (ffmpeg is being started or runs)
    wait_for(lambda: out.exists() and any(f.startswith(".vol%s." % ext) and ".partial" in f
                                          for f in os.listdir(out)), proc)
    rc, err = interrupt(proc, sig)
    assert rc == expected_status(sig), err
    # SIGTERM / SIGHUP: killed and reaped by the run before it exits (none left the moment
    # it is gone); SIGKILL: the orphan ends by itself when its input pipe closes
    assert _group_gone(proc.pid, 10.0 if sig == KILL else 0.0), \
        "the ffmpeg child outlived the interrupted run"
    if sig != KILL:
        assert "Traceback" not in err
        assert temporaries(base) == [], temporaries(base)
    rc, _, err = run_cli(argv(out), capsys)
    assert rc == 0, err
    assert temporaries(base) == []
    same_results(out, ref)


# ----------------------------------------------------------------------------- mask
@pytest.mark.parametrize("sig", [KILL, TERM])
def test_mask_save_mask(volumes, capsys, sig):
    """mask --save-mask, interrupted after the saved mask got its name and before the masked
    output did: the rerun without --overwrite completes (the kill's leftover mask is removed
    by the output's claim) and equals an uninterrupted run."""
    base = volumes

    def argv(out):
        os.makedirs(str(out), exist_ok=True)
        return ["mask", "--input", base / "vol.mrc", "--output", out / "masked.mrc",
                "--mask-file", base / "mask.mrc", "--save-mask", out / "saved_mask.mrc"]
    ref = base / "mask_ref"
    if not ref.exists():
        assert run_cli(argv(ref), capsys)[0] == 0
    out = base / ("mask_%s" % signal.Signals(sig).name)
    prefix = slowed("cryoprocs.convert.outputs:commit_temp", 0.5)
    moment = lambda: (out / "saved_mask.mrc").exists() and \
        not (out / "masked.mrc").exists()  # noqa
    _interrupted_then_rerun(capsys, argv, prefix, moment, sig, ref, out, base)
