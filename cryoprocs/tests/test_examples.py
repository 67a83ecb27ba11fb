"""The batch examples of examples/ run unchanged apart from their data paths, through
``cryoprocs python``, on the demo's real data (harness: cryoprocs/tests/readme_examples.py).

examples/tomography_chain.py reads its inputs under /data/tomo; EXAMPLE_DATA builds them
from the demo's data (../shared/data/real): the HIV VLP tomogram and a mask of its real
particles as they are, the template-matching maps and the tilt series derived from the
tomogram as the demo derives them (shell cross-correlation; RELION 5 projection with CTF,
dose and noise), since the demo data have neither.
"""
import glob
import json
import os

import mrcfile
import numpy as np
import pytest

from cryoprocs.tests import readme_examples as R
from cryoprocs.tests import shared_data

pytestmark = pytest.mark.slow

EXAMPLES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                         "..", "examples"))
TOMO = "real/hiv_vlp/hiv_ts01_tomo_40A.mrc"
TSID = "hiv_ts01"


def _template_matching(dest, root):
    """Score map (normalised cross-correlation with a VLP-radius shell, as the demo's peak
    picking step computes it), its one-orientation angle map and angle list."""
    from cryoprocs.convert.mrc import read_mrc, write_mrc
    from cryoprocs.demo.steps.peaks import shell_ncc
    os.makedirs(dest)
    tomo = read_mrc(os.path.join(root, TOMO), dtype=np.float32)
    write_mrc(os.path.join(dest, "scores_%s.mrc" % TSID), shell_ncc(tomo), voxel_size=40.0)
    write_mrc(os.path.join(dest, "angles_%s.mrc" % TSID), np.zeros(tomo.shape, np.float32),
              voxel_size=40.0)
    with open(os.path.join(dest, "angles.txt"), "w") as fh:
        fh.write("0.0,0.0,0.0\n")


def _relion_project(dest, root):
    """A RELION 5 project of tilt series simulated from the tomogram (-60..60 deg, 3 deg
    steps, CTF, dose-symmetric pre-exposure, noise; the demo's simulation)."""
    from cryoprocs.pipelines.simulate import SimulationSettings, simulate_relion_project
    simulate_relion_project(os.path.join(root, TOMO), dest, TSID, SimulationSettings(), dest,
                            pixel_size=40.0)


#: /data/tomo paths of examples/tomography_chain.py -> demo data
EXAMPLE_DATA = {
    "/data/tomo/tomograms": R.folder({TSID + ".mrc": TOMO}),
    "/data/tomo/segmentations": R.folder({TSID + ".mrc":
                                          "real/hiv_vlp/hiv_particle_shell_mask_r3.mrc"}),
    "/data/tomo/template_matching": R.derived(_template_matching, "shell-NCC score map"),
    "/data/tomo/relion": R.derived(_relion_project, "simulated RELION 5 tilt series"),
}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = shared_data("real")[:-len("/real")]
    block = R.script_block(os.path.join(EXAMPLES, "tomography_chain.py"))
    scratch = str(tmp_path_factory.mktemp("tomography_chain"))
    res = R.run_python_script(block, scratch, root, EXAMPLE_DATA, args=["hiv"],
                              name="tomography_chain.py")
    print("examples/tomography_chain.py: %.1f s" % res.seconds)
    return res, root


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
