"""Base class shared by the cryoprocs protocols: threads, steps, paths. No image maths here."""
import contextlib
import logging
import os
import threading

from pwem.protocols import EMProtocol
from pyworkflow.protocol import STEPS_PARALLEL

logger = logging.getLogger(__name__)

#: thread limits are process-wide (BLAS/OpenMP pools, OpenCV) while the steps of a run are
#: threads of one process: the first step to enter sets them, the last to leave restores them
_LIMITS_LOCK = threading.Lock()
_LIMITS = {"depth": 0, "restore": []}


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

    def getBinThreads(self):
        """Threads of one item step's kernel, as the run log states them ("binary Threads").

        cryoprocs declares only pyworkflow's "Scipion threads" (``addParallelSection(threads=N,
        mpi=0)``): they are the total for the run, shared by the item steps running at once
        (:meth:`_kernelThreads`). Before the steps exist this is what a single item gets
        (all N); once they are inserted, what each of them gets."""
        if self.modeSerial():
            return super().getBinThreads()
        return self._kernelThreads(getattr(self, '_nItemSteps', 1) or 1)

    def _kernelThreads(self, nItems):
        """Threads for one step's kernel when ``nItems`` item steps share the run."""
        total = self._totalThreads()
        concurrent = max(1, min(int(nItems), total - 1))
        return max(1, total // concurrent)

    @contextlib.contextmanager
    def _threadLimits(self, threads, opencv=False):
        """Limit the BLAS/OpenMP pools of numpy/scipy (and OpenCV's pool with ``opencv``) to
        ``threads`` while a step runs.

        BLAS and OpenCV pools are process-wide and concurrent steps are threads of one
        process: those limits are set by the first step that enters and restored when the
        last one leaves (all steps of a run ask for the same number, :meth:`_kernelThreads`).
        OpenMP's thread count belongs to the calling thread: each step sets and restores its
        own.
        """
        from threadpoolctl import threadpool_limits
        with _LIMITS_LOCK:
            if _LIMITS["depth"] == 0:
                ctl = threadpool_limits(limits=int(threads), user_api="blas")
                _LIMITS["restore"] = [ctl.restore_original_limits]
            if opencv and not _LIMITS.get("opencv"):
                import cv2
                previous = cv2.getNumThreads()
                cv2.setNumThreads(int(threads))
                _LIMITS["opencv"] = True
                _LIMITS["restore"].append(lambda: cv2.setNumThreads(previous))
            _LIMITS["depth"] += 1
        try:
            with threadpool_limits(limits=int(threads), user_api="openmp"):
                yield
        finally:
            with _LIMITS_LOCK:
                _LIMITS["depth"] -= 1
                if _LIMITS["depth"] == 0:
                    for restore in reversed(_LIMITS["restore"]):
                        restore()
                    _LIMITS.update(restore=[], opencv=False)

    # ---------------------------------------------------------------- steps
    def _insertItemSteps(self, func, argsList, prerequisites=()):
        """Insert one parallel step per args tuple; return their step ids."""
        ids = []
        self._nItemSteps = len(argsList)
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
