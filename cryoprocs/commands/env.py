"""Print the Scipion environment of ``cryoprocs python`` as shell ``export`` lines.

For users who prefer to set the environment in their shell (or a job script) and run
``python`` themselves; the pip-only counterpart of ``scipion3 printenv``. The settings are
those of ``cryoprocs python`` with the same --workdir (default $CRYOPROCS_HOME, else
$XDG_DATA_HOME/cryoprocs, else ~/.local/share/cryoprocs); the folder and its hosts.conf
are created. Variables already set are printed as they are. Values are quoted for POSIX
shells (sh, bash, zsh).

examples:
  eval "$(cryoprocs env)"
  python mask_map.py my_project
  cryoprocs env --workdir /scratch/$USER/scipion > scipion.env     # then: . ./scipion.env
"""
HELP = "print the Scipion environment of cryoprocs python as shell export lines"


def add_arguments(p):
    from ..scipion_env import default_home
    p.add_argument("--workdir", metavar="DIR",
                   help="folder of hosts.conf and the Scipion projects (default "
                        "$CRYOPROCS_HOME, else $XDG_DATA_HOME/cryoprocs, else "
                        "~/.local/share/cryoprocs; here: %s)" % default_home())


def export_lines(env, keys):
    """``export KEY=VALUE`` lines (POSIX-shell quoted) for ``keys``, in that order."""
    import shlex
    return ["export %s=%s" % (key, shlex.quote(str(env[key]))) for key in keys]


def run(args):
    from ..scipion_env import KEYS, batch_environment
    print("\n".join(export_lines(batch_environment(args.workdir), KEYS)))
    return 0
