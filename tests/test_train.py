"""Training and evaluation on real MNIST."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from conftest import small_dataset
from digitnet.data import Dataset, scale_pixels
from digitnet.network import init_network
from digitnet.train import TrainConfig, TrainingDivergedError, evaluate, fit


def test_two_epochs_on_all_images_beat_95_percent(mnist: Dataset) -> None:
    network, history = fit(TrainConfig(epochs=2, validation_size=0), mnist)
    accuracy = evaluate(network, scale_pixels(mnist.test_images), mnist.test_labels).accuracy
    assert accuracy > 0.95
    assert history.epochs[0].val_accuracy is None


def test_same_seed_gives_the_same_numbers(mnist: Dataset) -> None:
    small = small_dataset(mnist, 1000, 10)
    config = TrainConfig(epochs=2, validation_size=200, seed=7)
    first, history_a = fit(config, small)
    second, history_b = fit(config, small)
    third, _ = fit(TrainConfig(epochs=2, validation_size=200, seed=8), small)
    assert history_a.to_list()[0]["train_loss"] == history_b.to_list()[0]["train_loss"]
    assert all(np.array_equal(first.params[k], second.params[k]) for k in first.params)
    assert not np.array_equal(first.params["W1"], third.params["W1"])


def test_evaluation_does_not_depend_on_the_order_of_the_test_set(mnist: Dataset) -> None:
    network, _ = fit(TrainConfig(epochs=1, validation_size=500), small_dataset(mnist, 2000, 10))
    X, labels = scale_pixels(mnist.test_images), mnist.test_labels
    order = np.random.default_rng(0).permutation(len(labels))
    original = evaluate(network, X, labels)
    shuffled = evaluate(network, X[order], labels[order])
    assert original.accuracy == shuffled.accuracy
    assert np.array_equal(original.confusion, shuffled.confusion)


def test_confusion_matrix_counts_every_prediction(mnist: Dataset) -> None:
    network = init_network((784, 128, 10), np.random.default_rng(0))
    X, labels = scale_pixels(mnist.test_images[:500]), mnist.test_labels[:500]
    result = evaluate(network, X, labels)
    predictions = network.predict(X)
    assert result.confusion.sum() == 500
    assert result.confusion[3, 5] == np.sum((labels == 3) & (predictions == 5))
    assert result.accuracy == pytest.approx(np.trace(result.confusion) / 500)


def test_a_diverging_run_stops_with_advice(mnist: Dataset) -> None:
    with pytest.raises(
        TrainingDivergedError, match=r"loss became .*lower learning rate than 1e\+36"
    ):
        fit(
            TrainConfig(epochs=1, learning_rate=1e36, validation_size=0),
            small_dataset(mnist, 200, 10),
        )


def test_weights_that_overflow_in_an_epochs_last_step_stop_the_run(mnist: Dataset) -> None:
    """One step per epoch: its loss is finite, and only the update after it overflows."""
    data = small_dataset(mnist, 200, 10)
    config = TrainConfig(
        epochs=1, batch_size=200, learning_rate=1e10, weight_decay=1e30, validation_size=0
    )
    with pytest.raises(TrainingDivergedError, match=r"W1.* became infinite or NaN in epoch 1"):
        fit(config, data)


@pytest.mark.parametrize(
    ("field", "value"),
    [("epochs", 0), ("batch_size", 0), ("learning_rate", -1.0), ("hidden", (0,))],
)
def test_config_rejects_nonsense_values(field: str, value: float) -> None:
    overrides: dict[str, Any] = {field: value}
    with pytest.raises(
        ValueError, match=f"{field.replace('_', ' ')} must be .*, got {re.escape(str(value))}"
    ):
        TrainConfig(**overrides)
