"""Shared base of the protocol tests: every run launched by a test must end cleanly.

pyworkflow's ``BaseTest.launchProtocol`` only checks the status the protocol had when its
process returned. A run can raise later (in ``_endRun``, when the protocol is stored) and
still show "finished" while its ``endTime`` is never stored and ``run.stderr`` holds a
traceback. :func:`assert_run_clean` checks what the project database and the log really say,
and :class:`CryoprocsBaseTest` applies it to every run a test launches.
"""
from pyworkflow.tests import BaseTest

from cryoprocs.scipion_runs import run_problems


def assert_run_clean(project, prot):
    """Raise AssertionError naming the run and every reason it did not end cleanly."""
    problems = run_problems(project, prot)
    if problems:
        raise AssertionError("run %s did not end cleanly: %s"
                             % (prot.getRunName(), "; ".join(problems)))


class CryoprocsBaseTest(BaseTest):
    """``BaseTest`` whose ``launchProtocol`` also checks, for a run expected to succeed,
    that it ended cleanly (:func:`assert_run_clean`)."""

    @classmethod
    def launchProtocol(cls, prot, **kwargs):
        prot = super().launchProtocol(prot, **kwargs)
        if prot.isFinished():
            assert_run_clean(cls.proj, prot)
        return prot
