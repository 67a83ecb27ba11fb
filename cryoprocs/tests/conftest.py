"""Fixtures shared by test modules (the root conftest.py sets up the Scipion environment)."""
import pytest

from cryoprocs.tests import shared_data


@pytest.fixture(scope="session")
def doc_runs(request, tmp_path_factory):
    """The README's examples and examples/*.py, started together in a few worker threads
    when the first test needs one of them: only those whose tests were selected (a test
    parametrized with ``job``, or listed in its module's ``DOC_JOBS``)."""
    from cryoprocs.tests import readme_examples
    for folder in ("real", "cryocat_peaks", readme_examples.RELION_PROJECT):
        root = shared_data(folder)[:-len(folder) - 1]
    wanted = set()
    for item in request.session.items:
        spec = getattr(item, "callspec", None)
        if spec is not None and isinstance(spec.params.get("job"), readme_examples.Job):
            wanted.add(spec.params["job"].key)
        wanted.update(getattr(item.module, "DOC_JOBS", ()))
    the_plan = readme_examples.plan(readme_examples.readme_blocks())
    jobs = [j for j in readme_examples.readme_jobs(the_plan) + readme_examples.example_jobs()
            if j.key in wanted]
    runs = readme_examples.DocRuns(jobs, str(tmp_path_factory.mktemp("docs")), root,
                                   the_plan.scripts)
    yield runs
    runs.close()
