"""The demo Scipion project: runs every cryoprocs protocol on real data and prints a table.

Run by ``cryoprocs demo`` in a child process whose environment already holds the
``SCIPION_*`` variables (pyworkflow reads them at import time)::

    python -m cryoprocs.demo.workflow --workdir W --data-json W/inputs/data.json

Each protocol family contributes one module in :mod:`cryoprocs.demo.steps` (listed in
``STEPS`` there) with a function ``run(ctx)`` that imports what it needs through ``ctx``
and launches its protocols with :meth:`DemoContext.launch`.
"""
import argparse
import importlib
import json
import logging
import os
import re
import shutil
import sys
import time
import traceback

from ..protocols.texts import plain
from ..scipion_runs import run_problems

logger = logging.getLogger("cryoprocs.demo")

PROJECT_NAME = "cryoprocs_demo"
#: log of the demo run in its workdir: pyworkflow's INFO messages (``** Running command``,
#: project creation) and the demo's own, with tracebacks of failed steps
LOG_NAME = "demo.log"


class DemoStepFailed(RuntimeError):
    pass


class DemoContext:
    """What a demo step gets: the project, the data paths, an inputs folder, shared imports.

    Attributes
    ----------
    project : pyworkflow.project.Project
    data : dict
        demo file name -> absolute path (see :mod:`cryoprocs.demo.data`).
    inputs_dir : str
        folder for derived input files (e.g. MRC copies, particle stacks).
    rows : list
        one ``(label, status, outputs, seconds)`` tuple per launched protocol.
    notes : list of str
        result lines of the steps (e.g. a comparison with ground truth), printed after the
        table.
    """

    def __init__(self, project, data, inputs_dir):
        self.project = project
        self.data = data
        self.inputs_dir = inputs_dir
        self.rows = []
        self.notes = []
        self._shared = {}

    def note(self, text):
        """Record a result line for the end of the console output (also logged)."""
        logger.info(text)
        self.notes.append(text)

    def shared(self, key, factory):
        """Run ``factory(ctx)`` once (e.g. an import protocol) and reuse its result."""
        if key not in self._shared:
            self._shared[key] = factory(self)
        return self._shared[key]

    def new(self, protClass, label=None, **kwargs):
        prot = self.project.newProtocol(protClass, **kwargs)
        if label:
            prot.setObjLabel(label)
        return prot

    def launch(self, prot, label=None):
        """Launch ``prot`` (waiting), record a table row, raise :class:`DemoStepFailed` on failure."""
        label = label or prot.getObjLabel() or prot.getClassLabel()
        t0 = time.time()
        # one progress line per protocol: the label now, the status when it ends
        print("[%2d] %s ..." % (len(self.rows) + 1, label), end="", flush=True)
        errors = prot.validate()
        if errors:
            self._add_row(label, "invalid", "; ".join(errors), 0.0)
            raise DemoStepFailed("%s: %s" % (label, "; ".join(errors)))
        try:
            self.project.launchProtocol(prot, wait=True)
        except Exception as exc:          # launchProtocol raises on some failures
            logger.debug("launch of %s raised %s", label, exc)
        seconds = time.time() - t0
        status = prot.getStatus()
        problems = run_problems(self.project, prot) if prot.isFinished() else []
        if problems:              # e.g. an exception while storing the finished run
            status = "failed"
        outputs = ", ".join(_describe(name, obj) for name, obj in prot.iterOutputAttributes())
        if not outputs and prot.isFinished():       # file-only protocols (e.g. movies)
            outputs = plain(" ".join(prot.summary()[:1]))
        if not prot.isFinished():
            outputs = (prot.getErrorMessage() or "no output")[:200]
        elif problems:
            outputs = "; ".join(problems)[:200]
        self._add_row(label, status, outputs, seconds)
        if status != "finished":
            raise DemoStepFailed("%s %s: %s" % (label, status, prot.getErrorMessage()
                                                or "; ".join(problems)))
        return prot

    def _add_row(self, label, status, outputs, seconds):
        print(" %s (%.1f s)" % (status, seconds), flush=True)
        logger.info("%s: %s in %.1f s; %s", label, status, seconds, outputs)
        self.rows.append((label, status, outputs, seconds))


def _describe(name, obj):
    size = getattr(obj, "getSize", None)
    if callable(size):
        try:
            n = size()
            return "%s (%s, %d item%s)" % (name, obj.getClassName(), n, "" if n == 1 else "s")
        except Exception:
            pass
    return "%s (%s)" % (name, obj.getClassName())


def _create_project(workdir):
    from pyworkflow.project import Manager

    location = os.path.join(workdir, "projects")
    os.makedirs(location, exist_ok=True)
    path = os.path.join(location, PROJECT_NAME)
    manager = Manager()
    link = manager.getProjectPath(PROJECT_NAME)
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.islink(link) and os.path.realpath(link) == os.path.realpath(path):
        os.remove(link)
    elif os.path.lexists(link):
        raise RuntimeError("a Scipion project named %s already exists at %s; remove it or use "
                           "another --workdir" % (PROJECT_NAME, link))
    if os.path.exists(path):
        shutil.rmtree(path)              # our own previous demo run
    project = manager.createProject(PROJECT_NAME, location=location)
    os.chdir(project.path)
    return project


def _write_opener(workdir):
    """A shell script that opens the demo project in the pyworkflow GUI with this environment."""
    path = os.path.join(workdir, "open_project.sh")
    lines = ["#!/bin/sh", "# Opens the cryoprocs demo project in the Scipion (pyworkflow) GUI."]
    for key in sorted(k for k in os.environ if k.startswith("SCIPION_")):
        lines.append("export %s='%s'" % (key, os.environ[key]))
    # -O opens the window in this process (pw_project otherwise re-launches scipion-app)
    lines.append("exec '%s' -O -m pyworkflow.apps.pw_project %s" % (sys.executable, PROJECT_NAME))
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(path, 0o755)
    return path


def format_table(rows):
    header = ("protocol", "status", "outputs", "seconds")
    cells = [header] + [(r[0], r[1], r[2], "%.1f" % r[3]) for r in rows]
    widths = [min(max(len(str(c[i])) for c in cells), 90) for i in range(4)]
    lines = []
    for k, c in enumerate(cells):
        lines.append("  ".join(str(v)[:widths[i]].ljust(widths[i]) for i, v in enumerate(c)))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


class _PlainFormatter(logging.Formatter):
    """Log-file lines without the terminal colour codes pyworkflow puts in its messages."""
    _ANSI = re.compile(r"\x1b\[[0-9;]*m")

    def format(self, record):
        return self._ANSI.sub("", super().format(record))


def setup_logging(workdir):
    """Console: warnings and errors only; ``workdir/demo.log``: everything from INFO (the
    demo's messages at DEBUG, with tracebacks). Returns the log path."""
    path = os.path.join(os.path.abspath(workdir), LOG_NAME)
    to_file = logging.FileHandler(path, mode="w")
    to_file.setFormatter(_PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_console = logging.StreamHandler(sys.stderr)
    to_console.setLevel(logging.WARNING)
    to_console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(to_file)
    root.addHandler(to_console)
    root.setLevel(logging.INFO)
    logger.setLevel(logging.DEBUG)
    return path


def run(workdir, data, only=None):
    from .steps import STEPS

    workdir = os.path.abspath(workdir)
    inputs_dir = os.path.join(workdir, "inputs")
    os.makedirs(inputs_dir, exist_ok=True)
    log_path = os.path.join(workdir, LOG_NAME)
    print("cryoprocs demo: project %s in %s; pyworkflow's messages go to %s"
          % (PROJECT_NAME, os.path.join(workdir, "projects"), log_path), flush=True)
    project = _create_project(workdir)
    ctx = DemoContext(project, data, inputs_dir)
    failed = []
    t0 = time.time()
    for name in STEPS:
        if only and name not in only:
            continue
        module = importlib.import_module("cryoprocs.demo.steps." + name)
        try:
            module.run(ctx)
        except Exception as exc:
            failed.append(name)
            logger.error("demo step %s failed: %s (details in %s)", name, exc, log_path)
            logger.debug(traceback.format_exc())
            if not isinstance(exc, DemoStepFailed):
                ctx.rows.append((name, "failed", str(exc)[:200], 0.0))
    total = time.time() - t0
    print()
    print(format_table(ctx.rows))
    print()
    for text in ctx.notes:
        print(text)
    print("%d protocols, %d failed, %.1f s in total." % (
        len(ctx.rows), sum(1 for r in ctx.rows if r[1] != "finished"), total))
    print("Log (pyworkflow commands and messages): %s" % log_path)
    print("Scipion project: %s" % project.path)
    opener = _write_opener(workdir)
    print("Open it in the Scipion GUI:")
    print("  with scipion-app:  SCIPION_USER_DATA=%s scipion3 project %s"
          % (os.environ.get("SCIPION_USER_DATA"), PROJECT_NAME))
    print("  pip-only install:  sh %s" % opener)
    with open(os.path.join(workdir, "demo_summary.json"), "w") as fh:
        json.dump({"rows": ctx.rows, "failed_steps": failed, "seconds": total,
                   "project": project.path}, fh, indent=1)
    return 1 if failed or any(r[1] != "finished" for r in ctx.rows) else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--data-json", required=True)
    ap.add_argument("--only", nargs="*", help="run only these demo steps")
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    setup_logging(args.workdir)
    with open(args.data_json) as fh:
        data = json.load(fh)
    return run(args.workdir, data, args.only)


if __name__ == "__main__":
    sys.exit(main())
