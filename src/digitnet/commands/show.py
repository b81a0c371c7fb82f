"""`digitnet show`: a grid of example digits with their labels, as a PNG."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from digitnet.commands.common import UsageError, add_data_flag
from digitnet.data import load_dataset

DEFAULT_OUTPUT = "digits.png"
MAX_COUNT = 400


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "show",
        help="draw example digits with their labels",
        description="Draw a grid of randomly chosen digits from the training or test images, "
        "each with its label, and save it as a PNG.",
    )
    parser.add_argument(
        "--split",
        choices=("train", "test"),
        default="train",
        help="which images to draw from (default: train)",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=40,
        metavar="N",
        help=f"how many digits, 1-{MAX_COUNT} (default: 40)",
    )
    parser.add_argument(
        "--columns",
        type=int,
        default=10,
        metavar="N",
        help="digits per row of the grid (default: 10)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="SEED",
        help="seed of the random choice of digits (default: 0)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="FILE",
        help=f"PNG file to write (default: {DEFAULT_OUTPUT})",
    )
    add_data_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_counts(args.count, args.columns, args.seed)
    from digitnet import plots

    dataset = load_dataset(args.data)
    images, labels = (
        (dataset.train_images, dataset.train_labels)
        if args.split == "train"
        else (dataset.test_images, dataset.test_labels)
    )
    if args.count > len(labels):
        raise UsageError(f"--count {args.count} is more than the {len(labels)} {args.split} images")
    chosen = np.sort(
        np.random.default_rng(args.seed).choice(len(labels), args.count, replace=False)
    )
    captions = [f"#{index}: {labels[index]}" for index in chosen]
    title = f"{args.count} {args.split} images with their labels"
    path = plots.draw_digit_grid(images[chosen], captions, args.output, args.columns, title)
    print(path)
    return 0


def check_counts(count: int, columns: int, seed: int) -> None:
    """Raise UsageError for a count, column number or seed that cannot be drawn."""
    if not 1 <= count <= MAX_COUNT:
        raise UsageError(f"--count must be between 1 and {MAX_COUNT}, got {count}")
    if columns < 1:
        raise UsageError(f"--columns must be at least 1, got {columns}")
    if seed < 0:
        raise UsageError(f"--seed must be zero or positive, got {seed}")
