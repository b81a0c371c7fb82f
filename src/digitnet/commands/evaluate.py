"""`digitnet evaluate`: test accuracy, per-class accuracy and confusion matrix of a model."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from digitnet.checkpoint import load_model
from digitnet.commands.common import add_data_flag, percent, print_json, resolve_model_path
from digitnet.data import load_dataset, scale_pixels
from digitnet.train import Evaluation, evaluate


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure a model on the test images",
        description="Print a model's test accuracy, per-class accuracy and confusion matrix.",
    )
    parser.add_argument(
        "model", nargs="?", help="model file (default: the ready model bundled with digitnet)"
    )
    add_data_flag(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    network, _ = load_model(resolve_model_path(args.model))
    dataset = load_dataset(args.data)
    result = evaluate(network, scale_pixels(dataset.test_images), dataset.test_labels)
    if args.json:
        print_json(evaluation_summary(args.model, result))
    else:
        print(format_evaluation(result))
    return 0


def evaluation_summary(model: str | None, result: Evaluation) -> dict[str, Any]:
    return {
        "model": str(resolve_model_path(model)),
        "test_accuracy": result.accuracy,
        "per_class_accuracy": result.per_class_accuracy.tolist(),
        "confusion_matrix": result.confusion.tolist(),
    }


def format_evaluation(result: Evaluation) -> str:
    """Accuracy, then a confusion matrix with true labels as rows and per-class accuracy."""
    lines = [f"test accuracy: {percent(result.accuracy)}", ""]
    lines.append("confusion matrix (rows: true digit, columns: predicted digit)")
    lines.append("true " + "".join(f"{digit:>6}" for digit in range(10)) + "   accuracy")
    for digit, row in enumerate(result.confusion):
        cells = "".join(f"{count:>6}" for count in row)
        lines.append(f"{digit:>4} {cells}   {percent(result.per_class_accuracy[digit]):>8}")
    lines.append(f"total {int(np.sum(result.confusion))} images")
    return "\n".join(lines)
