"""Minimal Scipion environment for running projects outside a ``scipion3`` launcher.

pyworkflow reads its configuration from ``SCIPION_*`` environment variables **when it is
first imported** (pyworkflow/config.py), so this module must stay free of any pyworkflow,
pwem or cryoprocs import: the root ``conftest.py`` loads it by file path before anything
imports pyworkflow, and ``cryoprocs demo`` uses it to build the environment of the child
process that runs the demo project.

Source of the variable list: pyworkflow 3.11.7 ``pyworkflow/config.py`` (see
docs/scipion-notes.md).
"""
import os
import sys

HOSTS_CONF = (
    "[localhost]\n"
    "PARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s\n"
    "NAME = \n"
    "MANDATORY = False\n"
)


def scipion_environment(base_dir, environ=None):
    """Return a copy of ``environ`` completed with a self-contained Scipion configuration.

    Parameters
    ----------
    base_dir : str
        Folder that receives ``hosts.conf``, ``ScipionUserData`` (projects) and the test
        data folder. Created if missing.
    environ : mapping, optional
        Starting environment (default ``os.environ``). Variables already set are kept, so
        a real Scipion installation (``scipion3 python``) wins over these defaults.

    Returns
    -------
    dict
        The environment, with SCIPION_DOMAIN, SCIPION_HOME, SCIPION_HOSTS, SCIPION_USER_DATA,
        SCIPION_TESTS, SCIPION_PYTHON, SCIPION_TEST_NOSYNC and SCIPION_NOTIFY set.
    """
    env = dict(os.environ if environ is None else environ)
    base_dir = os.path.abspath(base_dir)
    os.makedirs(base_dir, exist_ok=True)
    hosts = os.path.join(base_dir, "hosts.conf")
    if not os.path.exists(hosts):
        with open(hosts, "w") as fh:
            fh.write(HOSTS_CONF)
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
    return env


def apply_scipion_environment(base_dir):
    """Fill ``os.environ`` in place with :func:`scipion_environment` (before pyworkflow import)."""
    if "pyworkflow" in sys.modules:
        raise RuntimeError("apply_scipion_environment() must run before pyworkflow is imported: "
                           "pyworkflow reads SCIPION_* variables once, at import time")
    os.environ.update(scipion_environment(base_dir))
    return dict(os.environ)
