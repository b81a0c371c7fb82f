"""Helpers shared by the subcommands: output, progress bars and common flags."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "digitnet-model.npz"


class UsageError(ValueError):
    """A flag's value is not allowed; found after parsing, so argparse could not report it."""


def bundled_model_path() -> Path:
    """The ready-trained seed model that ships inside the package."""
    return Path(str(resources.files("digitnet") / "models" / "seed.npz"))


def resolve_model_path(name: str | None) -> Path:
    """The model file a command should use: the one named, or else the bundled one."""
    return bundled_model_path() if name is None else Path(name)


def add_data_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="folder with the four MNIST-layout IDX files (default: the bundled MNIST)",
    )


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="print no progress on stderr")


def say(args: argparse.Namespace, message: str) -> None:
    """Print a progress message on stderr unless --quiet."""
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def print_json(summary: dict[str, Any]) -> None:
    print(json.dumps(summary, indent=2))


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.2f}%"
