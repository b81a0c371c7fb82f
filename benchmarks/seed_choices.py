"""The evidence behind the seed's initialization and learning rate: validation accuracy per epoch.

Trains the seed network (784-128-10 sigmoid, batches of 32, plain SGD) with its weights drawn
from N(0, 1 / fan_in), as digitnet does (eq. 16), or from N(0, 1), at each of several learning
rates, for the same few epochs on the bundled MNIST, and prints a Markdown table of the
validation accuracy after each epoch. Every other setting is the seed's; the seed's step
schedule first lowers the rate after epoch 15, so a run of up to 15 epochs keeps it constant.
Run from the repository root (a few minutes at the defaults, on one BLAS thread):

    .venv/bin/python benchmarks/seed_choices.py --epochs 5
    .venv/bin/python benchmarks/seed_choices.py --epochs 15 --inits fan-in --rates 0.25,0.5,1,2
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone

import numpy as np

from digitnet.config import TrainConfig, preset
from digitnet.data import Dataset, load_dataset
from digitnet.state import TrainingState, new_training_state
from digitnet.train import TrainingDivergedError, fit

INITS = {"fan-in": "N(0, 1/fan_in)", "unit": "N(0, 1)"}
RATES = "0.1,0.25,0.5,1,2"


def start_state(config: TrainConfig, init: str) -> TrainingState:
    """The seed's first state; for N(0, 1) its weights are scaled up by sqrt(fan_in).

    The scaled weights are the same random draws, so the two inits differ only in scale.
    """
    state = new_training_state(config)
    if init == "unit":
        for name, value in state.network.params.items():
            if name.startswith("W"):
                value *= np.sqrt(value.shape[1], dtype=value.dtype)
    return state


def validation_curve(dataset: Dataset, config: TrainConfig, init: str) -> list[float | None]:
    """Validation accuracy after each epoch of one run, on one BLAS thread."""
    _, history = fit(config, dataset, resume=start_state(config, init), threads=1)
    return [stats.val_accuracy for stats in history.epochs]


def run_cells(dataset: Dataset, config: TrainConfig, init: str) -> str:
    """One table row's accuracy cells, or "diverged" if the loss became NaN or infinite."""
    try:
        curve = validation_curve(dataset, config, init)
    except TrainingDivergedError:
        return "diverged"
    shown = [curve[epoch - 1] for epoch in shown_epochs(config.epochs)]
    return " | ".join("-" if value is None else f"{100 * value:.2f}%" for value in shown)


def shown_epochs(epochs: int) -> list[int]:
    """The epochs that get a column: the first five, then every fifth, and the last."""
    return [e for e in range(1, epochs + 1) if e <= 5 or e % 5 == 0 or e == epochs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (default: 0)")
    parser.add_argument("--rates", default=RATES, help=f"learning rates (default: {RATES})")
    parser.add_argument(
        "--inits", default="fan-in,unit", help="fan-in, unit or both (default: fan-in,unit)"
    )
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]
    inits = args.inits.split(",")
    if not set(inits) <= set(INITS):
        parser.error(f"--inits: choose from {', '.join(INITS)}, got {args.inits}")

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{args.epochs} epochs each, seed {args.seed}, {stamp}, {platform.machine()}")
    print(f"numpy {np.__version__}, python {platform.python_version()}\n")
    columns = [f"epoch {epoch}" for epoch in shown_epochs(args.epochs)]
    print(f"| weights | learning rate | {' | '.join(columns)} |")
    print("|---|---:|" + "---:|" * len(columns))
    dataset = load_dataset()
    for init in inits:
        for rate in rates:
            config = preset("seed", epochs=args.epochs, learning_rate=rate, seed=args.seed)
            started = time.perf_counter()
            print(f"| {INITS[init]} | {rate:g} | {run_cells(dataset, config, init)} |", flush=True)
            seconds = time.perf_counter() - started
            print(f"done: {init} {rate:g} in {seconds:.0f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
