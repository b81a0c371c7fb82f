"""The network's math: gradients against finite differences, numerics, shapes, learning."""

from __future__ import annotations

import numpy as np
import pytest

from digitnet.data import Dataset, scale_pixels
from digitnet.network import (
    Network,
    as_batch,
    cross_entropy,
    init_network,
    one_hot,
    sigmoid,
)
from digitnet.optim import Optimizer

RELATIVE_TOLERANCE = 1e-6


def numerical_gradient(
    network: Network,
    X: np.ndarray,
    Y: np.ndarray,
    name: str,
    indices: list[tuple[int, ...]],
    h: float = 1e-5,
) -> np.ndarray:
    """Central differences (L(theta + h) - L(theta - h)) / 2h at the given entries."""
    param = network.params[name]
    grads = []
    for index in indices:
        original = param[index]
        param[index] = original + h
        plus = network.loss(X, Y)
        param[index] = original - h
        minus = network.loss(X, Y)
        param[index] = original
        grads.append((plus - minus) / (2 * h))
    return np.array(grads)


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))


def random_problem(
    sizes: tuple[int, ...], n: int, seed: int = 0
) -> tuple[Network, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    network = init_network(sizes, rng, dtype=np.float64)
    for value in network.params.values():
        value += rng.normal(scale=0.3, size=value.shape)  # non-zero biases too
    X = rng.random((n, sizes[0]))
    Y = one_hot(rng.integers(0, sizes[-1], size=n) % 10, np.float64)[:, : sizes[-1]]
    return network, X, Y


@pytest.mark.parametrize("name", ["W1", "b1", "W2", "b2"])
def test_every_gradient_entry_matches_finite_differences_on_a_small_network(name: str) -> None:
    network, X, Y = random_problem((12, 7, 10), n=5)
    _, cache = network.forward(X)
    analytic = network.backward(cache, Y)[f"d{name}"]
    indices = list(np.ndindex(network.params[name].shape))
    numeric = numerical_gradient(network, X, Y, name, indices)
    assert relative_error(analytic[tuple(np.array(indices).T)], numeric) < RELATIVE_TOLERANCE


@pytest.mark.parametrize("name", ["W1", "b1", "W2", "b2"])
def test_seed_shaped_gradients_match_finite_differences(name: str, mnist: Dataset) -> None:
    network, _, _ = random_problem((784, 128, 10), n=1)
    X = scale_pixels(mnist.train_images[:8], np.float64)
    Y = one_hot(mnist.train_labels[:8], np.float64)
    _, cache = network.forward(X)
    analytic = network.backward(cache, Y)[f"d{name}"]
    rng = np.random.default_rng(1)
    shape = network.params[name].shape
    indices = [tuple(int(rng.integers(0, s)) for s in shape) for _ in range(40)]
    if name == "W1":  # entries fed by inked pixels, where the gradient is not zero
        inked = np.flatnonzero(X.sum(axis=0))
        indices = [(i, int(rng.choice(inked))) for i, _ in indices]
    numeric = numerical_gradient(network, X, Y, name, indices)
    picked = np.array([analytic[index] for index in indices])
    assert np.abs(picked).max() > 1e-4
    assert relative_error(picked, numeric) < RELATIVE_TOLERANCE


def test_sigmoid_is_stable_and_exact() -> None:
    z = np.array([-1000.0, -88.0, -5.0, 0.0, 5.0, 88.0, 1000.0], dtype=np.float32)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        values = sigmoid(z)
    assert values.dtype == np.float32
    assert np.all((values >= 0) & (values <= 1))
    middle = np.linspace(-20, 20, 81)
    assert np.allclose(sigmoid(middle), 1 / (1 + np.exp(-middle)), rtol=1e-12, atol=1e-15)


def test_cross_entropy_matches_the_formula_and_never_takes_log_of_zero() -> None:
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(6, 10))
    Y = one_hot(rng.integers(0, 10, size=6), np.float64)
    A = 1 / (1 + np.exp(-Z))
    naive = -np.mean(np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A), axis=1))
    assert cross_entropy(Z, Y) == pytest.approx(naive, rel=1e-12)
    saturated = np.full((1, 10), 200.0, dtype=np.float32)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss = cross_entropy(saturated, one_hot(np.array([3])))
    assert loss == pytest.approx(9 * 200.0, rel=1e-6)


def test_overfits_a_batch_of_64_images(mnist: Dataset) -> None:
    X = scale_pixels(mnist.train_images[:64])
    labels = mnist.train_labels[:64]
    Y = one_hot(labels)
    network = init_network((784, 128, 10), np.random.default_rng(0))
    for _ in range(300):
        _, cache = network.forward(X)
        Optimizer().step(network.params, network.backward(cache, Y), learning_rate=2.0)
    assert np.mean(network.predict(X) == labels) == 1.0
    assert network.loss(X, Y) < 0.05


@pytest.mark.parametrize(
    ("shape", "rows"), [((784,), 1), ((28, 28), 1), ((1, 784), 1), ((5, 784), 5), ((3, 28, 28), 3)]
)
def test_as_batch_accepts_single_images_and_batches(shape: tuple[int, ...], rows: int) -> None:
    assert as_batch(np.zeros(shape)).shape == (rows, 784)


@pytest.mark.parametrize("shape", [(783,), (28, 27), (2, 785), (2, 2, 784), ()])
def test_as_batch_rejects_other_shapes_with_a_clear_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"got shape"):
        as_batch(np.zeros(shape))


def test_single_image_and_batch_of_one_give_the_same_output(mnist: Dataset) -> None:
    network = init_network((784, 128, 10), np.random.default_rng(0))
    image = scale_pixels(mnist.test_images[:1])
    single = network.predict_proba(image[0])
    square = network.predict_proba(image.reshape(28, 28))
    batch = network.predict_proba(scale_pixels(mnist.test_images[:4]))
    assert np.array_equal(single, square)
    assert np.allclose(single[0], batch[0], atol=1e-6)


def test_network_refuses_parameters_of_the_wrong_shape() -> None:
    network = init_network((784, 128, 10), np.random.default_rng(0))
    params = dict(network.params, W2=np.zeros((10, 127), dtype=np.float32))
    with pytest.raises(ValueError, match=r"W2 has shape \(10, 127\), expected \(10, 128\)"):
        Network((784, 128, 10), params)
