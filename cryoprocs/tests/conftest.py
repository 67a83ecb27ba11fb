"""Fixtures shared by test modules (the root conftest.py sets up the Scipion environment)."""
import pytest

from cryoprocs.tests import shared_data


@pytest.fixture(scope="session")
def doc_runs(request, tmp_path_factory):
    """The README's examples and examples/*.py, started together in a few worker threads
    when the first test needs one of them: only those whose tests were selected (a test
    parametrized with ``job``, or listed in its module's ``DOC_JOBS``)."""
    from cryoprocs.tests import readme_examples as R
    for folder in ("real", "cryocat_peaks", R.RELION_PROJECT):
        root = shared_data(folder)[:-len(folder) - 1]
    wanted = set()
    for item in request.session.items:
        spec = getattr(item, "callspec", None)
        if spec is not None and isinstance(spec.params.get("job"), R.Job):
            wanted.add(spec.params["job"].key)
        wanted.update(getattr(item.module, "DOC_JOBS", ()))
    the_plan = R.plan(R.readme_blocks())
    jobs = [j for j in R.readme_jobs(the_plan) + R.example_jobs() if j.key in wanted]
    runs = R.DocRuns(jobs, str(tmp_path_factory.mktemp("docs")), root, the_plan.scripts)
    yield runs
    runs.close()
