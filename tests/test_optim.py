"""Optimizers against steps worked out by hand, and on a small fixed problem; schedules."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from digitnet.network import init_network, one_hot
from digitnet.optim import OPTIMIZERS, Schedule, make_optimizer


def two_steps(name: str, learning_rate: float) -> np.ndarray:
    """theta after the gradients [0.5, -1] and then [0.25, 0.5], starting from [1, -2]."""
    params = {"W": np.array([1.0, -2.0])}
    optimizer = make_optimizer(name, momentum=0.9, beta2=0.999)
    optimizer.step(params, {"dW": np.array([0.5, -1.0])}, learning_rate)
    optimizer.step(params, {"dW": np.array([0.25, 0.5])}, learning_rate)
    return params["W"]


def test_sgd_matches_a_hand_computed_step() -> None:
    # theta = [1, -2] - 0.1 [0.5, -1] - 0.1 [0.25, 0.5] = [0.925, -1.95]
    assert two_steps("sgd", 0.1) == pytest.approx([0.925, -1.95], abs=1e-15)


def test_momentum_matches_a_hand_computed_step() -> None:
    # v1 = [0.5, -1],                       theta1 = [1, -2] - 0.1 v1 = [0.95, -1.9]
    # v2 = 0.9 v1 + [0.25, 0.5] = [0.7, -0.4], theta2 = theta1 - 0.1 v2 = [0.88, -1.86]
    assert two_steps("momentum", 0.1) == pytest.approx([0.88, -1.86], abs=1e-15)


def test_nesterov_matches_a_hand_computed_step() -> None:
    # v1 = [0.5, -1],  theta1 = [1, -2] - 0.1 (g1 + 0.9 v1) = [0.905, -1.81]
    # v2 = [0.7, -0.4], theta2 = theta1 - 0.1 ([0.25, 0.5] + 0.9 v2) = [0.817, -1.824]
    assert two_steps("nesterov", 0.1) == pytest.approx([0.817, -1.824], abs=1e-15)


def test_adam_matches_a_hand_computed_step() -> None:
    params = {"w": np.array([1.0])}
    adam = make_optimizer("adam", momentum=0.9, beta2=0.999)
    # Step 1, g = 0.5: m = 0.05, v = 0.00025; bias-corrected 0.5 and 0.25, so the step is
    # 0.1 * 0.5 / (0.5 + 1e-8): theta = 0.900000002.
    adam.step(params, {"dw": np.array([0.5])}, 0.1)
    assert params["w"][0] == pytest.approx(0.900000002, abs=1e-12)
    # Step 2, g = -0.25: m = 0.045 - 0.025 = 0.02, v = 0.00024975 + 0.0000625 = 0.00031225;
    # m_hat = 0.02 / 0.19 = 0.105263..., v_hat = 0.00031225 / 0.001999 = 0.156203...,
    # sqrt(v_hat) = 0.395225..., theta = 0.900000002 - 0.1 * 0.105263 / 0.395225 = 0.873366...
    adam.step(params, {"dw": np.array([-0.25])}, 0.1)
    assert params["w"][0] == pytest.approx(0.8733662987, abs=1e-9)
    assert adam.steps == 2
    assert adam.state["m/w"][0] == pytest.approx(0.02)


def test_adam_first_step_is_the_learning_rate_for_any_gradient() -> None:
    params = {"w": np.array([0.0, 0.0, 0.0])}
    make_optimizer("adam").step(params, {"dw": np.array([1e-4, -3.0, 250.0])}, 0.01)
    assert params["w"] == pytest.approx([-0.01, 0.01, -0.01], rel=1e-3)


@pytest.mark.parametrize(
    ("name", "learning_rate"),
    [("sgd", 0.5), ("momentum", 0.05), ("nesterov", 0.05), ("adam", 0.01)],
)
def test_every_optimizer_decreases_the_loss_on_a_fixed_problem(
    name: str, learning_rate: float
) -> None:
    rng = np.random.default_rng(0)
    network = init_network((20, 16, 10), rng, np.float64, activation="relu", output="softmax")
    X = rng.random((40, 20))
    Y = one_hot(rng.integers(0, 10, size=40), np.float64)
    optimizer = make_optimizer(name)
    start = network.loss(X, Y)
    for _ in range(100):
        _, cache = network.forward(X)
        optimizer.step(network.params, network.backward(cache, Y), learning_rate)
    assert network.loss(X, Y) < 0.5 * start


def test_unknown_optimizer_is_refused() -> None:
    with pytest.raises(ValueError, match=f"choose one of {', '.join(OPTIMIZERS)}"):
        make_optimizer("rmsprop")


def test_constant_and_step_schedules() -> None:
    assert [Schedule(0.5)(t) for t in (0, 10, 1000)] == [0.5, 0.5, 0.5]
    step = Schedule(1.0, "step", total_steps=100, step_size=10, gamma=0.5)
    assert [step(t) for t in (0, 9, 10, 19, 20, 35)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]


def test_cosine_schedule_falls_from_the_base_to_zero() -> None:
    cosine = Schedule(0.2, "cosine", total_steps=100)
    assert cosine(0) == 0.2
    assert cosine(50) == pytest.approx(0.1)
    assert cosine(25) == pytest.approx(0.1 * (1 + math.cos(math.pi / 4)))
    assert cosine(100) == pytest.approx(0.0, abs=1e-15)
    rates = [cosine(t) for t in range(101)]
    assert all(a >= b for a, b in itertools.pairwise(rates))


def test_warm_up_rises_linearly_then_hands_over_to_the_schedule() -> None:
    cosine = Schedule(1.0, "cosine", total_steps=1000)
    warm = Schedule(1.0, "cosine", total_steps=1000, warmup_steps=4)
    for t, fraction in enumerate([0.25, 0.5, 0.75, 1.0, 1.0, 1.0]):
        assert warm(t) == pytest.approx(fraction * cosine(t), rel=1e-12)
