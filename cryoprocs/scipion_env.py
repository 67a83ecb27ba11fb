"""Minimal Scipion environment for running projects outside a ``scipion3`` launcher.

pyworkflow reads its configuration from ``SCIPION_*`` environment variables **when it is
first imported** (pyworkflow/config.py), so this module must stay free of any pyworkflow,
pwem or cryoprocs import: the root ``conftest.py`` loads it by file path before anything
imports pyworkflow; ``cryoprocs demo`` uses it to build the environment of the child
process that runs the demo project, ``cryoprocs python`` the environment of a batch script
and ``cryoprocs env`` prints it as shell ``export`` lines.

Variables: those pyworkflow 3.11.7 reads in ``pyworkflow/config.py`` and that a pip-only
installation lacks (scipion-app's launcher sets them for ``scipion3 python``; see
docs/scipion-notes.md).
"""
import os
import sys
import tempfile

#: the variables cryoprocs provides, in the order ``cryoprocs env`` prints them
KEYS = ("SCIPION_DOMAIN", "SCIPION_HOME", "SCIPION_HOSTS", "SCIPION_USER_DATA",
        "SCIPION_TESTS", "SCIPION_PYTHON", "SCIPION_TEST_NOSYNC", "SCIPION_NOTIFY")

HOSTS_CONF = (
    "[localhost]\n"
    "PARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s\n"
    "NAME = \n"
    "MANDATORY = False\n"
)


def default_home(environ=None):
    """Folder of the Scipion environment of ``cryoprocs python`` / ``cryoprocs env``.

    ``$CRYOPROCS_HOME`` if set, else ``$XDG_DATA_HOME/cryoprocs``, else
    ``~/.local/share/cryoprocs`` (the XDG Base Directory default for user data).
    """
    env = os.environ if environ is None else environ
    if env.get("CRYOPROCS_HOME"):
        return os.path.abspath(os.path.expanduser(env["CRYOPROCS_HOME"]))
    home = env.get("HOME") or os.path.expanduser("~")
    data = env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return os.path.join(os.path.abspath(data), "cryoprocs")


def _write_hosts_conf(path):
    """Write the minimal local hosts.conf under a temporary name, then rename (never partial)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".hosts.conf.", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(HOSTS_CONF)
        os.chmod(tmp, 0o644)
        if not os.path.exists(path):          # another process may have written it meanwhile
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def scipion_environment(base_dir, environ=None):
    """Return a copy of ``environ`` completed with a self-contained Scipion configuration.

    Parameters
    ----------
    base_dir : str
        Folder that receives ``hosts.conf``, ``ScipionUserData`` (projects) and the test
        data folder. Created if missing.
    environ : mapping, optional
        Starting environment (default ``os.environ``). Variables already set (non-empty)
        are kept, so a real Scipion installation (``scipion3 python``) wins over these
        defaults. When ``SCIPION_HOME`` is set and ``SCIPION_HOSTS`` is not, the hosts file
        Scipion itself would use, ``$SCIPION_HOME/config/hosts.conf``, is kept if it exists
        (it holds the installation's queues).

    Returns
    -------
    dict
        The environment, with every variable of :data:`KEYS` set: SCIPION_DOMAIN,
        SCIPION_HOME, SCIPION_HOSTS, SCIPION_USER_DATA, SCIPION_TESTS, SCIPION_PYTHON,
        SCIPION_TEST_NOSYNC and SCIPION_NOTIFY.
    """
    env = dict(os.environ if environ is None else environ)
    base_dir = os.path.abspath(base_dir)
    os.makedirs(base_dir, exist_ok=True)
    hosts = os.path.join(base_dir, "hosts.conf")
    if env.get("SCIPION_HOME") and not env.get("SCIPION_HOSTS"):
        installed = os.path.join(env["SCIPION_HOME"], "config", "hosts.conf")
        if os.path.isfile(installed):
            hosts = installed
    defaults = {
        "SCIPION_DOMAIN": "pwem",
        "SCIPION_HOME": base_dir,
        "SCIPION_HOSTS": hosts,
        "SCIPION_USER_DATA": os.path.join(base_dir, "ScipionUserData"),
        "SCIPION_TESTS": os.path.join(base_dir, "data", "tests"),
        "SCIPION_PYTHON": sys.executable,
        "SCIPION_TEST_NOSYNC": "1",
        "SCIPION_NOTIFY": "False",
    }
    for key, value in defaults.items():
        if not env.get(key):
            env[key] = value
    if env["SCIPION_HOSTS"] == os.path.join(base_dir, "hosts.conf") \
            and not os.path.exists(env["SCIPION_HOSTS"]):
        _write_hosts_conf(env["SCIPION_HOSTS"])
    return env


def apply_scipion_environment(base_dir):
    """Fill ``os.environ`` in place with :func:`scipion_environment` (before pyworkflow import)."""
    if "pyworkflow" in sys.modules:
        raise RuntimeError("apply_scipion_environment() must run before pyworkflow is imported: "
                           "pyworkflow reads SCIPION_* variables once, at import time")
    os.environ.update(scipion_environment(base_dir))
    return dict(os.environ)


def batch_environment(workdir=None, environ=None):
    """The environment of ``cryoprocs python`` and ``cryoprocs env``.

    :func:`scipion_environment` of ``workdir`` (default :func:`default_home`), checked:
    pyworkflow exits the whole process when its hosts file is missing, so a missing
    ``SCIPION_HOSTS`` file (e.g. a mistyped variable) is reported here instead.

    Raises
    ------
    FileNotFoundError
        ``SCIPION_HOSTS`` names a file that does not exist.
    NotADirectoryError
        ``workdir`` exists and is not a folder.
    """
    base = os.path.abspath(os.path.expanduser(workdir)) if workdir else default_home(environ)
    if os.path.exists(base) and not os.path.isdir(base):
        raise NotADirectoryError("the Scipion workdir %s is not a folder" % base)
    env = scipion_environment(base, environ)
    if not os.path.isfile(env["SCIPION_HOSTS"]):
        raise FileNotFoundError("SCIPION_HOSTS=%s does not exist (Scipion reads its execution "
                                "hosts and queues there); unset it to use %s"
                                % (env["SCIPION_HOSTS"], os.path.join(base, "hosts.conf")))
    return env
