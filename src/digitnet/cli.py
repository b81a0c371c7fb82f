"""The digitnet command line: build_parser() and main(argv) -> exit status.

Results go to stdout, progress and messages to stderr. Every error is one line on stderr,
"digitnet: error: ...", naming the file or value, what was expected and what was found; the
exit status says what kind of error it was (EXIT_STATUSES). `--debug` shows the traceback
instead.

Only the module of the command being run is imported, so that `digitnet predict` starts without
loading what training or the web server need (Flask, waitress).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from digitnet import __version__
from digitnet.commands.common import UsageError

COMMANDS = ("train", "evaluate", "predict", "show", "report", "serve")  # digitnet.commands.*
HELP_FLAGS = ("-h", "--help")
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143
EXIT_STATUSES = {
    EXIT_OK: "success",
    EXIT_ERROR: "bad input: a missing, unreadable or malformed file, or a failed save",
    EXIT_USAGE: "bad command line: unknown flag, missing argument or invalid flag value",
    EXIT_DIVERGED: "training diverged: the loss, a weight or an optimizer value became NaN or inf",
    EXIT_INTERNAL: "internal error: a bug in digitnet; rerun with --debug and report it",
    EXIT_INTERRUPTED: "interrupted by Ctrl-C",
    EXIT_BROKEN_PIPE: "output closed early, e.g. piped into head; nothing is printed",
    EXIT_TERMINATED: "stopped by SIGTERM",
}


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so that saves clean up as they do on Ctrl-C."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other digitnet error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with one subcommand per module named in COMMANDS.

    With only, just that command's module is imported and given its full parser; the others are
    bare names, which is all a command line that runs `only` needs of them.
    """
    parser = Parser(
        prog="digitnet",
        description="Train, evaluate and use a handwritten-digit network written in NumPy.",
        epilog=exit_status_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"digitnet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        if only is None or name == only:
            importlib.import_module(f"digitnet.commands.{name}").add_parser(subparsers)
        else:
            subparsers.add_parser(name)
    for subparser in subparsers.choices.values():
        # SUPPRESS keeps a `digitnet --debug COMMAND` from being reset by the subcommand.
        subparser.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def exit_status_help() -> str:
    lines = [f"  {status:>3}  {meaning}" for status, meaning in EXIT_STATUSES.items()]
    return "exit status:\n" + "\n".join(lines)


def command_in(argv: Sequence[str]) -> str | None:
    """The command argv runs, or None when that takes the full parser to tell (or for --help)."""
    for arg in argv:
        if arg in HELP_FLAGS:
            return None
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one digitnet command; return its exit status."""
    args = build_parser(command_in(sys.argv[1:] if argv is None else argv)).parse_args(argv)
    try:
        status: int = args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
        return EXIT_BROKEN_PIPE
    except (Exception, KeyboardInterrupt, Terminated) as exc:
        if args.debug:
            raise
        status, message = describe_failure(exc)
        print(message, file=sys.stderr)
    return status


def describe_failure(exc: BaseException) -> tuple[int, str]:
    """The exit status and the one line that report exc."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "digitnet: interrupted"
    if isinstance(exc, Terminated):
        return EXIT_TERMINATED, "digitnet: terminated"
    if isinstance(exc, UsageError):
        return EXIT_USAGE, f"digitnet: error: {one_line(str(exc))}"
    if is_divergence(exc):
        return EXIT_DIVERGED, f"digitnet: error: training diverged: {one_line(str(exc))}"
    if isinstance(exc, MemoryError):
        hint = "try a smaller dataset, batch size or network"
        return EXIT_ERROR, f"digitnet: error: out of memory; {hint}"
    if isinstance(exc, (ValueError, OSError)):
        return EXIT_ERROR, f"digitnet: error: {describe_error(exc)}"
    name = type(exc).__name__
    hint = "rerun with --debug to see where, and report it"
    return EXIT_INTERNAL, f"digitnet: internal error: {name}: {one_line(str(exc))}; {hint}"


def is_divergence(exc: BaseException) -> bool:
    """Whether exc is a TrainingDivergedError; one can only come from an imported digitnet.train."""
    train = sys.modules.get("digitnet.train")
    return train is not None and isinstance(exc, train.TrainingDivergedError)


def describe_error(exc: BaseException) -> str:
    """One line for an exception: OS errors name their file, others carry their own message."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {(exc.strerror or str(exc)).lower()}"
    return one_line(str(exc)) or type(exc).__name__


def one_line(text: str) -> str:
    return " ".join(text.split())


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not fail again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def terminate(signum: int, frame: object) -> None:
    raise Terminated


def entry_point() -> None:
    """The console script: exit with main()'s status; SIGTERM unwinds like Ctrl-C."""
    signal.signal(signal.SIGTERM, terminate)
    sys.exit(main())
