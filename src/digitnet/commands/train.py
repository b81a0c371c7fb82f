"""`digitnet train`: train a network on an MNIST-layout dataset and save it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
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
from digitnet.config import CHOICES, PRESETS, TrainConfig, parse_widths, preset
from digitnet.data import load_dataset, scale_pixels
from digitnet.files import check_writable
from digitnet.state import TrainingState, load_checkpoint, new_training_state
from digitnet.threads import THREADS_ENV, choose_threads, threads_from_environment
from digitnet.train import EpochStats, History, TrainingInterrupted, evaluate, fit

EXIT_INTERRUPTED = 130

HELP = {
    "epochs": "passes over the training images",
    "batch_size": "images per mini-batch",
    "learning_rate": "step size eta, a schedule's peak",
    "hidden": "widths of the hidden layers, e.g. 128 or 512,256",
    "activation": "hidden units",
    "output_units": "output units, each with its cross-entropy",
    "dropout": "probability of dropping each hidden unit while training",
    "weight_decay": "lambda of the L2 penalty on the weights",
    "optimizer": "update rule",
    "momentum": "momentum mu (momentum, nesterov) or beta1 (adam)",
    "beta2": "Adam's decay rate of the squared gradients",
    "schedule": "learning-rate schedule",
    "warmup_epochs": "epochs of linear learning-rate warm-up",
    "step_epochs": "epochs between the step schedule's decays",
    "step_gamma": "factor of each decay of the step schedule",
    "augment": "random distortions of the training images",
    "patience": "stop after this many epochs without a better validation accuracy (0: never)",
    "validation_size": "training images held out to measure validation accuracy",
    "seed": "seed of every random choice; the same seed gives the same numbers",
}


METAVARS: dict[str, str | None] = {"hidden": "WIDTHS", **{name: None for name in CHOICES}}


def widths(text: str) -> tuple[int, ...]:
    """argparse type of --hidden."""
    try:
        return parse_widths(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a network and print its test accuracy",
        description="Train a network, save it, and print its test accuracy. Flags override "
        "the preset's settings.",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="starting settings: seed (the seed network) or best (two wide ReLU layers, "
        "dropout, Nesterov momentum, cosine decay, distorted images) (default: seed)",
    )
    add_config_flags(parser)
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
        help=f"BLAS threads while training (default: ${THREADS_ENV}, else with --resume the "
        "checkpoint's count, else the count measured fastest for the batch size; see "
        "docs/benchmarks.md)",
    )
    parser.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="training checkpoint written after every epoch (default: the output file's name "
        "with .checkpoint.npz; the resumed file with --resume); it is kept, so a finished run can "
        "go on with --resume and more --epochs",
    )
    parser.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        help="continue the run saved in CHECKPOINT with its settings (only --epochs may change) "
        "and its data folder (unless --data names another)",
    )
    add_data_flag(parser)
    add_output_flags(parser)
    parser.set_defaults(run=run)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; a flag not given leaves the preset's value."""
    defaults = TrainConfig()
    for field in fields(TrainConfig):
        default = getattr(defaults, field.name)
        shown = ",".join(map(str, default)) if field.name == "hidden" else default
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=widths if field.name == "hidden" else type(default),
            choices=CHOICES.get(field.name),
            default=argparse.SUPPRESS,
            metavar=METAVARS.get(field.name, field.name.split("_")[-1].upper()),
            help=f"{HELP[field.name]} (default: {shown})",
        )


def resolve_config(args: argparse.Namespace) -> tuple[TrainConfig, TrainingState | None]:
    """The settings to train with, and the state to continue with --resume."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if args.resume is None:
        return checked_config(lambda: preset(args.preset or "seed", **given)), None
    state = load_checkpoint(args.resume)
    refused = sorted(set(given) - {"epochs"}) + (["preset"] if args.preset else [])
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise UsageError(f"--resume keeps the checkpoint's settings; drop {flags}")
    if given.get("epochs", state.epoch) < state.epoch:
        raise UsageError(
            f"--epochs {given['epochs']} is fewer than the {state.epoch} epochs {args.resume} "
            "has trained; give at least as many"
        )
    return checked_config(lambda: replace(state.config, **given)), state


def checkpoint_path(args: argparse.Namespace) -> Path:
    if args.checkpoint is not None:
        return Path(args.checkpoint)
    if args.resume is not None:
        return Path(args.resume)
    output = Path(args.output)
    return output.with_name(output.stem + ".checkpoint.npz")


def run(args: argparse.Namespace) -> int:
    config, state = resolve_config(args)
    check_writable(args.output)
    recorded = None if state is None else state.threads
    threads = choose_threads(config.batch_size, args.threads, recorded)
    if state is None:
        state = new_training_state(config)
        state.source["data"] = None if args.data is None else str(Path(args.data).resolve())
    data = args.data if args.data is not None else state.source.get("data")
    dataset = load_dataset(data)
    check_validation_size(config, len(dataset.train_labels))
    checkpoint = checkpoint_path(args)
    say(args, f"training {config.sizes} on {len(dataset.train_labels)} images: {config.to_dict()}")
    kept = recorded is not None and args.threads is None and threads_from_environment() is None
    say(args, f"BLAS threads: {threads}" + (" (as the checkpoint's run)" if kept else ""))
    if args.resume is not None:
        say(args, f"resuming {args.resume} after epoch {state.epoch}")

    samples = len(dataset.train_labels) - config.validation_size
    bar = tqdm(total=samples, unit="img", leave=False, disable=True if args.quiet else None)

    def on_batch(count: int) -> None:
        bar.update(count)

    def on_epoch(stats: EpochStats) -> None:
        # Clear the bar first, so that in a terminal the summary gets a line of its own and
        # the bar starts again below it.
        bar.clear()
        say(args, format_epoch(stats, config.epochs))
        bar.reset()

    try:
        network, history = fit(config, dataset, on_epoch, on_batch, checkpoint, state, threads)
    except TrainingInterrupted as stop:
        bar.close()
        print(
            f"digitnet: interrupted; {checkpoint} holds epoch {stop.epoch}; continue with "
            f"'digitnet train --resume {checkpoint}'",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        bar.close()

    test = evaluate(network, scale_pixels(dataset.test_images), dataset.test_labels)
    metadata = {
        "config": config.to_dict(),
        "data": data or "bundled MNIST",
        "history": history.to_list(),
        "val_accuracy": kept_val_accuracy(config, history),
        "test_accuracy": test.accuracy,
    }
    report_stop(args, config, history)
    save_model(args.output, network, metadata)
    say(args, f"saved the model to {args.output}")
    report_result(args, metadata, threads)
    return 0


def checked_config(build: Callable[[], TrainConfig]) -> TrainConfig:
    """The TrainConfig build() makes; a value it refuses is a usage error."""
    try:
        return build()
    except ValueError as exc:
        raise UsageError(f"{exc} (see 'digitnet train --help')") from None


def check_validation_size(config: TrainConfig, train_images: int) -> None:
    """Refuse a validation split that leaves no image to train on, before any training."""
    if config.validation_size >= train_images:
        raise UsageError(
            f"--validation-size {config.validation_size} must be less than the {train_images} "
            "training images, so that some are left to train on"
        )


def kept_val_accuracy(config: TrainConfig, history: History) -> float | None:
    """The validation accuracy of the weights kept: the best with a patience, else the last."""
    scores = [stats.val_accuracy for stats in history.epochs if stats.val_accuracy is not None]
    if not scores:
        return None
    return max(scores) if config.patience else history.epochs[-1].val_accuracy


def report_stop(args: argparse.Namespace, config: TrainConfig, history: History) -> None:
    if config.patience and len(history.epochs) < config.epochs:
        best = kept_val_accuracy(config, history)
        say(args, f"stopped early; kept the weights with validation accuracy {percent(best)}")


def format_epoch(stats: EpochStats, epochs: int) -> str:
    """One fixed-field line per epoch, easy to grep."""
    return (
        f"epoch {stats.epoch:>3}/{epochs} | loss {stats.train_loss:.4f} | "
        f"val {percent(stats.val_accuracy)} | lr {stats.learning_rate:.4g} | {stats.seconds:.2f} s"
    )


def report_result(args: argparse.Namespace, metadata: dict[str, Any], threads: int) -> None:
    """The test accuracy on stdout; with --json also the settings, data and history."""
    if args.json:
        print_json({"model": args.output, **metadata, "threads": threads})
    else:
        print(f"test accuracy: {percent(metadata['test_accuracy'])}")
