"""The README's examples run as written (harness: cryoprocs/tests/readme_examples.py).

Every fenced shell block that invokes ``cryoprocs`` runs in bash in a fresh scratch folder
with the README's input names linked to real data, and the batch script runs through
``cryoprocs python`` (and ``eval "$(cryoprocs env)"``) as a user would run it; only the data
paths are substituted. The runs overlap in a few threads (the ``doc_runs`` fixture), one test
per block.
"""
import glob
import os

import mrcfile
import numpy as np
import pytest

from cryoprocs.tests import readme_examples
from cryoprocs.tests import shared_data_root

PLAN = readme_examples.plan(readme_examples.readme_blocks())
JOBS = readme_examples.readme_jobs(PLAN)


def _check_mask_map(result):
    """mask_map.py: the masked map is the ribosome map times a raised cosine from 22 to 28 px,
    written where the script says, in a finished ApplyMask3D run."""
    from cryoprocs.kernels import masks
    out = result.stdout.strip().splitlines()[0]
    assert out.endswith(".mrc") and os.path.isfile(out), result.stdout
    assert os.path.realpath(out).startswith(os.path.realpath(result.scratch))
    ref = mrcfile.read(os.path.join(shared_data_root(),
                                    readme_examples.DATA["/data/emd_3883.mrc"].describe))
    exp = masks.apply_mask(ref[None], masks.make_mask(ref.shape, "raised_cosine", inner_radius=22,
                                                      outer_radius=28))[0]
    with mrcfile.open(out) as m:
        np.testing.assert_allclose(m.data, exp, rtol=0, atol=1e-6 * np.abs(ref).max())
        assert abs(float(m.voxel_size.x) - 8.66) < 1e-3
    stderr = glob.glob(os.path.join(os.path.dirname(os.path.dirname(out)), "logs", "run.stderr"))
    assert stderr and "Traceback" not in open(stderr[0]).read()


#: result checks of the README's batch scripts, by script name
CHECKS = {"mask_map.py": _check_mask_map}


@pytest.mark.slow
@pytest.mark.parametrize("job", JOBS, ids=[j.key for j in JOBS])
def test_readme_example_runs_as_written(doc_runs, job):
    result = doc_runs.result(job.key)
    print("%s: %.1f s" % (job.block.where, result.seconds))
    assert result.returncode == 0, result.failure()
    assert "Traceback" not in result.stderr, result.failure()
    names = ({job.block.script_name} if job.kind == "python"
             else readme_examples._tokens(job.block.text))
    for name, check in CHECKS.items():
        if name in names:
            check(result)


def test_readme_harness_runs_what_it_should():
    """The batch script runs through both documented ways, every command section's block is
    run, and what is skipped is installation instructions (no cryoprocs call) only."""
    runs = [j.block.text for j in JOBS]
    assert sum("mask_map.py" in t for t in runs) >= 2
    assert any(t.startswith("eval \"$(cryoprocs env)\"") for t in runs)
    for command in ("mask", "noise-fill", "pick", "extract", "reconstruct", "movie", "--help"):
        assert any(("cryoprocs %s" % command) in t for t in runs), command
    for block, reason in PLAN.skipped:
        assert block.language != "python" and not block.runs_cryoprocs, (block.where, reason)
    assert "mask_map.py" in PLAN.scripts and not PLAN.python


def test_harness_refuses_unknown_data_paths_and_unfenced_examples(tmp_path):
    text = 'imp = open("/data/emd_3883.mrc"); other = "/data/unknown_map.mrc"\n'
    with pytest.raises(KeyError, match="/data/unknown_map.mrc"):
        readme_examples.substitute_data_paths(text, {"/data/emd_3883.mrc": "/x/map.mrc"},
                                              "README.md:1")
    doc = tmp_path / "doc.md"
    doc.write_text("# T\n\nRun:\n\n    cryoprocs mask --input a.mrc --output b.mrc\n")
    with pytest.raises(ValueError, match="doc.md:5: an indented code block runs cryoprocs"):
        readme_examples.readme_blocks(str(doc))
    doc.write_text("# T\n<!-- readme-test: skip needs SLURM -->\n```bash\nsbatch --wrap "
                   "'cryoprocs mask --input a.mrc --output b.mrc'\n```\n\n```\ncryoprocs "
                   "<command> --help\n```\n")
    plan = readme_examples.plan(readme_examples.readme_blocks(str(doc)))
    assert [(b.line, why) for b, why in plan.skipped] == [(3, "readme-test skip: needs SLURM")]
    assert [b.line for b in plan.shell] == [7]
    assert 'for command in mask ' in readme_examples._expand_placeholder(plan.shell[0].text)
