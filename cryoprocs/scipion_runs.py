"""Checks that a Scipion protocol run really ended cleanly (used by the demo and the tests).

pyworkflow marks a run finished before it stores the protocol for the last time
(``Protocol._endRun``); an exception there leaves the run "finished" in the GUI with no
``endTime`` and a traceback in ``run.stderr``. :func:`run_problems` reads what the project
database and the run's log really hold. No pyworkflow import: the project object is passed in.
"""
import os


def run_problems(project, prot):
    """Reasons why the run of ``prot`` did not end cleanly (empty list when it did).

    Reads the protocol back from the project database (what the GUI shows) and the run's
    ``run.stderr``: the run must be finished, have its ``endTime`` stored and no Python
    traceback in its error log.
    """
    problems = []
    stored = project.mapper.selectById(prot.getObjId())
    if stored is None:
        return ["run %s is not in the project database" % prot.getRunName()]
    if not stored.isFinished():
        problems.append("status %s" % stored.getStatus())
    if not stored.endTime.hasValue():
        problems.append("endTime not stored")
    stderr = os.path.join(project.getPath(), stored.getStderrLog())
    if os.path.exists(stderr):
        with open(stderr, errors="replace") as fh:
            text = fh.read()
        if "Traceback" in text:
            problems.append("Traceback in %s:\n%s" % (stderr, text[-2000:]))
    return problems
