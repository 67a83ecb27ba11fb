"""The ``cryoprocs`` console command: every kernel usable without Scipion.

Each sub-command lives in :mod:`cryoprocs.commands` as a module with ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules import their heavy dependencies
inside ``run`` so ``cryoprocs --help`` stays fast.
"""
import argparse
import importlib
import logging
import sys

from . import __version__

#: sub-command name -> module in cryoprocs.commands (one line per command)
COMMANDS = {
    "mask": "mask",
    "noise-fill": "noise_fill",
    "pick": "pick",
    "extract": "extract",
    "reconstruct": "reconstruct",
    "movie": "movie",
    "convert": "convert",
    "copick-import": "copick_import",
    "copick-export": "copick_export",
    "demo": "demo",
    "python": "python",
    "env": "env",
}

#: sub-commands the protocols run per item, not listed by ``cryoprocs --help``
HIDDEN_COMMANDS = {
    "extract-subvolumes": "subvolumes",
}

#: errors reported as a one-line message (exit status 2) instead of a traceback
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
               IsADirectoryError, PermissionError)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="cryoprocs",
        description="Fast cryo-EM / cryo-ET processing kernels (the Scipion plugin "
                    "scipion-em-cryoprocs, usable without Scipion).")
    parser.add_argument("--version", action="version", version="cryoprocs %s" % __version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, modname in COMMANDS.items():
        mod = importlib.import_module("cryoprocs.commands." + modname)
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    for name, modname in HIDDEN_COMMANDS.items():   # no help=: left out of the listing
        mod = importlib.import_module("cryoprocs.commands." + modname)
        p = sub.add_parser(name, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    try:
        return int(args._run(args) or 0)
    except USER_ERRORS as exc:
        print("cryoprocs %s: error: %s" % (args.command, exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cryoprocs %s: interrupted" % args.command, file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
