"""The ScoresPeakPicking demo step on the real HIV VLP tomogram: the shell-NCC score map picks
the VLP centres implied by the real particles."""
import os
import re
import subprocess
import sys

import pytest

from cryoprocs.tests import shared_data

pytestmark = pytest.mark.slow


def test_demo_peaks_step_finds_the_vlp_centres(tmp_path):
    data = shared_data("real")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIPION_")}
    res = subprocess.run([sys.executable, "-m", "cryoprocs.cli", "demo", "--workdir",
                          str(tmp_path), "--data", data, "--only", "peaks"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    m = re.search(r"(\d+) of the (\d+) VLP centres .* \(mean distance ([\d.]+) voxels", res.stdout)
    assert m, res.stdout[-3000:]
    found, total, dist = int(m.group(1)), int(m.group(2)), float(m.group(3))
    assert total == 9 and found == 9 and dist < 1.5
    lead = re.search(r"The (\d+) best picks are VLP centres", res.stdout)
    assert lead and int(lead.group(1)) == 9
