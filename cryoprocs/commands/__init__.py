"""Sub-commands of the ``cryoprocs`` console command (see :mod:`cryoprocs.cli`)."""

#: help of the option every command that reads images has (one name for all)
NONFINITE_HELP = ("replace NaN and infinite input voxels by the mean of the finite voxels of "
                  "their file, with a warning (default: such voxels are an error naming the "
                  "file, their count and the first [z, y, x])")


def add_nonfinite_argument(parser):
    """``--replace-nonfinite`` (dest ``replace_nonfinite``)."""
    parser.add_argument("--replace-nonfinite", action="store_true", help=NONFINITE_HELP)


def nonfinite_policy(args):
    """"replace" with ``--replace-nonfinite``, else "error"."""
    return "replace" if getattr(args, "replace_nonfinite", False) else "error"


def nonfinite_args(policy):
    """The options that make :func:`nonfinite_policy` give ``policy`` ("error" or "replace"):
    how a protocol's *Replace non-finite values?* switch reaches its commands."""
    if policy not in ("error", "replace"):
        raise ValueError("non-finite policy must be 'error' or 'replace', got %r" % (policy,))
    return ["--replace-nonfinite"] if policy == "replace" else []
