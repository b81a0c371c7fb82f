"""`digitnet report`: figures and a self-contained HTML page about a trained model."""

from __future__ import annotations

import argparse
from typing import Any

from digitnet.checkpoint import load_model
from digitnet.commands.common import add_data_flag, resolve_model_path, say

DEFAULT_OUTPUT = "digitnet-report"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write figures and an HTML page about a model",
        description="Measure a model on the test images and write a folder with PNG figures "
        "(learning curves, confusion matrix, accuracy per digit, mistakes, hidden-unit weights, "
        "confidence), report.json with the numbers behind them, and index.html, one page with "
        "every figure embedded that opens offline.",
    )
    parser.add_argument(
        "model", nargs="?", help="model file (default: the ready model bundled with digitnet)"
    )
    parser.add_argument(
        "-o",
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help=f"folder to write the report into (default: {DEFAULT_OUTPUT})",
    )
    add_data_flag(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="print no progress on stderr")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from digitnet.data import load_dataset
    from digitnet.report import write_report

    model_path = resolve_model_path(args.model)
    network, metadata = load_model(model_path)
    dataset = load_dataset(args.data)
    say(args, f"measuring {model_path} on {len(dataset.test_labels)} test images")
    page = write_report(
        network, metadata, dataset.test_images, dataset.test_labels, args.output, model_path.name
    )
    say(args, f"wrote the figures and the page to {page.parent}")
    print(page)
    return 0
