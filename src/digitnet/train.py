"""Training by mini-batch stochastic gradient descent, and evaluation.

The library never prints: fit() reports through optional callbacks and returns a history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import NDArray

from digitnet.data import Dataset, scale_pixels, split_validation
from digitnet.network import INPUT_SIZE, NUM_CLASSES, Network, cross_entropy, init_network, one_hot
from digitnet.threads import blas_threads, choose_threads

EVAL_BATCH = 10_000


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Every training setting; the command-line flags map onto these fields.

    The defaults were chosen on the validation split (docs/benchmarks.md): with N(0, 1/fan_in)
    weights, batches of 32 and a step of 0.5 the seed network passes 98% test accuracy within
    its epochs, while steps above about 2 make the sigmoid outputs saturate early.
    """

    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 0.5
    hidden: int = 128
    validation_size: int = 5000
    seed: int = 0

    def __post_init__(self) -> None:
        rules = {
            "epochs": (self.epochs >= 1, "at least 1"),
            "batch_size": (self.batch_size >= 1, "at least 1"),
            "learning_rate": (
                self.learning_rate > 0 and np.isfinite(self.learning_rate),
                "a positive finite number",
            ),
            "hidden": (self.hidden >= 1, "at least 1"),
            "validation_size": (self.validation_size >= 0, "0 or more"),
            "seed": (self.seed >= 0, "0 or more"),
        }
        for name, (ok, rule) in rules.items():
            if not ok:
                label = name.replace("_", " ")
                raise ValueError(f"{label} must be {rule}, got {getattr(self, name)}")

    @property
    def sizes(self) -> tuple[int, ...]:
        return (INPUT_SIZE, self.hidden, NUM_CLASSES)

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


@dataclass
class EpochStats:
    """What one epoch of training measured."""

    epoch: int
    train_loss: float
    val_accuracy: float | None
    seconds: float


@dataclass
class History:
    """Per-epoch statistics of a training run."""

    epochs: list[EpochStats] = field(default_factory=list)

    def to_list(self) -> list[dict[str, float | int | None]]:
        return [asdict(stats) for stats in self.epochs]


@dataclass
class Evaluation:
    """Accuracy and confusion matrix; confusion[i, j] counts label i predicted as j."""

    accuracy: float
    confusion: NDArray[np.int64]

    @property
    def per_class_accuracy(self) -> NDArray[np.float64]:
        totals = self.confusion.sum(axis=1)
        accuracy: NDArray[np.float64] = np.diag(self.confusion) / np.maximum(totals, 1)
        return accuracy


def sgd_step(
    network: Network, grads: dict[str, NDArray[np.floating]], learning_rate: float
) -> None:
    """theta <- theta - eta * dtheta for every parameter, in place (eq. 15).

    The gradients are scaled by eta in place, so no temporary the size of W1 is allocated at
    every step; grads is used up by the call.
    """
    for name, value in network.params.items():
        step = grads[f"d{name}"]
        step *= learning_rate
        value -= step


def train_epoch(
    network: Network,
    X: NDArray[np.floating],
    labels: NDArray[np.uint8],
    config: TrainConfig,
    rng: np.random.Generator,
    on_batch: Callable[[int], None] | None = None,
) -> float:
    """One pass over X in shuffled mini-batches; returns the mean training loss."""
    order = rng.permutation(X.shape[0])
    total_loss = 0.0
    for start in range(0, X.shape[0], config.batch_size):
        batch = order[start : start + config.batch_size]
        X_batch, Y_batch = X[batch], one_hot(labels[batch], X.dtype.type)
        _, cache = network.forward(X_batch)
        loss = cross_entropy(cache.Z_out, Y_batch)
        if not np.isfinite(loss):
            raise TrainingDivergedError(
                f"the loss became {loss} at sample {start}; "
                f"try a lower learning rate than {config.learning_rate}"
            )
        total_loss += loss * batch.shape[0]
        sgd_step(network, network.backward(cache, Y_batch), config.learning_rate)
        if on_batch is not None:
            on_batch(batch.shape[0])
    return total_loss / float(X.shape[0])


def fit(
    config: TrainConfig,
    dataset: Dataset,
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    threads: int | None = None,
) -> tuple[Network, History]:
    """Train a new network on the training images, less the held-out validation split.

    BLAS runs on `threads` threads while training; None means $DIGITNET_THREADS, else the count
    measured fastest for the batch size (digitnet.threads).
    """
    blas_thread_count = choose_threads(config.batch_size, threads)
    train_x, train_y, val_x, val_y = split_validation(
        dataset.train_images, dataset.train_labels, config.validation_size
    )
    X, X_val = scale_pixels(train_x), scale_pixels(val_x)
    rng = np.random.default_rng(config.seed)
    network = init_network(config.sizes, rng)
    history = History()
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        # NaN and overflow warnings are silenced: divergence is checked explicitly
        with np.errstate(over="ignore", invalid="ignore"), blas_threads(blas_thread_count):
            train_loss = train_epoch(network, X, train_y, config, rng, on_batch)
        seconds = time.perf_counter() - started
        val_accuracy = evaluate(network, X_val, val_y).accuracy if len(val_y) else None
        stats = EpochStats(epoch, train_loss, val_accuracy, seconds)
        history.epochs.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    return network, history


def evaluate(network: Network, X: NDArray[np.floating], labels: NDArray[np.integer]) -> Evaluation:
    """Accuracy and confusion matrix of network on scaled images X (N, 784)."""
    if X.shape[0] != labels.shape[0]:
        raise ValueError(f"{X.shape[0]} images but {labels.shape[0]} labels")
    chunks = [network.predict(X[i : i + EVAL_BATCH]) for i in range(0, X.shape[0], EVAL_BATCH)]
    predictions = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (labels.astype(np.int64), predictions), 1)
    accuracy = float(np.mean(predictions == labels)) if labels.size else 0.0
    return Evaluation(accuracy=accuracy, confusion=confusion)
