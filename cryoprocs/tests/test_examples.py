"""The batch examples of examples/ run unchanged apart from their data paths, through
``cryoprocs python``, on the demo's real data (harness: cryoprocs/tests/readme_examples.py).

examples/tomography_chain.py reads its inputs under /data/tomo; ``EXAMPLE_DATA`` of the
harness builds them from the demo's data (../shared/data/real): the HIV VLP tomogram and a
mask of its real particles as they are, the template-matching maps and the tilt series
derived from the tomogram as the demo derives them (shell cross-correlation; RELION 5
projection with CTF, dose and noise), since the demo data have neither.
"""
import glob
import json
import os

import mrcfile
import numpy as np
import pytest

from cryoprocs.tests import readme_examples
from cryoprocs.tests import shared_data

pytestmark = pytest.mark.slow

CHAIN = "examples/tomography_chain.py"
DOC_JOBS = [CHAIN]          # started by the doc_runs fixture with the README's examples
TOMO = readme_examples.HIV_TOMO
TSID = readme_examples.HIV_TSID


@pytest.fixture(scope="module")
def chain(doc_runs):
    res = doc_runs.result(CHAIN)
    print("%s: %.1f s" % (CHAIN, res.seconds))
    return res, shared_data("real")[:-len("/real")]


def _runs(res, pattern):
    project = os.path.join(res.scratch, "cryoprocs-home", "ScipionUserData", "projects", "hiv")
    return sorted(glob.glob(os.path.join(project, "Runs", pattern)))


def test_tomography_chain_runs_unchanged(chain):
    res, _ = chain
    assert res.returncode == 0, res.failure()
    assert "Traceback" not in res.stderr, res.failure()
    for log in _runs(res, "*/logs/run.stderr"):
        assert "Traceback" not in open(log).read(), log
    assert len(_runs(res, "*")) == 9


def test_tomography_chain_numbers(chain):
    """Noise fill keeps the segmented voxels bit for bit; the picks are the 9 VLP centres
    implied by the real particles; the average of the picked VLPs, and each half map, has
    its brightest shell at the VLP radius, and the half maps agree at low resolution."""
    from scipy.spatial import cKDTree
    from cryoprocs.demo.data import load_hiv_particles
    from cryoprocs.demo.steps.peaks import vlp_centres
    res, root = chain
    assert res.returncode == 0, res.failure()
    tomo = mrcfile.read(os.path.join(root, TOMO))
    seg = mrcfile.read(os.path.join(root, "real/hiv_vlp/hiv_particle_shell_mask_r3.mrc")) > 0
    filled = mrcfile.read(glob.glob(os.path.join(_runs(res, "*NoiseFill")[0], "extra",
                                                 "*_noisefilled.mrc"))[0])
    np.testing.assert_array_equal(filled[seg], tomo[seg])
    assert not np.array_equal(filled[~seg], tomo[~seg])

    picks = np.loadtxt(glob.glob(os.path.join(_runs(res, "*PeakPicking")[0], "extra",
                                              "%s_picks.csv" % TSID))[0],
                       delimiter=",", skiprows=1, usecols=(0, 1, 2), ndmin=2)
    pos, normals = load_hiv_particles(os.path.join(root, "real/hiv_vlp/tomo_point.npy"),
                                      os.path.join(root, "real/hiv_vlp/tomo_vector.npy"))
    ref = vlp_centres(pos, normals)
    dist, idx = cKDTree(ref).query(picks)
    assert len(picks) == len(ref) == 9 and len(set(idx)) == 9 and dist.max() < 2.0, dist

    rec = json.load(open(os.path.join(_runs(res, "*Reconstruct*")[0], "extra",
                                      "reconstruction.json")))
    stacks = glob.glob(os.path.join(_runs(res, "*ExtractSubtomos")[0], "extra", "Subtomograms",
                                    TSID, "*_stack2d.mrcs"))
    # VLPs closer than box/2 to the image edges have no stack: 7 of the 9 with box 48
    assert rec["used"] == len(stacks) >= 7 and rec["half_sets"]
    assert np.mean(rec["fsc"][1:4]) > 0.6, rec["fsc"][:8]       # half maps agree (> 600 A)
    merged = res.stdout.strip().splitlines()[-2].split(": ", 1)[1]
    for name in ("merged", "half1", "half2"):
        avg = mrcfile.read(os.path.join(os.path.dirname(merged), name + ".mrc"))
        assert avg.shape == (48, 48, 48)
        z, y, x = np.indices(avg.shape) - 24
        r = np.rint(np.sqrt(x * x + y * y + z * z)).astype(int).ravel()
        profile = np.bincount(r, avg.ravel()) / np.bincount(r)
        # the brightest shell of the average is the Gag lattice at the VLP radius (11.5)
        assert 9 <= int(np.argmax(profile[:20])) <= 14, (name, profile[:20])
