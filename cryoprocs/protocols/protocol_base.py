"""Base class shared by the cryoprocs protocols: threads, item steps run as ``cryoprocs``
commands, tsId matching, paths, memory estimates. No image maths here.

Every per-item step (a tomogram, a tilt series, a volume, a chunk of particles) runs the
``cryoprocs`` console command through ``self.runJob`` (:meth:`ProtCryoprocsBase._runCryoprocs`),
so that Scipion's queue mode "Use queue for jobs" (``QUEUE_FOR_JOBS = Y``) submits one cluster
job per item, while a local run executes the same commands in parallel threads. The commands
write their results (outputs and small JSON/NPZ result files) atomically into the run folder;
a step then checks them (:meth:`ProtCryoprocsBase._requireResults`), because pyworkflow's queue
executor does not look at a job's exit status: a failed or cancelled job must fail its step
through its missing result.
"""
import json
import logging
import math
import os
import shlex
import sys

from pwem.protocols import EMProtocol
from pyworkflow.protocol import STEPS_PARALLEL

logger = logging.getLogger(__name__)

#: the summary line of a run whose outputs are not registered yet
NOT_READY = 'Output not ready yet.'

#: memory (MB) of a cryoprocs command before it reads anything: Python, NumPy, SciPy, mrcfile
COMMAND_BASE_MB = 150

#: environment variables that bound the thread pools of a command (BLAS, OpenMP, numba)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


class CryoprocsStepError(RuntimeError):
    """A step's command did not produce its results (failed, cancelled or killed job)."""


def cryoprocs_program():
    """``(program, leading arguments)`` that run the ``cryoprocs`` command of this Python.

    The console script installed next to the running interpreter (a virtual environment's
    or conda environment's ``bin/``: what ``pip install`` and ``scipion3 installp`` create) is
    used when it exists, so that run logs show ``.../bin/cryoprocs noise-fill ...`` as users
    type it; otherwise (e.g. a ``pip install --user``, whose scripts go to ``~/.local/bin``)
    ``<python> -m cryoprocs.cli``. Both run :func:`cryoprocs.cli.main` of the package this
    interpreter imports, so a queue job (``#SBATCH --export=ALL``) runs the same code.
    """
    script = os.path.join(os.path.dirname(sys.executable), 'cryoprocs')
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return script, []
    return sys.executable, ['-m', 'cryoprocs.cli']


def chunk_ranges(n, nChunks):
    """``[(i0, i1), ...]``: ``range(n)`` cut into at most ``nChunks`` contiguous, nearly equal
    pieces (none empty)."""
    n, nChunks = int(n), max(1, int(nChunks))
    if n <= 0:
        return []
    size = int(math.ceil(n / float(min(n, nChunks))))
    return [(i0, min(i0 + size, n)) for i0 in range(0, n, size)]


def safe_name(name):
    """``name`` with every character other than letters, digits, ``-``, ``_`` and ``.``
    replaced by ``_`` (tsIds in file names)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))


def read_json(path, default=None):
    """The JSON content of ``path`` (file closed), or ``default`` when it is missing or
    unreadable."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def parse_memory_mb(value):
    """Megabytes of a queue memory value: ``"8000"``, ``"8000M"``, ``"8G"``, ``"8GB"``
    (plain numbers are MB, as Scipion's host templates label JOB_MEMORY); None if unreadable."""
    if value is None:
        return None
    text = str(value).strip().upper().rstrip('B')
    scale = {'K': 1.0 / 1024, 'M': 1.0, 'G': 1024.0, 'T': 1024.0 ** 2}.get(text[-1:], None)
    number = text[:-1] if scale is not None else text
    try:
        return float(number) * (scale or 1.0)
    except ValueError:
        return None


class ProtCryoprocsBase(EMProtocol):
    """Common plumbing for cryoprocs protocols (a base class: not offered in the GUI).

    Threads: ``numberOfThreads`` (the form's parallel section) is the total number of
    threads a run may use. Steps run in parallel (``STEPS_PARALLEL``: up to N-1 item steps at
    once, the Nth thread being the protocol's main thread) and each step's command gets
    ``N // concurrent steps`` threads (see :meth:`_kernelThreads`), in every execution mode,
    so that local, whole-protocol queue and per-item queue runs give identical outputs.

    Memory: subclasses give the peak memory of each item (:meth:`_memoryItems`) and a
    sentence describing it (``_memoryHelp``); :meth:`warnings` warns when the queue's
    ``JOB_MEMORY`` is below what the largest item needs.
    """
    _label = None          # base class: hidden from the protocol lists
    stepsExecutionMode = STEPS_PARALLEL
    #: one sentence: the peak memory of one item as a function of its size (help, summary)
    _memoryHelp = None

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
        """Threads for one step's command when ``nItems`` item steps share the run."""
        total = self._totalThreads()
        concurrent = max(1, min(int(nItems), total - 1))
        return max(1, total // concurrent)

    # ---------------------------------------------------------------- steps
    def _insertItemSteps(self, func, argsList, prerequisites=()):
        """Insert one parallel step per args tuple; return their step ids."""
        ids = []
        self._nItemSteps = len(argsList)
        for args in argsList:
            ids.append(self._insertFunctionStep(func, *args, prerequisites=list(prerequisites),
                                                needsGPU=False))
        return ids

    def _commandEnviron(self, threads):
        """The environment of a command: this process's, with the BLAS/OpenMP/numba pools
        bounded to ``threads`` (a queue job inherits it through ``--export=ALL``)."""
        import pyworkflow.utils as pwutils
        env = pwutils.Environ(os.environ)
        for var in THREAD_VARIABLES:
            env[var] = str(int(threads))
        return env

    def _runCryoprocs(self, command, args, threads=1):
        """Run ``cryoprocs <command> <args...>`` as this step's job (``self.runJob``).

        Locally the command runs as a subprocess of the step's thread; with "Use queue for
        jobs" pyworkflow submits it as one queue job and waits until the queue no longer
        lists it. The arguments are quoted for the shell that runs the command line.
        """
        program, lead = cryoprocs_program()
        words = [str(a) for a in lead + [command] + list(args)]
        self.runJob(shlex.quote(program), ' '.join(shlex.quote(w) for w in words),
                    numberOfThreads=int(threads), env=self._commandEnviron(threads))

    def _requireResults(self, label, paths, check=None):
        """Raise :class:`CryoprocsStepError` unless every path in ``paths`` exists (and
        ``check()``, when given, returns None; otherwise its text is the problem).

        The commands write their results under temporary names and rename them when
        complete, so an existing result is a complete one. pyworkflow's queue executor
        returns the same way whether a job succeeded, failed or was cancelled: this check is
        what fails the step of a job that did not finish its work.
        """
        missing = [p for p in paths if not os.path.exists(p)]
        problem = None
        if not missing and check is not None:
            problem = check()
        if missing or problem:
            perItem = (self.getQueueParams()[1] or {}).get('QUEUE_FOR_JOBS') == 'Y' \
                if self.useQueue() else False
            where = ('the job logs in %s' % self._getLogsPath()) if perItem \
                else self.getStderrLog()
            raise CryoprocsStepError(
                '%s: the cryoprocs command did not complete (%s); it failed or was '
                'cancelled, see %s. "Continue" redoes only the unfinished items.'
                % (label, problem or 'missing %s' % ', '.join(missing), where))

    # ---------------------------------------------------------------- tsIds
    @staticmethod
    def _byTsId(setObj):
        """``{tsId: clone}`` of the enabled items of a set (empty for None)."""
        if setObj is None:
            return {}
        return {item.getTsId(): item.clone() for item in setObj.iterItems()
                if item.isEnabled()}

    @staticmethod
    def _matchTsIds(named):
        """Match dicts by tsId. ``named``: ``[(name, {tsId: item})]`` (a None dict is left
        out). Returns ``(tsIds, unmatched)``: the tsIds in every dict, sorted, and one
        sentence per dict with tsIds the others lack."""
        dicts = [(n, d) for n, d in named if d is not None]
        if not dicts:
            return [], []
        common = set(dicts[0][1])
        for _, d in dicts[1:]:
            common &= set(d)
        unmatched = ['%s without a match: %s' % (n, ', '.join(sorted(set(d) - common)))
                     for n, d in dicts if set(d) - common]
        return sorted(common), unmatched

    def _tsIdPath(self, tsId, suffix):
        """``extra/<tsId><suffix>`` with the tsId made safe for a file name."""
        return self._getExtraPath(safe_name(tsId) + suffix)

    # ---------------------------------------------------------------- paths
    def _projectPath(self, path):
        """Absolute path of a file stored relative to the project folder."""
        if os.path.isabs(path):
            return path
        return os.path.join(self.getProject().getPath(), path) if self.getProject() \
            else os.path.abspath(path)

    # ---------------------------------------------------------------- memory
    def _memoryItems(self):
        """``[(item label, peak MB of its command)]`` for the items of this run (subclasses);
        an empty list when the inputs are not known."""
        return []

    def _largestItemMemory(self):
        """``(label, MB)`` of the item whose command needs the most memory, or None."""
        try:
            items = self._memoryItems()
        except Exception as exc:            # inputs not ready: nothing to estimate
            logger.debug('no memory estimate: %s', exc)
            return None
        return max(items, key=lambda t: t[1]) if items else None

    def _queueMemoryWarnings(self):
        """A warning when the queue's JOB_MEMORY is below the memory a job needs: the
        largest item with "Use queue for jobs", the concurrent item steps (plus the protocol
        process) when the whole protocol is one job."""
        if not self.useQueue():
            return []
        _, params = self.getQueueParams()
        limit = parse_memory_mb((params or {}).get('JOB_MEMORY'))
        largest = self._largestItemMemory()
        if limit is None or largest is None:
            return []
        if (params or {}).get('QUEUE_FOR_JOBS') == 'Y':      # as useQueueForSteps()
            need, what = largest[1], 'one job per item; the largest item, %s,' % largest[0]
        else:
            items = sorted((mb for _, mb in self._memoryItems()), reverse=True)
            concurrent = max(1, min(len(items), self._totalThreads() - 1))
            need = sum(items[:concurrent]) + 2 * COMMAND_BASE_MB
            what = ('the whole protocol in one job; %d item step%s at once (largest: %s)'
                    % (concurrent, 's' if concurrent > 1 else '', largest[0]))
        if need <= limit:
            return []
        return ['The queue memory (JOB_MEMORY = %s MB) is below the estimated peak memory of '
                '%s: %.0f MB. %s Increase JOB_MEMORY or the job may be killed.'
                % (('%g' % limit), what, need, self._memoryHelp or '')]

    def _memorySummary(self):
        """Summary line with the estimated peak memory of the largest item."""
        largest = self._largestItemMemory()
        if largest is None:
            return []
        return ['Estimated peak memory per item (one command or queue job): %.0f MB for the '
                'largest, %s.' % (largest[1], largest[0])]

    def warnings(self):
        """The protocol's own warnings plus the queue memory check (shown before a launch)."""
        return list(self._warnings() or []) + self._queueMemoryWarnings()

    def summary(self):
        """pyworkflow's summary (``_summary`` of the subclass, comments, errors) followed by
        the estimated peak memory per item."""
        lines = super().summary()
        try:
            return lines + self._memorySummary()
        except Exception as exc:            # never let an estimate break the summary
            logger.debug('no memory summary: %s', exc)
            return lines
