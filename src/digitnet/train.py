"""Training by mini-batch gradient descent, and evaluation.

The library never prints: fit() reports through optional callbacks and returns a history.
A run can write a checkpoint after every epoch and be continued from it (digitnet.state);
with a patience it stops early and keeps the weights of its best validation accuracy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from digitnet.augment import augment_batch
from digitnet.config import TrainConfig
from digitnet.data import Dataset, scale_pixels, split_validation
from digitnet.network import NUM_CLASSES, Network, dropout_masks, one_hot
from digitnet.optim import Schedule
from digitnet.state import (
    EpochStats,
    History,
    TrainingState,
    new_training_state,
    save_checkpoint,
)
from digitnet.threads import blas_threads, choose_threads

EVAL_BATCH = 10_000

__all__ = [
    "EpochStats",
    "Evaluation",
    "History",
    "TrainConfig",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "evaluate",
    "fit",
]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training; the checkpoint, if any, holds the last completed epoch."""

    def __init__(self, epoch: int, checkpoint: Path | None) -> None:
        super().__init__(f"interrupted after epoch {epoch}")
        self.epoch = epoch
        self.checkpoint = checkpoint


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


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> Schedule:
    """The learning rate of every step of the run that config describes."""
    return Schedule(
        base=config.learning_rate,
        kind=config.schedule,
        total_steps=config.epochs * steps_per_epoch,
        step_size=config.step_epochs * steps_per_epoch,
        gamma=config.step_gamma,
        warmup_steps=round(config.warmup_epochs * steps_per_epoch),
    )


def train_epoch(
    state: TrainingState,
    X: NDArray[np.floating],
    labels: NDArray[np.uint8],
    schedule: Schedule,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[float, float]:
    """One pass over X in shuffled mini-batches; returns the mean training loss and last rate.

    The random generator is drawn from in a fixed order (the shuffle, then per batch the
    distortions and the dropout masks), so a run continued from a checkpoint repeats exactly.
    """
    config, network, rng = state.config, state.network, state.rng
    order = rng.permutation(X.shape[0])
    targets = one_hot(labels, X.dtype.type)  # (N, 10), gathered batch by batch
    total_loss, rate = 0.0, schedule(state.optimizer.steps)
    for start in range(0, X.shape[0], config.batch_size):
        batch = order[start : start + config.batch_size]
        X_batch = augment_batch(X[batch], rng, config.augment)
        Y_batch = targets[batch]
        masks = dropout_masks(network, batch.shape[0], config.dropout, rng)
        _, cache = network.forward(X_batch, masks)
        loss = network.output_loss(cache.Z_out, Y_batch)
        if not np.isfinite(loss):
            raise TrainingDivergedError(
                f"the loss became {loss} in epoch {state.epoch + 1} at sample {start}; "
                f"try a lower learning rate than {config.learning_rate}"
            )
        total_loss += loss * batch.shape[0]
        rate = schedule(state.optimizer.steps)
        grads = network.backward(cache, Y_batch, config.weight_decay)
        state.optimizer.step(network.params, grads, rate)
        if on_batch is not None:
            on_batch(batch.shape[0])
    check_finite_state(state)
    return total_loss / float(X.shape[0]), rate


def check_finite_state(state: TrainingState) -> None:
    """Raise TrainingDivergedError if a weight or optimizer value overflowed in the last steps.

    The loss is checked before each step, so an overflow in the epoch's last updates would
    otherwise reach the checkpoint, which is then refused on --resume.
    """
    arrays = {**state.network.params, **state.optimizer.state}
    broken = sorted(name for name, value in arrays.items() if not np.isfinite(value).all())
    if broken:
        raise TrainingDivergedError(
            f"{', '.join(broken)} became infinite or NaN in epoch {state.epoch + 1}; "
            f"try a lower learning rate than {state.config.learning_rate}"
        )


def fit(
    config: TrainConfig,
    dataset: Dataset,
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    checkpoint: str | Path | None = None,
    resume: TrainingState | None = None,
    threads: int | None = None,
) -> tuple[Network, History]:
    """Train a network on the training images, less the held-out validation split.

    With checkpoint, the state is written there before the first epoch and after every epoch.
    resume continues a state loaded from a checkpoint; config must match the state's settings
    except for epochs, which may be raised. On Ctrl-C the partial epoch is dropped and
    TrainingInterrupted names the checkpoint holding the last completed epoch. BLAS runs on
    `threads` threads while training; None means $DIGITNET_THREADS, else the count a resumed
    run trained with, else the count measured fastest for the batch size (digitnet.threads).
    """
    recorded = resume.threads if resume is not None else None
    blas_thread_count = choose_threads(config.batch_size, threads, recorded)
    train_x, train_y, val_x, val_y = split_validation(
        dataset.train_images, dataset.train_labels, config.validation_size
    )
    X, X_val = scale_pixels(train_x), scale_pixels(val_x)
    state = resume_state(config, resume) if resume is not None else new_training_state(config)
    state.threads = blas_thread_count
    schedule = make_schedule(config, math.ceil(X.shape[0] / config.batch_size))
    path = None if checkpoint is None else Path(checkpoint)
    if path is not None and state.epoch == 0:
        save_checkpoint(path, state)
    saved = state.epoch  # the epoch the checkpoint on disk holds
    try:
        while state.epoch < config.epochs and not stopped_early(state):
            with blas_threads(blas_thread_count):
                stats = run_epoch(state, X, train_y, X_val, val_y, schedule, on_batch)
            if path is not None:
                save_checkpoint(path, state)
            saved = state.epoch
            if on_epoch is not None:
                on_epoch(stats)
    except KeyboardInterrupt:
        raise TrainingInterrupted(saved, path) from None
    if config.patience and state.best_params is not None:
        state.network.params = {name: value.copy() for name, value in state.best_params.items()}
    return state.network, state.history


def resume_state(config: TrainConfig, state: TrainingState) -> TrainingState:
    """state, run on under config: only the number of epochs may differ from its settings."""
    mine, theirs = config.to_dict(), state.config.to_dict()
    changed = sorted(name for name in mine if name != "epochs" and mine[name] != theirs[name])
    if changed:
        raise ValueError(
            f"a resumed run keeps its checkpoint's settings; these differ: {', '.join(changed)}"
        )
    if config.epochs < state.epoch:
        raise ValueError(f"epochs {config.epochs} is fewer than the {state.epoch} already trained")
    state.config = config
    return state


def run_epoch(
    state: TrainingState,
    X: NDArray[np.floating],
    labels: NDArray[np.uint8],
    X_val: NDArray[np.floating],
    val_labels: NDArray[np.uint8],
    schedule: Schedule,
    on_batch: Callable[[int], None] | None,
) -> EpochStats:
    """Train one epoch, measure it on the validation images and record it in state."""
    started = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked explicitly
        train_loss, rate = train_epoch(state, X, labels, schedule, on_batch)
    seconds = time.perf_counter() - started
    val_accuracy = evaluate(state.network, X_val, val_labels).accuracy if len(val_labels) else None
    state.epoch += 1
    stats = EpochStats(state.epoch, train_loss, val_accuracy, seconds, rate)
    state.history.epochs.append(stats)
    if state.config.patience:
        state.record_validation(val_accuracy)
    return stats


def stopped_early(state: TrainingState) -> bool:
    """True once the validation accuracy has not improved for patience epochs."""
    patience = state.config.patience
    return patience > 0 and state.stale_epochs >= patience


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
