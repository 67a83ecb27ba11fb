"""Base class shared by the cryoprocs protocols: threads, steps, paths. No image maths here."""
import contextlib
import logging
import os

from pwem.protocols import EMProtocol
from pyworkflow.protocol import STEPS_PARALLEL

logger = logging.getLogger(__name__)


class ProtCryoprocsBase(EMProtocol):
    """Common plumbing for cryoprocs protocols (a base class: not offered in the GUI).

    Threads: ``numberOfThreads`` (the form's parallel section) is the total number of
    threads a run may use. Steps run in parallel (``STEPS_PARALLEL``: up to N-1 item steps at
    once, the Nth thread being the protocol's main thread) and each step's kernel gets
    ``N // concurrent steps`` threads (see :meth:`_kernelThreads`).
    """
    _label = None          # base class: hidden from the protocol lists
    stepsExecutionMode = STEPS_PARALLEL

    # ---------------------------------------------------------------- threads
    def _totalThreads(self):
        return max(1, int(self.numberOfThreads.get() or 1))

    def _kernelThreads(self, nItems):
        """Threads for one step's kernel when ``nItems`` item steps share the run."""
        total = self._totalThreads()
        concurrent = max(1, min(int(nItems), total - 1))
        return max(1, total // concurrent)

    @contextlib.contextmanager
    def _threadLimits(self, threads):
        """Limit BLAS/OpenMP pools of numpy/scipy to ``threads`` inside a step."""
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:          # pragma: no cover - threadpoolctl is a dependency
            yield
            return
        with threadpool_limits(limits=int(threads)):
            yield

    # ---------------------------------------------------------------- steps
    def _insertItemSteps(self, func, argsList, prerequisites=()):
        """Insert one parallel step per args tuple; return their step ids."""
        ids = []
        for args in argsList:
            ids.append(self._insertFunctionStep(func, *args, prerequisites=list(prerequisites),
                                                needsGPU=False))
        return ids

    # ---------------------------------------------------------------- paths
    def _projectPath(self, path):
        """Absolute path of a file stored relative to the project folder."""
        if os.path.isabs(path):
            return path
        return os.path.join(self.getProject().getPath(), path) if self.getProject() \
            else os.path.abspath(path)
