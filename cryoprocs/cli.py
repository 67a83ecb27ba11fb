"""The ``cryoprocs`` console command: every kernel usable without Scipion.

Each sub-command lives in :mod:`cryoprocs.commands` as a module with ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules import their heavy dependencies
inside ``run`` so ``cryoprocs --help`` stays fast.
"""
import argparse
import importlib
import logging
import sys
import warnings

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

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"

#: errors reported as a one-line message (exit status 2) instead of a traceback: bad values
#: and inputs (ValueError and its subclasses) and every operating-system error (missing or
#: unreadable file, read-only folder, disk full, an output another run is writing)
USER_ERRORS = (ValueError, OSError)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="cryoprocs",
        description="Fast cryo-EM / cryo-ET processing kernels (the Scipion plugin "
                    "scipion-em-cryoprocs, usable without Scipion).",
        epilog="Exit status: 0 done; 2 a bad input or value, or an operating-system error "
               "(one line on standard error, no partial output left); 128+n stopped by "
               "signal n (SIGINT 130, SIGTERM 143, SIGHUP 129), temporary files removed: a "
               "rerun resumes. Two runs never write the same output: the second stops at "
               "once naming the output and the other run's process id.")
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
                        format=LOG_FORMAT)
    # cryoprocs' own messages (warnings about the data, progress) always reach this run's
    # standard error, also when main() is called from a program that configured logging
    log = logging.getLogger("cryoprocs")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    saved = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    log.propagate = False
    try:
        return _main(parser, args)
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def _main(parser, args):
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    from .convert import outputs
    prog = "cryoprocs %s" % args.command
    # SIGINT, SIGTERM (batch-system time-outs, scancel) and SIGHUP remove every temporary
    # file and release the claims on the outputs, then exit 128 + signal number at once
    handlers = outputs.install_signal_handlers(prog)
    previous_showwarning = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        with outputs.run_scope():
            return int(args._run(args) or 0)
    except USER_ERRORS as exc:
        print("%s: error: %s" % (prog, error_message(exc)), file=sys.stderr)
        return 2
    except KeyboardInterrupt:        # raised by code, or main() outside the main thread
        print("%s: interrupted" % prog, file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous_showwarning
        if handlers:
            outputs.restore_signal_handlers()


def error_message(exc):
    """One line for a user error: the message, or for an operating-system error the path
    (the final output for a temporary file) and the reason."""
    from .convert.outputs import describe_os_error
    text = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print("warning: %s" % " ".join(str(message).split()), file=file or sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
