"""Everything a training run must carry from one epoch to the next, and its checkpoint file.

A checkpoint holds the weights, the optimizer's state, the random generator's state, the epoch
reached, the history and the early-stopping bookkeeping (best weights and accuracy), so a run
continued from it ends with exactly the weights an uninterrupted run would have. It is written
atomically in the model-file container (digitnet.checkpoint) with "kind": "checkpoint".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from digitnet.checkpoint import ModelFileError, load_arrays, network_from_arrays, save_arrays
from digitnet.config import TrainConfig
from digitnet.network import Network, init_network
from digitnet.optim import Optimizer, make_optimizer

Array = NDArray[np.floating]


@dataclass
class EpochStats:
    """What one epoch of training measured."""

    epoch: int
    train_loss: float
    val_accuracy: float | None
    seconds: float
    learning_rate: float = 0.0  # the rate of the epoch's last step


@dataclass
class History:
    """Per-epoch statistics of a training run."""

    epochs: list[EpochStats] = field(default_factory=list)

    def to_list(self) -> list[dict[str, float | int | None]]:
        return [asdict(stats) for stats in self.epochs]

    @classmethod
    def from_list(cls, rows: list[dict[str, Any]]) -> History:
        return cls([EpochStats(**row) for row in rows])


@dataclass
class TrainingState:
    """A run between two epochs: epoch counts the epochs completed."""

    config: TrainConfig
    network: Network
    optimizer: Optimizer
    rng: np.random.Generator
    history: History = field(default_factory=History)
    epoch: int = 0
    best_accuracy: float | None = None
    best_params: dict[str, Array] | None = None
    stale_epochs: int = 0  # epochs since the best validation accuracy
    source: dict[str, Any] = field(default_factory=dict)  # what the run trains on, e.g. "data"

    def record_validation(self, accuracy: float | None) -> None:
        """Keep a copy of the weights when the validation accuracy improves."""
        if accuracy is None:
            return
        if self.best_accuracy is None or accuracy > self.best_accuracy:
            self.best_accuracy = accuracy
            self.best_params = {name: value.copy() for name, value in self.network.params.items()}
            self.stale_epochs = 0
        else:
            self.stale_epochs += 1


def new_training_state(config: TrainConfig) -> TrainingState:
    """A fresh run: the generator seeded from config.seed, then the initial weights from it."""
    rng = np.random.default_rng(config.seed)
    network = init_network(
        config.sizes, rng, activation=config.activation, output=config.output_units
    )
    optimizer = make_optimizer(config.optimizer, config.momentum, config.beta2)
    return TrainingState(config, network, optimizer, rng)


def save_checkpoint(path: str | Path, state: TrainingState) -> Path:
    """Write state to path atomically."""
    arrays: dict[str, Array] = {f"params/{k}": v for k, v in state.network.params.items()}
    arrays.update({f"optimizer/{k}": v for k, v in state.optimizer.state.items()})
    arrays.update({f"best/{k}": v for k, v in (state.best_params or {}).items()})
    metadata = {
        "kind": "checkpoint",
        "sizes": list(state.network.sizes),
        **state.network.architecture(),
        "config": state.config.to_dict(),
        "epoch": state.epoch,
        "history": state.history.to_list(),
        "rng": state.rng.bit_generator.state,
        "optimizer_steps": state.optimizer.steps,
        "best_accuracy": state.best_accuracy,
        "stale_epochs": state.stale_epochs,
        "source": state.source,
    }
    return save_arrays(path, arrays, metadata)


def load_checkpoint(path: str | Path) -> TrainingState:
    """The training state saved by save_checkpoint; ModelFileError if path holds none."""
    path = Path(path)
    arrays, meta = load_arrays(path)
    if meta.get("kind") != "checkpoint":
        raise ModelFileError(f"{path}: is a model file, not a training checkpoint")
    try:
        config = TrainConfig.from_dict(meta["config"])
        network = network_from_arrays(path, group(arrays, "params"), meta)
        optimizer = make_optimizer(config.optimizer, config.momentum, config.beta2)
        optimizer.state, optimizer.steps = group(arrays, "optimizer"), int(meta["optimizer_steps"])
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng"]
        best = group(arrays, "best") or None
        history = History.from_list(meta["history"])
        return TrainingState(
            config, network, optimizer, rng, history, int(meta["epoch"]),
            meta["best_accuracy"], best, int(meta["stale_epochs"]), dict(meta.get("source", {})),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a usable training checkpoint ({exc})") from None


def group(arrays: dict[str, Array], prefix: str) -> dict[str, Array]:
    """The arrays named "prefix/<name>", keyed by <name>."""
    start = len(prefix) + 1
    return {name[start:]: value for name, value in arrays.items() if name.startswith(prefix + "/")}
