"""Compare candidate settings for the best preset on the VALIDATION split only.

Each candidate is the best preset with a few settings changed, trained for the same shortened
number of epochs (its schedule shortened with it); the script prints the validation accuracy
after every epoch and never looks at the test images. Run from the repository root:

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/best_candidates.py --epochs 10
"""

from __future__ import annotations

import argparse
import sys
import time

from digitnet.config import preset
from digitnet.data import load_dataset
from digitnet.state import EpochStats
from digitnet.train import fit

CANDIDATES: dict[str, dict[str, object]] = {
    "preset": {},
    "elastic": {"augment": "elastic"},
    "adam": {"optimizer": "adam", "learning_rate": 1e-3},
    "no-augment": {"augment": "none"},
    "dropout-0.5": {"dropout": 0.5},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs per candidate")
    parser.add_argument("names", nargs="*", default=list(CANDIDATES), help="candidates to run")
    args = parser.parse_args()
    dataset = load_dataset()
    for name in args.names:
        config = preset("best", **CANDIDATES[name], epochs=args.epochs)

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
