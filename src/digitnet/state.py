"""Everything a training run must carry from one epoch to the next, and its checkpoint file.

A checkpoint holds the weights, the optimizer's state, the random generator's state, the epoch
reached, the history and the early-stopping bookkeeping (best weights and accuracy), so a run
continued from it ends with exactly the weights an uninterrupted run would have. It is written
atomically in the model-file container (digitnet.checkpoint) with "kind": "checkpoint".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeGuard

import numpy as np
from numpy.typing import NDArray

from digitnet.checkpoint import (
    ModelFileError,
    load_arrays,
    network_from_arrays,
    save_arrays,
)
from digitnet.config import TrainConfig
from digitnet.network import Network, check_params, init_network
from digitnet.optim import Optimizer, make_optimizer
from digitnet.values import excerpt, is_finite_number

Array = NDArray[np.floating]

ARRAY_GROUPS = ("params", "optimizer", "best")
PCG64_KEYS = {"bit_generator", "state", "has_uint32", "uinteger"}


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
    threads: int | None = None  # BLAS threads it trains with, kept so a resumed run uses them

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
        "threads": state.threads,
    }
    return save_arrays(path, arrays, metadata)


def load_checkpoint(path: str | Path) -> TrainingState:
    """The training state saved by save_checkpoint; ModelFileError if path holds none.

    Every part is checked before training starts, so a corrupt or hostile file is refused
    with its path and the fault rather than failing epochs later: the settings, the weights,
    the optimizer's state, the best weights, the counters, the history and the generator.
    """
    path = Path(path)
    arrays, meta = load_arrays(path)
    if meta.get("kind") != "checkpoint":
        raise ModelFileError(f"{path}: is a model file, not a training checkpoint")
    check_array_groups(path, arrays)

    config = checkpoint_config(path, meta)
    network = checkpoint_network(path, group(arrays, "params"), meta, config)
    optimizer = checkpoint_optimizer(path, group(arrays, "optimizer"), meta, config, network)
    best_accuracy, best = checkpoint_best(path, group(arrays, "best"), meta, network)
    epoch = whole_number(path, "epoch", meta.get("epoch"), high=config.epochs)
    stale_epochs = whole_number(path, "stale_epochs", meta.get("stale_epochs"), high=epoch)
    history = checkpoint_history(path, meta.get("history"), epoch)

    state = TrainingState(config, network, optimizer, checkpoint_rng(path, meta.get("rng")))
    state.history, state.epoch, state.stale_epochs = history, epoch, stale_epochs
    state.best_accuracy, state.best_params = best_accuracy, best
    state.source = checkpoint_source(path, meta.get("source", {}))
    state.threads = checkpoint_threads(path, meta.get("threads"))
    return state


def check_array_groups(path: Path, arrays: dict[str, Array]) -> None:
    """Every array of a checkpoint is a parameter, an optimizer state or a best weight."""
    for name in arrays:
        if name.split("/", 1)[0] not in ARRAY_GROUPS or "/" not in name:
            raise ModelFileError(
                f"{path}: array {name!r} is not part of a training checkpoint (expected names "
                "starting params/, optimizer/ or best/)"
            )


def checkpoint_config(path: Path, meta: dict[str, Any]) -> TrainConfig:
    """The run's settings, each of the type TrainConfig gives it and allowed by its rules."""
    settings = meta.get("config")
    if not isinstance(settings, dict):
        raise ModelFileError(f"{path}: checkpoint has no 'config' of training settings")
    defaults = TrainConfig()
    for item in fields(TrainConfig):
        if item.name in settings and not setting_has_type(
            settings[item.name], getattr(defaults, item.name)
        ):
            expected = setting_type_name(getattr(defaults, item.name))
            raise ModelFileError(
                f"{path}: setting {item.name!r} must be {expected}, "
                f"got {excerpt(settings[item.name])}"
            )
    as_floats = {
        name: float(value)
        for name, value in settings.items()
        if isinstance(getattr(defaults, name, None), float)
    }
    try:
        return TrainConfig.from_dict({**settings, **as_floats})
    except ValueError as exc:
        raise ModelFileError(f"{path}: refused training settings ({exc})") from None


def setting_has_type(value: object, default: object) -> bool:
    """Whether a saved setting has the type of its default (a bool is no number here)."""
    if isinstance(value, bool):
        return False
    if isinstance(default, tuple):
        return isinstance(value, list) and all(type(width) is int for width in value)
    if isinstance(default, float):
        return is_finite_number(value)
    return type(value) is type(default)


def setting_type_name(default: object) -> str:
    if isinstance(default, tuple):
        return "a list of whole numbers"
    if isinstance(default, float):
        return "a finite number"
    return "a whole number" if isinstance(default, int) else "a string"


def checkpoint_network(
    path: Path, params: dict[str, Array], meta: dict[str, Any], config: TrainConfig
) -> Network:
    """The weights, float32 in init_network's layout, for the network the settings describe."""
    network = network_from_arrays(path, params, meta)
    described = (config.sizes, config.activation, config.output_units)
    if (network.sizes, network.activation, network.output) != described:
        raise ModelFileError(
            f"{path}: the weights are for a {network.sizes} {network.activation}/"
            f"{network.output} network, but the settings describe {config.sizes} "
            f"{config.activation}/{config.output_units}"
        )
    network.params = as_training_arrays(params)
    return network


def checkpoint_optimizer(
    path: Path,
    state: dict[str, Array],
    meta: dict[str, Any],
    config: TrainConfig,
    network: Network,
) -> Optimizer:
    """The optimizer of the settings, with exactly its slots for every parameter restored.

    Before the first step an optimizer holds no state yet (it is made on the first step);
    after it, every slot of every parameter must be there, shaped like its parameter.
    """
    optimizer = make_optimizer(config.optimizer, config.momentum, config.beta2)
    optimizer.steps = whole_number(path, "optimizer_steps", meta.get("optimizer_steps"))
    shapes = {name: value.shape for name, value in network.params.items()}
    expected = {f"{slot}/{name}": shapes[name] for slot in optimizer.slots for name in shapes}
    if state or optimizer.steps:
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or extra:
            raise ModelFileError(
                f"{path}: {config.optimizer} optimizer state after {optimizer.steps} steps "
                f"must hold {sorted(expected) or 'nothing'}; missing {missing}, extra {extra}"
            )
    for name, value in state.items():
        if value.shape != expected[name]:
            raise ModelFileError(
                f"{path}: optimizer state {name} has shape {value.shape}, "
                f"expected {expected[name]} like its parameter"
            )
        if name.startswith("v/") and config.optimizer == "adam" and np.any(value < 0):
            raise ModelFileError(
                f"{path}: optimizer state {name} holds negative values; Adam's averages of "
                "squared gradients never are"
            )
    optimizer.state = as_training_arrays(state)
    return optimizer


def checkpoint_best(
    path: Path, best: dict[str, Array], meta: dict[str, Any], network: Network
) -> tuple[float | None, dict[str, Array] | None]:
    """The best validation accuracy and its weights: both present, or neither."""
    accuracy = meta.get("best_accuracy")
    if not (accuracy is None or (is_finite_number(accuracy) and 0 <= accuracy <= 1)):
        raise ModelFileError(
            f"{path}: checkpoint 'best_accuracy' must be null or a number from 0 to 1, "
            f"got {excerpt(accuracy)}"
        )
    if (accuracy is None) != (not best):
        held = "weights but no accuracy" if best else "an accuracy but no weights"
        raise ModelFileError(f"{path}: the best validation result has {held}")
    if accuracy is None or not best:
        return None, None
    try:
        check_params(network.sizes, best)
    except ValueError as exc:
        raise ModelFileError(f"{path}: best weights: {exc}") from None
    return float(accuracy), as_training_arrays(best)


def as_training_arrays(arrays: dict[str, Array]) -> dict[str, Array]:
    """float32 copies, weights (W..., and their optimizer slots) column-major as init_network."""
    cast: dict[str, Array] = {}
    for name, value in arrays.items():
        order: Literal["C", "F"] = "F" if name.rsplit("/", 1)[-1].startswith("W") else "C"
        cast[name] = np.array(value, dtype=np.float32, order=order)
    return cast


def whole_number(path: Path, name: str, value: object, high: int | None = None) -> int:
    """A counter from the metadata: an integer from 0 (to high, when given)."""
    if type(value) is not int or value < 0 or (high is not None and value > high):
        rule = "a whole number from 0" + ("" if high is None else f" to {high}")
        raise ModelFileError(f"{path}: checkpoint '{name}' must be {rule}, got {excerpt(value)}")
    return value


def checkpoint_history(path: Path, rows: object, epoch: int) -> History:
    """One row of EpochStats per completed epoch, numbered 1 to epoch."""
    if not isinstance(rows, list) or len(rows) != epoch:
        raise ModelFileError(
            f"{path}: checkpoint 'history' must list the {epoch} completed epochs, "
            f"got {excerpt(rows)}"
        )
    for number, row in enumerate(rows, start=1):
        if not history_row_is_valid(row, number):
            raise ModelFileError(
                f"{path}: history row {number} is not the statistics of epoch {number}: "
                f"{excerpt(row)}"
            )
    return History.from_list(rows)


def history_row_is_valid(row: object, number: int) -> bool:
    """Whether row holds EpochStats of epoch number (learning_rate may be absent)."""
    names = {item.name for item in fields(EpochStats)}
    if not isinstance(row, dict) or not names - {"learning_rate"} <= set(row) <= names:
        return False
    accuracy = row["val_accuracy"]
    return (
        row["epoch"] == number
        and type(row["epoch"]) is int
        and is_finite_number(row["train_loss"])
        and (accuracy is None or is_finite_number(accuracy))
        and is_finite_number(row["seconds"])
        and is_finite_number(row.get("learning_rate", 0.0))
    )


def checkpoint_rng(path: Path, saved: object) -> np.random.Generator:
    """The generator, restored from a PCG64 state as numpy's bit_generator.state gives it."""
    if not is_pcg64_state(saved):
        raise ModelFileError(
            f"{path}: checkpoint 'rng' is not the state of numpy's PCG64 generator, "
            f"got {excerpt(saved)}"
        )
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = saved
    return rng


def is_pcg64_state(saved: object) -> TypeGuard[dict[str, Any]]:
    """Whether saved has the keys and ranges of PCG64's state (numpy truncates a float)."""
    if not isinstance(saved, dict) or set(saved) != PCG64_KEYS:
        return False
    words, has_uint32, uinteger = saved["state"], saved["has_uint32"], saved["uinteger"]
    return (
        saved["bit_generator"] == "PCG64"
        and isinstance(words, dict)
        and set(words) == {"state", "inc"}
        and all(type(word) is int and 0 <= word < 2**128 for word in words.values())
        and words["inc"] % 2 == 1  # PCG64 makes its increment odd
        and type(has_uint32) is int
        and has_uint32 in (0, 1)
        and type(uinteger) is int
        and 0 <= uinteger < 2**32
    )


def checkpoint_source(path: Path, source: object) -> dict[str, Any]:
    """What the run trains on: {"data": folder or null}."""
    if not isinstance(source, dict) or not isinstance(source.get("data"), (str, type(None))):
        raise ModelFileError(
            f"{path}: checkpoint 'source' must be {{\"data\": folder or null}}, "
            f"got {excerpt(source)}"
        )
    return dict(source)


def checkpoint_threads(path: Path, threads: object) -> int | None:
    """The BLAS thread count the run trained with; None in files that do not record it."""
    if threads is not None and (type(threads) is not int or threads < 1):
        raise ModelFileError(
            f"{path}: checkpoint 'threads' must be a whole number from 1, got {excerpt(threads)}"
        )
    return threads


def group(arrays: dict[str, Array], prefix: str) -> dict[str, Array]:
    """The arrays named "prefix/<name>", keyed by <name>."""
    start = len(prefix) + 1
    return {name[start:]: value for name, value in arrays.items() if name.startswith(prefix + "/")}
