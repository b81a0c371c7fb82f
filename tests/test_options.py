"""The model options: gradients of every combination against finite differences, numerics,
initialization, model files that remember the architecture, and the command-line flags."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import small_dataset
from digitnet.activations import log_softmax, softmax, softmax_cross_entropy
from digitnet.checkpoint import load_model, save_model
from digitnet.cli import main
from digitnet.config import TrainConfig, parse_widths, preset
from digitnet.data import Dataset, scale_pixels
from digitnet.network import Network, dropout_masks, init_network, one_hot
from digitnet.optim import Optimizer
from digitnet.threads import blas_threads
from digitnet.train import evaluate, fit

RELATIVE_TOLERANCE = 1e-6
ACTIVATIONS = ("sigmoid", "tanh", "relu")
OUTPUTS = ("sigmoid", "softmax")
REGULARIZERS = ("none", "dropout", "decay", "dropout+decay")


def random_problem(
    hidden: tuple[int, ...], activation: str, output: str, seed: int = 0
) -> tuple[Network, np.ndarray, np.ndarray, np.random.Generator]:
    """A float64 network with non-zero biases, random inputs and one-hot targets."""
    rng = np.random.default_rng(seed)
    sizes = (12, *hidden, 10)
    network = init_network(sizes, rng, np.float64, activation, output)
    for value in network.params.values():
        value += rng.normal(scale=0.3, size=value.shape)
    X = rng.random((6, 12))
    Y = one_hot(rng.integers(0, 10, size=6), np.float64)
    return network, X, Y, rng


def numerical_gradients(
    network: Network, loss: Callable[[], float], h: float = 1e-5
) -> dict[str, np.ndarray]:
    """Central differences (L(theta + h) - L(theta - h)) / 2h for every parameter entry."""
    grads = {}
    for name, param in network.params.items():
        grad = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            original = param[index]
            param[index] = original + h
            plus = loss()
            param[index] = original - h
            minus = loss()
            param[index] = original
            grad[index] = (plus - minus) / (2 * h)
        grads[f"d{name}"] = grad
    return grads


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))


@pytest.mark.parametrize("hidden", [(7,), (6, 5)], ids=["one-hidden", "two-hidden"])
@pytest.mark.parametrize("regularizer", REGULARIZERS)
@pytest.mark.parametrize(("activation", "output"), list(itertools.product(ACTIVATIONS, OUTPUTS)))
def test_gradients_match_finite_differences_for_every_option(
    activation: str, output: str, regularizer: str, hidden: tuple[int, ...]
) -> None:
    network, X, Y, rng = random_problem(hidden, activation, output)
    masks = dropout_masks(network, X.shape[0], 0.4, rng) if "dropout" in regularizer else None
    decay = 0.05 if "decay" in regularizer else 0.0

    _, cache = network.forward(X, masks)
    analytic = network.backward(cache, Y, weight_decay=decay)
    numeric = numerical_gradients(network, lambda: network.loss(X, Y, masks, decay))

    for name, grad in numeric.items():
        assert np.abs(grad).max() > 1e-4, name  # a gradient that is all zero would prove nothing
        assert relative_error(analytic[name], grad) < RELATIVE_TOLERANCE, name


def test_dropout_masks_drop_at_the_rate_and_keep_the_expected_output() -> None:
    network = init_network((784, 300, 200, 10), np.random.default_rng(0))
    masks = dropout_masks(network, 1000, 0.25, np.random.default_rng(1))
    assert masks is not None
    assert [mask.shape for mask in masks] == [(1000, 300), (1000, 200)]
    for mask in masks:
        assert set(np.unique(mask)) == {0.0, np.float32(1 / 0.75)}
        assert np.mean(mask == 0) == pytest.approx(0.25, abs=0.01)
        assert mask.mean() == pytest.approx(1.0, abs=0.02)
    assert dropout_masks(network, 10, 0.0, np.random.default_rng(1)) is None


def test_dropout_changes_the_training_pass_only_through_the_mask() -> None:
    network, X, _, rng = random_problem((7,), "relu", "softmax")
    masks = dropout_masks(network, X.shape[0], 0.5, rng)
    assert masks is not None
    _, dropped = network.forward(X, masks)
    _, whole = network.forward(X)
    assert np.array_equal(dropped.activations[1], whole.activations[1] * masks[0])
    assert np.array_equal(dropped.hidden[0], whole.hidden[0])


def test_softmax_is_stable_and_matches_the_formula() -> None:
    Z = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        P = softmax(Z)
        logs = log_softmax(Z)
    assert np.allclose(P.sum(axis=1), 1.0)
    assert np.allclose(P[1], np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum())
    assert logs[0, 2] == pytest.approx(-2000.0)


def test_softmax_cross_entropy_matches_the_naive_formula() -> None:
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(5, 10))
    Y = one_hot(rng.integers(0, 10, size=5), np.float64)
    naive = -np.mean(np.sum(Y * np.log(np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)), 1))
    assert softmax_cross_entropy(Z, Y) == pytest.approx(naive, rel=1e-12)


def test_relu_layers_start_with_he_scale_and_others_with_one_over_fan_in() -> None:
    relu = init_network((784, 1000, 1000, 10), np.random.default_rng(0), activation="relu")
    tanh = init_network((784, 1000, 10), np.random.default_rng(0), activation="tanh")
    assert relu.params["W1"].var() == pytest.approx(2 / 784, rel=0.02)
    assert relu.params["W2"].var() == pytest.approx(2 / 1000, rel=0.02)
    assert relu.params["W3"].var() == pytest.approx(1 / 1000, rel=0.1)
    assert tanh.params["W1"].var() == pytest.approx(1 / 784, rel=0.02)


def test_seed_initialization_is_unchanged() -> None:
    network = init_network((784, 128, 10), np.random.default_rng(3))
    rng = np.random.default_rng(3)
    W1 = (rng.standard_normal((128, 784)) / np.sqrt(784)).astype(np.float32)
    W2 = (rng.standard_normal((10, 128)) / np.sqrt(128)).astype(np.float32)
    assert np.array_equal(network.params["W1"], W1)
    assert np.array_equal(network.params["W2"], W2)


def test_a_two_hidden_layer_sigmoid_network_learns_in_one_epoch(mnist: Dataset) -> None:
    network, _ = fit(TrainConfig(epochs=1, hidden=(128, 64), validation_size=0), mnist)
    accuracy = evaluate(network, scale_pixels(mnist.test_images), mnist.test_labels).accuracy
    assert accuracy > 0.92


@pytest.mark.parametrize(("activation", "output"), [("relu", "softmax"), ("tanh", "sigmoid")])
def test_model_files_rebuild_the_same_architecture(
    tmp_path: Path, activation: str, output: str
) -> None:
    network = init_network((784, 20, 15, 10), np.random.default_rng(0), activation=activation)
    network = Network(network.sizes, network.params, activation, output)
    path = save_model(tmp_path / "m.npz", network, {"note": "test"})
    loaded, metadata = load_model(path)
    assert (loaded.activation, loaded.output, loaded.sizes) == (
        activation,
        output,
        (784, 20, 15, 10),
    )
    assert metadata["activation"] == activation
    X = np.random.default_rng(1).random((4, 784)).astype(np.float32)
    assert np.array_equal(loaded.predict_proba(X), network.predict_proba(X))


def test_model_files_without_architecture_load_as_the_seed_network(tmp_path: Path) -> None:
    network = init_network((784, 16, 10), np.random.default_rng(0))
    blob = np.frombuffer(
        json.dumps({"format_version": 1, "sizes": [784, 16, 10]}).encode(), np.uint8
    )
    arrays: dict[str, Any] = {"metadata": blob, **network.params}
    np.savez(tmp_path / "old.npz", **arrays)
    loaded, _ = load_model(tmp_path / "old.npz")
    assert (loaded.activation, loaded.output) == ("sigmoid", "sigmoid")


@pytest.mark.parametrize(
    ("text", "widths"), [("128", (128,)), ("512,256", (512, 256)), (" 64 , 32 ,16", (64, 32, 16))]
)
def test_hidden_widths_parse_from_text(text: str, widths: tuple[int, ...]) -> None:
    assert parse_widths(text) == widths


@pytest.mark.parametrize(
    ("field", "value"),
    [("dropout", 1.0), ("activation", "swish"), ("optimizer", "lbfgs"), ("hidden", (64, 0))],
)
def test_config_rejects_unknown_options(field: str, value: object) -> None:
    overrides: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        TrainConfig(**overrides)


@pytest.mark.parametrize("field", ["learning_rate", "weight_decay", "warmup_epochs"])
@pytest.mark.parametrize("value", [10**400, float("inf"), float("nan")])
def test_config_refuses_numbers_no_float_can_hold_in_a_short_message(
    field: str, value: float
) -> None:
    overrides: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field.replace("_", " ")) as refused:
        TrainConfig(**overrides)
    assert len(str(refused.value)) < 120


def test_cli_trains_a_deep_relu_softmax_network(
    tmp_path: Path, mnist: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import write_dataset

    folder = write_dataset(tmp_path / "data", small_dataset(mnist, 600, 100))
    output = tmp_path / "m.npz"
    options = "--epochs 2 --hidden 32,16 --activation relu --output-units softmax --dropout 0.2"
    options += " --optimizer adam --learning-rate 0.002 --validation-size 100 -q --json"
    status = main(["train", "--data", str(folder), "-o", str(output), *options.split()])
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    network, metadata = load_model(output)
    assert network.sizes == (784, 32, 16, 10)
    assert (network.activation, network.output) == ("relu", "softmax")
    assert metadata["config"]["hidden"] == [32, 16]
    assert summary["test_accuracy"] > 0.5


def test_cli_rejects_bad_hidden_widths(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--hidden", "128,abc"])
    assert exit_info.value.code == 2
    assert "give widths like 128 or 512,256" in capsys.readouterr().err


def test_the_seed_preset_trains_exactly_like_the_plain_seed_loop(mnist: Dataset) -> None:
    data = small_dataset(mnist, 1100, 10)
    config = preset("seed", epochs=1, validation_size=100)
    trained, _ = fit(config, data, threads=1)  # one BLAS thread in both, so sums agree

    rng = np.random.default_rng(config.seed)
    network = init_network((784, 128, 10), rng)
    X, labels = scale_pixels(data.train_images[:1000]), data.train_labels[:1000]
    order = rng.permutation(1000)
    for start in range(0, 1000, 32):
        batch = order[start : start + 32]
        with blas_threads(1):
            _, cache = network.forward(X[batch])
            Optimizer().step(network.params, network.backward(cache, one_hot(labels[batch])), 0.5)

    assert all(np.array_equal(trained.params[k], network.params[k]) for k in network.params)


def test_configs_round_trip_through_their_saved_form() -> None:
    config = preset("best", hidden=(64, 32), dropout=0.1)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match=r"unknown training settings \['colour'\]"):
        TrainConfig.from_dict({**config.to_dict(), "colour": "red"})
