"""`digitnet train`: train a network on an MNIST-layout dataset and save it."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from tqdm import tqdm

from digitnet.checkpoint import save_model
from digitnet.commands.common import (
    DEFAULT_MODEL,
    UsageError,
    add_data_flag,
    add_output_flags,
    percent,
    print_json,
    say,
)
from digitnet.data import load_dataset, scale_pixels
from digitnet.files import check_writable
from digitnet.threads import THREADS_ENV, choose_threads
from digitnet.train import EpochStats, TrainConfig, evaluate, fit

HELP = {
    "epochs": "passes over the training images",
    "batch_size": "images per mini-batch",
    "learning_rate": "SGD step size eta",
    "hidden": "units in the hidden layer",
    "validation_size": "training images held out to measure validation accuracy",
    "seed": "seed of every random choice; the same seed gives the same numbers",
}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a network and print its test accuracy",
        description="Train the network by mini-batch SGD, save it, and print its test accuracy.",
    )
    defaults = TrainConfig()
    for field in fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        parser.add_argument(
            flag,
            type=type(default),
            default=default,
            metavar=field.name.split("_")[-1].upper(),
            help=f"{HELP[field.name]} (default: {default})",
        )
    parser.add_argument(
        "-o",
        "--output",
        default=DEFAULT_MODEL,
        help=f"model file to write (default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help=f"BLAS threads while training (default: ${THREADS_ENV}, else the count measured "
        "fastest for the batch size; see docs/benchmarks.md)",
    )
    add_data_flag(parser)
    add_output_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_flags(args)
    check_writable(args.output)
    threads = choose_threads(config.batch_size, args.threads)
    dataset = load_dataset(args.data)
    say(args, f"training {config.sizes} on {len(dataset.train_labels)} images: {config.to_dict()}")
    say(args, f"BLAS threads: {threads}")

    samples = len(dataset.train_labels) - config.validation_size
    bar = tqdm(total=samples, unit="img", leave=False, disable=True if args.quiet else None)

    def on_batch(count: int) -> None:
        bar.update(count)

    def on_epoch(stats: EpochStats) -> None:
        bar.reset()
        say(args, format_epoch(stats, config.epochs))

    try:
        network, history = fit(config, dataset, on_epoch, on_batch, threads=threads)
    finally:
        bar.close()

    test = evaluate(network, scale_pixels(dataset.test_images), dataset.test_labels)
    last = history.epochs[-1]
    metadata = {
        "config": config.to_dict(),
        "data": args.data or "bundled MNIST",
        "history": history.to_list(),
        "val_accuracy": last.val_accuracy,
        "test_accuracy": test.accuracy,
    }
    save_model(args.output, network, metadata)
    say(args, f"saved the model to {args.output}")
    report_result(args, test.accuracy, history.to_list())
    return 0


def config_from_flags(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the flags ask for; a value it refuses is a usage error."""
    try:
        return TrainConfig(
            **{field.name: getattr(args, field.name) for field in fields(TrainConfig)}
        )
    except ValueError as exc:
        raise UsageError(f"{exc} (see 'digitnet train --help')") from None


def format_epoch(stats: EpochStats, epochs: int) -> str:
    """One fixed-field line per epoch, easy to grep."""
    return (
        f"epoch {stats.epoch:>3}/{epochs} | loss {stats.train_loss:.4f} | "
        f"val {percent(stats.val_accuracy)} | {stats.seconds:.2f} s"
    )


def report_result(args: argparse.Namespace, accuracy: float, history: list[Any]) -> None:
    if args.json:
        print_json({"model": args.output, "test_accuracy": accuracy, "history": history})
    else:
        print(f"test accuracy: {percent(accuracy)}")
