"""One writer per output, temporary files and clean interruption, for every command, pipeline
and protocol.

* **Claims.** A run holds an exclusive claim on each output file or output folder it writes
  (:func:`claim`): an advisory ``fcntl.flock`` on the hidden lock file ``.NAME.lock`` next to
  the output, which the kernel releases when the process dies, however it dies. A second run
  that wants the same output fails at once with :class:`OutputInUseError`, naming the output
  and the holder's process id. Claims are re-entrant within a process (protocol steps are
  threads of one run). A released claim removes its lock file: it is unlinked while still
  locked, and a run that locked a file checks that the path still names the file it locked
  (else it retries), so two runs can never both believe they hold one output.
* **Temporaries.** Outputs are written under unique hidden names in their own folder,
  ``.NAME.<pid>.<random>.partial[.ext]`` (:func:`temp_path`), then renamed. A claim removes
  the temporaries that dead runs left for its output (a claimed folder: those of dead
  processes anywhere inside it).
* **Groups.** Outputs that belong together (a tomogram and its side outputs) are renamed by
  :func:`commit_group`, which records them in the main output's lock file first: a run killed
  in the middle leaves that record behind, and the next claim of the output removes the
  group's files (the rerun writes them all again) instead of refusing to replace them.
* **Interruption.** :func:`install_signal_handlers` (the console command) makes SIGINT, SIGTERM
  and SIGHUP stop the process at once after removing every temporary file, rolling back a
  group being renamed, killing child encoders and releasing the claims (exit 128 + signal).

Nothing here reads or writes image data.
"""
from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any, Iterable, Iterator

if TYPE_CHECKING:
    import subprocess

    from .paths import PathLike

__all__ = ["OutputInUseError", "claim", "release", "run_scope", "temp_path", "temp_dir",
           "remove_dead_temps",
           "discard_temp", "commit_temp", "commit_group", "provisional", "final_name",
           "register_child", "unregister_child", "start_child", "install_signal_handlers",
           "restore_signal_handlers", "describe_os_error", "makedirs"]

#: a temporary made by :func:`temp_path`: ``.NAME.<pid>.<8 hex>.partial[.ext]``
TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.partial(\.[^.]+)?$")


class OutputInUseError(OSError):
    """Another run (or another part of this one) holds the claim on an output."""

    def __init__(self, path: PathLike, holder: str | None, label: str = "output") -> None:
        self.path, self.holder = path, holder
        who = ("another cryoprocs run (process %s)" % holder) if holder else \
            "another cryoprocs run"
        super().__init__(errno.EBUSY, "%s %s is being written by %s; wait for it to finish or "
                                      "choose another output" % (label, path, who))

    def __str__(self):
        return self.strerror


class _Registry:
    """Process-wide state (shared by the threads of a protocol run)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.temps = {}          # temporary path -> final path
        self.names = {}          # every temporary not committed -> final (for messages)
        self.claims = {}         # absolute output path -> _Claim
        self.children = set()    # subprocess.Popen objects (encoders)
        self.groups = []         # lists of finals of group commits in progress
        self.default_scope = []  # claims taken outside any run_scope
        self.defer = 0           # > 0: taking or giving back a claim; signals wait for it
        self.pending = None
        self.aborting = False
        self.previous_handlers = {}
        self.command = "cryoprocs"


_REG = _Registry()
_LOCAL = threading.local()


# ----------------------------------------------------------------------------- folders
def makedirs(folder: PathLike) -> list[str]:
    """``os.makedirs(folder, exist_ok=True)``; returns the folders it created (outermost
    first), so that a failed run can remove them again."""
    folder = os.path.abspath(folder)
    missing = []
    probe = folder
    while not os.path.exists(probe):
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    os.makedirs(folder, exist_ok=True)
    return missing[::-1]


def _remove_empty(folders):
    for d in reversed(list(folders)):
        with contextlib.suppress(OSError):
            os.rmdir(d)


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


# ----------------------------------------------------------------------------- claims
class _Claim:
    def __init__(self, path, label, shown=None):
        self.path = path
        self.label = label
        self.shown = shown or path
        head, tail = os.path.split(path.rstrip(os.sep) or os.sep)
        if not tail:
            raise ValueError("%s %s: give a file or folder name" % (label, path))
        self.lock_path = os.path.join(head, ".%s.lock" % tail)
        self.fd = None
        self.count = 0
        self.created = []
        self.previous = ""

    def acquire(self):
        self.created = makedirs(os.path.dirname(self.lock_path))
        try:
            for _ in range(100):
                try:
                    fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                except FileNotFoundError:  # its folder, shared with other runs, was removed
                    os.makedirs(os.path.dirname(self.lock_path), exist_ok=True)
                    continue
                except OSError as exc:     # read-only folder...: name the output, not the lock
                    raise OSError(exc.errno, exc.strerror, self.shown) from None
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _holder(fd)
                    os.close(fd)
                    raise OutputInUseError(self.shown, holder, self.label) from None
                except BaseException:
                    os.close(fd)
                    raise
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.lock_path))
                except FileNotFoundError:
                    same = False
                if not same:            # removed or replaced by its holder meanwhile: retry
                    os.close(fd)
                    continue
                self.fd = fd
                try:
                    self.previous = _read_fd(fd)
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, ("%d %s\n" % (os.getpid(), socket.gethostname())).encode(), 0)
                except BaseException as exc:
                    self.release()
                    if isinstance(exc, OSError) and exc.errno:     # e.g. a full disk
                        raise OSError(exc.errno, exc.strerror, self.shown) from None
                    raise
                return self
            raise OutputInUseError(self.shown, None, self.label)
        except BaseException:
            _remove_empty(self.created)
            raise

    def journal(self, finals):
        """Record the files of a group commit in progress (None: clear the record)."""
        if self.fd is None:
            return
        head = "%d %s\n" % (os.getpid(), socket.gethostname())
        body = "".join("commit %s\n" % f for f in finals or ())
        data = (head + body).encode()
        try:
            os.pwrite(self.fd, data, 0)
            os.ftruncate(self.fd, len(data))
        except OSError as exc:                  # e.g. a full disk: name the output
            raise OSError(exc.errno, exc.strerror, self.shown) from None

    def interrupted_group(self):
        """Files of a group commit that a dead run left unfinished (from the lock file)."""
        return [line[len("commit "):] for line in self.previous.splitlines()
                if line.startswith("commit ")]

    def release(self):
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.lock_path)            # while still locked (see the module doc)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = None
        _remove_empty(self.created)


def _read_fd(fd):
    try:
        return os.pread(fd, 65536, 0).decode("utf-8", "replace")
    except OSError:
        return ""


def _holder(fd):
    """Process id (and host) written in a lock file by its holder (waits briefly for it)."""
    import time
    here = socket.gethostname()
    for _ in range(20):
        words = _read_fd(fd).split("\n", 1)[0].split()
        pid = words[0] if words and words[0].isdigit() else None
        host = words[1] if len(words) > 1 else here
        if pid and host != here:
            return "%s on %s" % (pid, host)
        if pid and _pid_alive(pid):
            return pid
        time.sleep(0.01)        # the holder has not written its id yet (or a dead one's)
    return None


def _remove_stale_temps(path, is_dir):
    """Remove the temporaries dead runs left for ``path`` (a file), or anywhere inside it
    (a folder: only those of processes that are not running)."""
    head, tail = os.path.split(path)
    try:
        names = os.listdir(head)
    except OSError:
        names = []
    for name in names:
        m = TEMP_RE.match(name)
        if m and m.group("name") == tail and not _pid_alive(m.group("pid")):
            _remove_path(os.path.join(head, name))
    if is_dir and os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                m = TEMP_RE.match(name)
                if m and not _pid_alive(m.group("pid")):
                    _remove_path(os.path.join(root, name))


def remove_dead_temps(finals: Iterable[PathLike | None]) -> None:
    """Remove the temporaries that dead runs left for the files ``finals`` (e.g. the results
    of one tilt series, claimed as a unit through their record)."""
    by_dir = {}
    for f in finals:
        if f:
            head, tail = os.path.split(os.path.abspath(f))
            by_dir.setdefault(head, set()).add(tail)
    for head, tails in by_dir.items():
        try:
            names = os.listdir(head)
        except OSError:
            continue
        for name in names:
            m = TEMP_RE.match(name)
            if m and m.group("name") in tails and not _pid_alive(m.group("pid")):
                _remove_path(os.path.join(head, name))


def _remove_path(p):
    with contextlib.suppress(OSError):
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            os.remove(p)


@contextlib.contextmanager
def _deferred_signals():
    """A signal that arrives while a claim is being taken or given back (lock file created
    but not yet registered, or unlinked but not closed) is handled right after."""
    with _REG.lock:
        _REG.defer += 1
    try:
        yield
    finally:
        with _REG.lock:
            _REG.defer -= 1
            pending = _REG.pending if _REG.defer == 0 else None
            if pending is not None:
                _REG.pending = None
        if pending is not None:
            _abort(pending)


def claim(path: PathLike, label: str = "output", folder: bool = False,
          shown: PathLike | None = None) -> _Claim:
    """Claim ``path`` (an output file, or with ``folder`` an output folder) for this process
    until the enclosing :func:`run_scope` ends (or the process exits). ``shown``: what the
    messages name instead of ``path`` (e.g. the results of one tilt series in an output
    folder, claimed through their record file).

    The folder of the lock file is created when missing (and removed again if it is still
    empty when the claim is released). After the claim, temporaries of dead runs for this
    output are removed and a group commit a dead run left unfinished is rolled back.

    Raises
    ------
    OutputInUseError
        another process holds the claim (the message names the output and its process id).
    OSError
        the lock file cannot be created (read-only folder, no space...).
    """
    key = os.path.abspath(path)
    with _deferred_signals(), _REG.lock:
        if _REG.aborting:
            raise InterruptedError("interrupted")
        c = _REG.claims.get(key)
        if c is None:
            c = _Claim(key, label, shown).acquire()
            _REG.claims[key] = c
            try:
                _remove_stale_temps(key, folder)
                leftovers = c.interrupted_group()
                if leftovers:
                    _roll_back(leftovers, key)
            except BaseException:
                del _REG.claims[key]
                c.release()
                raise
        c.count += 1
        scopes = getattr(_LOCAL, "scopes", None)
        (scopes[-1] if scopes else _REG.default_scope).append(c)
    return c


def _roll_back(finals, owner):
    """Remove the files of a group commit a dead run left unfinished (each claimed while
    removed; one claimed by a live run is left to it)."""
    for f in finals:
        if os.path.abspath(f) == owner:
            _remove_path(f)
            continue
        try:
            with run_scope():
                claim(f, "output")
                _remove_path(f)
        except OutputInUseError:
            pass


def release(c: _Claim) -> None:
    """Give back one hold of a claim (the lock file goes with the last one)."""
    with _deferred_signals(), _REG.lock:
        c.count -= 1
        if c.count <= 0:
            _REG.claims.pop(c.path, None)
            c.release()


@contextlib.contextmanager
def run_scope() -> Iterator[list[_Claim]]:
    """Claims taken in this thread inside the block are released when it ends."""
    scopes = _LOCAL.__dict__.setdefault("scopes", [])
    held = []
    scopes.append(held)
    try:
        yield held
    finally:
        scopes.pop()
        for c in reversed(held):
            release(c)


def claimed(path: PathLike) -> _Claim | None:
    """The claim this process holds on ``path`` (None when it holds none)."""
    with _REG.lock:
        return _REG.claims.get(os.path.abspath(path))


# ----------------------------------------------------------------------------- temporaries
def temp_path(path: PathLike, suffix: str = "") -> str:
    """Create (empty) and register a unique temporary file for ``path`` in its folder:
    ``.NAME.<pid>.<random>.partial`` + ``suffix`` (e.g. the extension an encoder needs).
    The caller writes it, then :func:`commit_temp` or :func:`discard_temp`."""
    return _unique_temp(path, suffix, _create_file)


def temp_dir(path: PathLike) -> str:
    """Like :func:`temp_path` for an output folder (created empty)."""
    return _unique_temp(path, "", os.mkdir)


def _create_file(tmp):
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _unique_temp(path, suffix, create):
    """Create (``create(tmp)``, raising FileExistsError when taken) and register
    ``.NAME.<pid>.<random>.partial`` + ``suffix`` next to ``path``."""
    head, tail = os.path.split(os.path.abspath(path))
    # a signal between creating and registering would leave the temporary behind
    with _deferred_signals(), _REG.lock:
        if _REG.aborting:
            raise InterruptedError("interrupted")
        while True:
            tmp = os.path.join(head, ".%s.%d.%s.partial%s" % (tail, os.getpid(),
                                                              secrets.token_hex(4), suffix))
            try:
                create(tmp)
            except FileExistsError:
                continue
            _REG.temps[tmp] = _REG.names[tmp] = os.path.abspath(path)
            return tmp


def final_name(path: PathLike | None) -> PathLike | None:
    """The output a registered temporary stands for (``path`` itself otherwise)."""
    if path is None:
        return None
    with _REG.lock:
        return _REG.names.get(os.path.abspath(str(path)), path)


def discard_temp(tmp: PathLike) -> None:
    """Remove a temporary (file or folder) and forget it; never raises."""
    with _deferred_signals():
        _remove_path(tmp)
        with _REG.lock:
            _REG.temps.pop(tmp, None)


def commit_temp(tmp: PathLike, final: PathLike) -> None:
    """Rename a finished temporary to its final name (a folder replaces the old folder, or
    an old file or link of that name). A signal meanwhile is handled once the rename is
    recorded, so an interruption never loses both the old and the new output."""
    with _deferred_signals():
        _commit_temp(tmp, final)


def _commit_temp(tmp, final):
    if os.path.isdir(tmp) and os.path.lexists(final) and (
            os.path.islink(final) or not os.path.isdir(final)):
        os.remove(final)
    if os.path.isdir(tmp) and os.path.isdir(final) and not os.path.islink(final):
        old = temp_dir(final)
        os.rmdir(old)
        os.replace(final, old)
        os.replace(tmp, final)
        discard_temp(old)
    else:
        os.replace(tmp, final)
    with _REG.lock:
        _REG.temps.pop(tmp, None)
        _REG.names.pop(tmp, None)


def commit_group(pairs: Iterable[tuple[PathLike | None, PathLike]]) -> None:
    """Rename ``[(temporary, final), ...]`` in order, as one unit: the last pair is the main
    output, whose existence means the group is complete.

    The finals are first recorded in the main output's lock file; if the process dies before
    the last rename, the next claim of the main output removes them (:func:`claim`). Any
    failure, or an interruption (:func:`cleanup`), removes the finals already renamed and
    every temporary: a run that does not finish leaves no part of the group."""
    pairs = [(t, f) for t, f in pairs if t is not None]
    if not pairs:
        return
    c = claimed(pairs[-1][1])
    done = []                   # an interruption meanwhile removes these (cleanup)
    with _REG.lock:
        _REG.groups.append(done)
    try:
        if c is not None:
            c.journal([f for _, f in pairs])
        for tmp, final in pairs:
            done.append(final)
            commit_temp(tmp, final)
        _group_complete(c, done)
    except BaseException:
        for final in done:
            _remove_path(final)
        for tmp, _ in pairs:
            discard_temp(tmp)
        raise
    finally:
        _forget_group(done)


def _group_complete(c, done):
    """Record that a group is complete; a signal meanwhile waits, so an interruption never
    removes a complete group."""
    with _deferred_signals(), _REG.lock:
        if c is not None:
            c.journal(None)
        _forget_group(done)


def _forget_group(done):
    with _REG.lock:
        _REG.groups[:] = [g for g in _REG.groups if g is not done]


@contextlib.contextmanager
def provisional(main: PathLike, finals: Iterable[PathLike | None]) -> Iterator[None]:
    """Side outputs ``finals`` that a run writes (each atomically) *before* its claimed main
    output ``main``, inside the block that writes ``main``: they count as part of ``main``'s
    group until the block succeeds. They are recorded in ``main``'s lock file first, so
    that if the block raises they are removed, if the process is interrupted
    (:func:`cleanup`) likewise, and if it is killed the next claim of ``main`` removes them
    (:func:`claim`): a run that does not finish leaves none of them, and its rerun needs no
    ``--overwrite``."""
    finals = [os.path.abspath(str(f)) for f in finals if f]
    c = claimed(main)
    done = list(finals)         # an interruption meanwhile removes these (cleanup)
    with _REG.lock:
        _REG.groups.append(done)
    try:
        if c is not None:
            c.journal(finals)
        yield
        _group_complete(c, done)
    except BaseException:
        for final in finals:
            _remove_path(final)
        raise
    finally:
        _forget_group(done)


# ----------------------------------------------------------------------------- children
def register_child(proc: subprocess.Popen) -> None:
    """A child process (encoder) to kill when the run is interrupted."""
    with _REG.lock:
        _REG.children.add(proc)


def unregister_child(proc: subprocess.Popen) -> None:
    """Forget a child registered by :func:`register_child` (it has finished)."""
    with _REG.lock:
        _REG.children.discard(proc)


def start_child(*args: Any, **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen(*args, **kwargs)`` registered as a child to kill on interruption
    (:func:`register_child`); a signal that arrives while the child starts is handled once
    it is registered, so no child outlives an interrupted run."""
    import subprocess
    with _deferred_signals():
        proc = subprocess.Popen(*args, **kwargs)
        register_child(proc)
    return proc


# ----------------------------------------------------------------------------- cleanup
def cleanup() -> None:
    """Kill registered children, roll back group commits in progress, remove every
    registered temporary and release every claim. Safe to call more than once."""
    with _REG.lock:
        children = list(_REG.children)
        groups = [list(g) for g in _REG.groups]
        temps = list(_REG.temps)
        claims = list(_REG.claims.values())
        _REG.children.clear()
        _REG.temps.clear()
        _REG.claims.clear()
        _REG.default_scope.clear()
    for p in children:
        with contextlib.suppress(Exception):
            p.kill()
            p.wait(timeout=5)
    for g in groups:
        for final in g:
            _remove_path(final)
    for t in temps:
        _remove_path(t)
    for c in claims:
        c.release()


atexit.register(cleanup)

_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP")
                 if hasattr(signal, n))


def _abort(signum):
    with _REG.lock:
        _REG.aborting = True
    cleanup()
    # a worker thread that was opening its temporary as cleanup removed it made it again
    with _REG.lock:
        late = list(_REG.names)
    for t in late:
        _remove_path(t)
    name = signal.Signals(signum).name
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        sys.stderr.write("%s: interrupted by %s; temporary files removed (a rerun resumes)\n"
                         % (_REG.command, name))
        sys.stderr.flush()
    os._exit(128 + int(signum))


def _handler(signum, frame):
    with _REG.lock:
        if _REG.defer > 0:
            _REG.pending = signum
            return
    _abort(signum)


def install_signal_handlers(command: str = "cryoprocs") -> bool:
    """SIGINT, SIGTERM and SIGHUP: clean up (:func:`cleanup`) and exit 128 + signal number
    at once, whatever the worker threads are doing. Main thread only; returns False
    elsewhere."""
    if threading.current_thread() is not threading.main_thread():
        return False
    _REG.command = command
    for s in _SIGNALS:
        _REG.previous_handlers[s] = signal.signal(s, _handler)
    return True


def restore_signal_handlers() -> None:
    """Put back the handlers :func:`install_signal_handlers` replaced."""
    if threading.current_thread() is not threading.main_thread():
        return
    for s, h in list(_REG.previous_handlers.items()):
        signal.signal(s, h if h is not None else signal.SIG_DFL)
    _REG.previous_handlers.clear()


def describe_os_error(exc: OSError) -> str:

    """One line naming the path (the final output for a temporary) and the reason."""
    if isinstance(exc, OutputInUseError):
        return str(exc)
    reason = exc.strerror or (exc.args[0] if len(exc.args) == 1 else str(exc))
    path = final_name(exc.filename)
    if exc.filename is None:
        return str(reason) if exc.strerror is None else str(exc.strerror)
    if getattr(exc, "filename2", None):
        return "%s -> %s: %s" % (path, final_name(exc.filename2), reason)
    return "%s: %s" % (path, reason)
