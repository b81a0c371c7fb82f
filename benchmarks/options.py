"""Measure each training option's effect: test accuracy and time per epoch, as a Markdown table.

Every row trains the seed network with one setting changed (and the best preset as the last
row) for the same few epochs on the bundled MNIST, then prints a row of the table on stdout
as soon as it is measured. Run from the repository root, with one BLAS thread so the times
compare fairly:

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/options.py --epochs 3

Wall-clock seconds depend on whatever else the machine runs; CPU seconds (the process's own
time) much less so.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone

import numpy as np

from digitnet.config import TrainConfig, preset
from digitnet.data import load_dataset, scale_pixels
from digitnet.train import evaluate, fit

# (label, the flags as a user would type them, the fields they change)
OPTIONS: list[tuple[str, str, dict[str, object]]] = [
    ("seed", "", {}),
    ("tanh hidden units", "--activation tanh", {"activation": "tanh"}),
    ("ReLU hidden units", "--activation relu", {"activation": "relu"}),
    ("softmax output", "--output-units softmax", {"output_units": "softmax"}),
    ("two hidden layers", "--hidden 256,128", {"hidden": (256, 128)}),
    ("dropout 0.2", "--dropout 0.2", {"dropout": 0.2}),
    ("L2 weight decay", "--weight-decay 0.0001", {"weight_decay": 1e-4}),
    ("momentum", "--optimizer momentum --learning-rate 0.05",
     {"optimizer": "momentum", "learning_rate": 0.05}),
    ("Nesterov", "--optimizer nesterov --learning-rate 0.05",
     {"optimizer": "nesterov", "learning_rate": 0.05}),
    ("Adam", "--optimizer adam --learning-rate 0.001",
     {"optimizer": "adam", "learning_rate": 1e-3}),
    ("step schedule", "--schedule step --step-epochs 1 --step-gamma 0.5",
     {"schedule": "step", "step_epochs": 1, "step_gamma": 0.5}),
    ("cosine schedule", "--schedule cosine", {"schedule": "cosine"}),
    ("cosine + warm-up", "--schedule cosine --warmup-epochs 1",
     {"schedule": "cosine", "warmup_epochs": 1.0}),
    ("affine augmentation", "--augment affine", {"augment": "affine"}),
    ("elastic augmentation", "--augment elastic", {"augment": "elastic"}),
]  # fmt: skip


def measure(config: TrainConfig) -> tuple[float, float, float, float | None]:
    """Test accuracy, wall and CPU seconds per epoch, last validation accuracy."""
    dataset = load_dataset()
    wall, cpu = time.perf_counter(), time.process_time()
    network, history = fit(config, dataset)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    test = evaluate(network, scale_pixels(dataset.test_images), dataset.test_labels)
    epochs = len(history.epochs)
    return test.accuracy, wall / epochs, cpu / epochs, history.epochs[-1].val_accuracy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per option (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (default: 0)")
    parser.add_argument("--no-best", action="store_true", help="skip the best preset's row")
    args = parser.parse_args()

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{args.epochs} epochs each, seed {args.seed}, {stamp}, {platform.processor() or ''}")
    print(f"numpy {np.__version__}, python {platform.python_version()}\n")
    print("| option | flags | test accuracy | val accuracy | s/epoch (wall) | s/epoch (CPU) |")
    print("|---|---|---:|---:|---:|---:|")
    rows = [(label, flags, preset("seed", **changes)) for label, flags, changes in OPTIONS]
    if not args.no_best:
        rows.append(("best preset", "--preset best", preset("best")))
    for label, flags, config in rows:
        config = TrainConfig.from_dict(
            {**config.to_dict(), "epochs": args.epochs, "seed": args.seed}
        )
        accuracy, wall, cpu, val = measure(config)
        val_text = "-" if val is None else f"{100 * val:.2f}%"
        print(
            f"| {label} | `{flags or '(defaults)'}` | {100 * accuracy:.2f}% | {val_text} | "
            f"{wall:.1f} | {cpu:.1f} |",
            flush=True,
        )
        print(f"done: {label}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
