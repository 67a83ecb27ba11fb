"""The fault suite of issue 11 ("data safety under real conditions"): bad inputs for every
command, interruptions (SIGKILL, SIGTERM) at several moments followed by a rerun, concurrent
runs on one output, degenerate science, and the claim / temporary-file machinery itself.

Inputs are generated (:mod:`.data`); nothing here needs ``../shared``. Commands run in
process (:func:`run_cli`) unless the test needs a real process (signals, concurrency, mounts).
"""
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from cryoprocs.cli import main

#: temporaries and lock files of cryoprocs (see cryoprocs.convert.outputs)
TEMPORARY = re.compile(r"\.partial(\.[^.]+)?$|\.lock$|\.partial$")


def run_cli(argv, capsys):
    """``cryoprocs ARGV`` in this process: ``(exit status, stdout, stderr)``."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def tree(folder):
    """``{relative path: sha256 or "/" for a folder}`` of everything under ``folder``,
    hidden files included."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), folder)] = "/"
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, folder)] = sha256(p) if not os.path.islink(p) \
                else "->" + os.readlink(p)
    return out


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def mrc_digest(path):
    """sha256 of an MRC file with its header labels blanked (mrcfile writes the creation
    time into the first label): equal for equal data and header values."""
    with open(path, "rb") as fh:
        raw = bytearray(fh.read())
    raw[220:1024] = bytes(804)                  # nlabl and the ten 80-character labels
    return hashlib.sha256(raw).hexdigest()


def temporaries(folder):
    """Temporary and lock files left anywhere under ``folder``."""
    return sorted(p for p in tree(folder) if TEMPORARY.search(os.path.basename(p)))


def one_line(err):
    """The single non-empty line of ``err`` (asserts there is exactly one)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


# ----------------------------------------------------------------------------- processes
CLI = [sys.executable, "-c", "import sys; from cryoprocs.cli import main; sys.exit(main())"]


def slowed(target, seconds):
    """A command prefix (``python -c ...``) that runs the CLI with ``target``
    (``"module:function"`` or ``"module:Class.method"``) delayed by ``seconds`` per call,
    to interrupt a run at a chosen moment without any hook in the code under test."""
    module, attr = target.split(":")
    owner, _, name = attr.rpartition(".")
    code = ("import functools, importlib, sys, time\n"
            "owner = importlib.import_module(%r)\n"
            "for part in %r:\n"
            "    owner = getattr(owner, part)\n"
            "real = getattr(owner, %r)\n"
            "@functools.wraps(real)\n"
            "def slow(*a, **k):\n"
            "    time.sleep(%r)\n"
            "    return real(*a, **k)\n"
            "setattr(owner, %r, slow)\n"
            "from cryoprocs.cli import main\n"
            "sys.exit(main())\n" % (module, [p for p in owner.split(".") if p], name,
                                      float(seconds), name))
    return [sys.executable, "-c", code]


def start(argv, prefix=None, cwd=None):
    """Start ``cryoprocs ARGV`` (or ``prefix`` + ARGV) as a process."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen((prefix or CLI) + [str(a) for a in argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def held_by(lock, proc):
    """A :func:`wait_for` predicate: the claim ``lock`` (a ``.NAME.lock`` file) is held by
    ``proc``, i.e. its first line names the process (written once its ``flock`` is taken;
    the file itself exists a moment earlier, when a second run could still take it)."""
    def held():
        try:
            with open(str(lock)) as fh:
                return fh.readline().split(" ", 1)[0] == str(proc.pid)
        except OSError:
            return False
    return held


def wait_for(predicate, proc, timeout=60.0, what="the moment to interrupt"):
    """Poll ``predicate()`` every 5 ms until true; fails if ``proc`` ended first."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if predicate():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail("the run ended (exit %s) before %s:\n%s%s"
                        % (proc.returncode, what, out, err))
        time.sleep(0.005)
    proc.kill()
    pytest.fail("timeout waiting for %s" % what)


def interrupt(proc, sig):
    """Send ``sig``; return ``(exit status, stderr)``."""
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, err


def expected_status(sig):
    """Exit status of a run stopped by ``sig``: 128 + n after cleanup (SIGTERM, SIGHUP,
    SIGINT), -9 for SIGKILL (Popen's killed-by-signal)."""
    return -signal.SIGKILL if sig == signal.SIGKILL else 128 + int(sig)


# ----------------------------------------------------------------------------- mounts
def _can_mount():
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    r = subprocess.run(["unshare", "-m", "sh", "-c",
                        "mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return ("cannot mount a private tmpfs here (unshare -m needs CAP_SYS_ADMIN): %s"
                % (r.stderr.strip() or r.returncode))
    return None


_MOUNT_PROBLEM = []


def mount_or_skip():
    """Skip the test (with the reason) where a private tmpfs cannot be mounted. A read-only
    folder cannot be made with chmod for root (root ignores permissions): the tests mount
    a read-only (or tiny) tmpfs in a private mount namespace instead."""
    if not _MOUNT_PROBLEM:
        _MOUNT_PROBLEM.append(_can_mount())
    if _MOUNT_PROBLEM[0]:
        pytest.skip(_MOUNT_PROBLEM[0])


def run_on_mount(argv, folder, options, cwd=None):
    """``cryoprocs ARGV`` in a private mount namespace where ``folder`` is a fresh tmpfs
    mounted with ``options`` (e.g. ``ro`` or ``size=64k``). Returns ``(exit status,
    stderr, paths left in folder after the run, hidden ones included)``."""
    import shlex
    cmd = " ".join(shlex.quote(a) for a in CLI + [str(a) for a in argv])
    q = shlex.quote(str(folder))
    script = ("mount -t tmpfs -o %s tmpfs %s || exit 99\n%s >/dev/null\nrc=$?\n"
              "cd %s && find . -mindepth 1\nexit $rc\n" % (options, q, cmd, q))
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                       cwd=cwd)
    assert r.returncode != 99, r.stderr
    return r.returncode, r.stderr, [p[2:] for p in r.stdout.split("\n") if p]


def claimed_tilt_series(folder):
    """Names of the tilt series whose results a run holds in an extract / reconstruct output
    folder (their claims' lock files: ``.cryoprocs/.extract_<name>.json.lock``,
    ``partial/.<name>.npz.lock``)."""
    import glob
    locks = glob.glob(os.path.join(str(folder), ".cryoprocs", ".extract_*.json.lock")) + \
        glob.glob(os.path.join(str(folder), "partial", ".*.npz.lock"))
    return sorted(os.path.basename(p) for p in locks)
