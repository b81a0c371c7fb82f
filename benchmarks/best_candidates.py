"""Compare candidate settings for the best preset on the VALIDATION split only.

Each candidate is the first version of the best preset (30 epochs, affine augmentation) with a
few settings changed, trained for the same shortened number of epochs (its schedule shortened
with it); the script prints the validation accuracy after every epoch and never looks at the
test images. The preset now in digitnet.config is the candidate "elastic". Run from the
repository root:

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/best_candidates.py --epochs 8
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/best_candidates.py --epochs 50 affine elastic
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Any

from digitnet.config import preset
from digitnet.data import load_dataset
from digitnet.state import EpochStats
from digitnet.train import fit

# The best preset as first chosen, the base every candidate changes.
FIRST_VERSION = preset("best", epochs=30, augment="affine")

CANDIDATES: dict[str, dict[str, Any]] = {
    "first-version": {},
    "elastic": {"augment": "elastic"},
    "adam": {"optimizer": "adam", "learning_rate": 1e-3},
    "no-augment": {"augment": "none"},
    "dropout-0.5": {"dropout": 0.5},
    "affine": {"augment": "affine"},  # the first version under the name of its augmentation
}
COMPARED_FIRST = ["first-version", "elastic", "adam", "no-augment", "dropout-0.5"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="epochs per candidate")
    parser.add_argument(
        "names",
        nargs="*",
        default=COMPARED_FIRST,
        help=f"candidates to run, from {', '.join(CANDIDATES)} (default: the first five)",
    )
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidates {unknown}; choose from {', '.join(CANDIDATES)}")
    dataset = load_dataset()
    for name in args.names:
        config = replace(FIRST_VERSION, **CANDIDATES[name], epochs=args.epochs)

        def on_epoch(stats: EpochStats, name: str = name) -> None:
            print(f"{name} | epoch {stats.epoch} | val {100 * (stats.val_accuracy or 0):.2f}% "
                  f"| {stats.seconds:.1f} s", file=sys.stderr, flush=True)  # fmt: skip

        started = time.process_time()
        _, history = fit(config, dataset, on_epoch=on_epoch)
        best = max(stats.val_accuracy or 0.0 for stats in history.epochs)
        last = history.epochs[-1].val_accuracy or 0.0
        cpu = time.process_time() - started
        print(f"| {name} | {100 * last:.2f}% | {100 * best:.2f}% | {cpu / args.epochs:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
