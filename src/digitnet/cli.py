"""The digitnet command line: build_parser() and main(argv) -> exit status.

Results go to stdout, progress and messages to stderr. Every user error is one line,
"digitnet: error: ...", with exit status 1; a bad flag exits with status 2 (argparse).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from digitnet import __version__
from digitnet.commands import evaluate, predict, report, serve, show, train
from digitnet.train import TrainingDivergedError

COMMANDS = (train, evaluate, predict, show, report, serve)
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subcommand per module in COMMANDS."""
    parser = argparse.ArgumentParser(
        prog="digitnet",
        description="Train, evaluate and use a handwritten-digit network written in NumPy.",
    )
    parser.add_argument("--version", action="version", version=f"digitnet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one digitnet command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except KeyboardInterrupt:
        print("digitnet: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, OSError, TrainingDivergedError) as exc:
        if args.debug:
            raise
        print(f"digitnet: error: {describe_error(exc)}", file=sys.stderr)
        return EXIT_ERROR
    return status


def describe_error(exc: BaseException) -> str:
    """One line for an exception: OS errors name their file, others carry their own message."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {(exc.strerror or str(exc)).lower()}"
    return " ".join(str(exc).split()) or type(exc).__name__


def entry_point() -> None:
    """The console script: exit with main()'s status."""
    sys.exit(main())
