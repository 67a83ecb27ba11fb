"""Run a Python script with the Scipion environment ready: the pip-only counterpart of
``scipion3 python``.

SCRIPT runs in the interpreter cryoprocs is installed in, with sys.argv = [SCRIPT, ARGS...]
exactly as ``python SCRIPT ARGS...``, the same working directory, and the SCIPION_*
variables pyworkflow needs (those ``cryoprocs demo`` sets; ``cryoprocs env`` prints them).
Variables already set, e.g. by a Scipion installation, are kept.

Projects and hosts.conf live in --workdir (default $CRYOPROCS_HOME, else
$XDG_DATA_HOME/cryoprocs, else ~/.local/share/cryoprocs): hosts.conf is written there once
and projects go to WORKDIR/ScipionUserData/projects. Without SCRIPT, an interactive
interpreter starts; after '--' every argument goes to the interpreter as given, e.g.
``cryoprocs python -- -O -m pyworkflow.apps.pw_project NAME`` opens a project in the
pyworkflow GUI.

examples:
  cryoprocs python mask_map.py my_project
  cryoprocs python --workdir /scratch/$USER/scipion examples/tomography_chain.py
  scipion3 python mask_map.py my_project       # the same script in a Scipion installation
"""
import argparse

HELP = "run a Python script with the Scipion environment ready (like scipion3 python)"


def add_arguments(p):
    from ..scipion_env import default_home
    p.add_argument("--workdir", metavar="DIR",
                   help="folder of hosts.conf and the Scipion projects (default "
                        "$CRYOPROCS_HOME, else $XDG_DATA_HOME/cryoprocs, else "
                        "~/.local/share/cryoprocs; here: %s)" % default_home())
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="SCRIPT [ARGS ...]",
                   help="the script and its arguments, as for python")


def run(args):
    import os
    import signal
    import sys

    from ..scipion_env import batch_environment

    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]                 # interpreter options and arguments, verbatim
    elif argv and not os.path.exists(argv[0]):
        raise FileNotFoundError("script %s does not exist" % argv[0])
    env = batch_environment(args.workdir)
    # the script gets default signal dispositions (an ignored signal would survive exec)
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable] + argv, env)
