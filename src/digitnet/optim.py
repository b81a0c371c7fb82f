"""Optimizers (SGD, momentum, Nesterov momentum, Adam) and learning-rate schedules.

An optimizer turns the gradients of one mini-batch into an in-place update of the parameters;
its state (velocities, moment estimates, step count) is held in named arrays so a checkpoint
can save and restore it exactly. A schedule gives the learning rate of every step. The update
rules are derived in docs/derivation.md (Part II); a comment "(eq. N)", N from 101 up, points
at the equation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
SCHEDULES = ("constant", "step", "cosine")
ADAM_EPSILON = 1e-8


class Optimizer:
    """Plain SGD, theta <- theta - eta * g (eq. 15); subclasses add state.

    state maps "<slot>/<parameter>" to an array shaped like the parameter, and steps counts
    the updates made so far; both are what a checkpoint must keep.
    """

    slots: tuple[str, ...] = ()

    def __init__(self, momentum: float = 0.9, beta2: float = 0.999) -> None:
        self.momentum = momentum
        self.beta2 = beta2
        self.state: dict[str, Array] = {}
        self.steps = 0

    def step(self, params: dict[str, Array], grads: dict[str, Array], learning_rate: float) -> None:
        """Update every parameter in place with its gradient grads["d" + name].

        grads is used up: each optimizer computes its step in the gradient's own array rather
        than allocate temporaries the size of W1 at every step.
        """
        self.steps += 1
        for name, theta in params.items():
            for slot in self.slots:
                if f"{slot}/{name}" not in self.state:
                    self.state[f"{slot}/{name}"] = np.zeros_like(theta)
            self.update(name, theta, grads[f"d{name}"], learning_rate)

    def update(self, name: str, theta: Array, g: Array, learning_rate: float) -> None:
        g *= learning_rate
        theta -= g  # (eq. 15)


class Momentum(Optimizer):
    """Heavy-ball momentum: v <- mu v + g, theta <- theta - eta v (eq. 113)."""

    slots = ("velocity",)

    def update(self, name: str, theta: Array, g: Array, learning_rate: float) -> None:
        v = self.state[f"velocity/{name}"]
        v *= self.momentum
        v += g  # (eq. 113)
        step = np.multiply(v, learning_rate, out=g)  # eta v, written over the used gradient
        theta -= step  # (eq. 113)


class Nesterov(Momentum):
    """Nesterov momentum, v <- mu v + g, theta <- theta - eta (g + mu v) (eq. 114).

    This is the look-ahead gradient of Nesterov's method rewritten so that the gradient is
    taken at the stored parameters, as in Sutskever et al. (2013).
    """

    def update(self, name: str, theta: Array, g: Array, learning_rate: float) -> None:
        v = self.state[f"velocity/{name}"]
        v *= self.momentum
        v += g  # (eq. 114)
        g += self.momentum * v  # g + mu v, in the gradient's own array
        g *= learning_rate
        theta -= g  # (eq. 114)


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with beta1 = momentum and bias-corrected moments (eq. 115-117)."""

    slots = ("m", "v")

    def update(self, name: str, theta: Array, g: Array, learning_rate: float) -> None:
        m, v = self.state[f"m/{name}"], self.state[f"v/{name}"]
        beta1, beta2 = self.momentum, self.beta2
        m *= beta1
        m += (1.0 - beta1) * g  # (eq. 115)
        squared = (1.0 - beta2) * g
        squared *= g
        v *= beta2
        v += squared  # (eq. 115)
        m_hat_scale = 1.0 / (1.0 - beta1**self.steps)  # (eq. 116)
        v_hat_scale = 1.0 / (1.0 - beta2**self.steps)  # (eq. 116)
        denominator = np.multiply(v, v_hat_scale, out=g)  # v_hat, in the used gradient (eq. 116)
        np.sqrt(denominator, out=denominator)
        denominator += ADAM_EPSILON
        step = np.multiply(m, learning_rate * m_hat_scale, out=squared)
        step /= denominator
        theta -= step  # (eq. 117)


def make_optimizer(name: str, momentum: float = 0.9, beta2: float = 0.999) -> Optimizer:
    """The optimizer called name, one of OPTIMIZERS."""
    classes: dict[str, type[Optimizer]] = {
        "sgd": Optimizer,
        "momentum": Momentum,
        "nesterov": Nesterov,
        "adam": Adam,
    }
    if name not in classes:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return classes[name](momentum, beta2)


@dataclass(frozen=True)
class Schedule:
    """The learning rate at each step t = 0, 1, ... of a run of total_steps steps.

    constant keeps base; step multiplies it by gamma every step_size steps (eq. 118); cosine
    decays it from base to 0 along half a cosine (eq. 119). A warm-up of warmup_steps scales
    the first steps by (t + 1) / warmup_steps (eq. 120).
    """

    base: float
    kind: str = "constant"
    total_steps: int = 1
    step_size: int = 1
    gamma: float = 0.1
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(
                f"unknown schedule {self.kind!r}; choose one of {', '.join(SCHEDULES)}"
            )

    def __call__(self, t: int) -> float:
        rate = self.base
        if self.kind == "step":
            rate *= self.gamma ** (t // max(self.step_size, 1))  # (eq. 118)
        elif self.kind == "cosine":
            progress = min(t / max(self.total_steps, 1), 1.0)
            rate *= 0.5 * (1.0 + math.cos(math.pi * progress))  # (eq. 119)
        if t < self.warmup_steps:
            rate *= (t + 1) / self.warmup_steps  # (eq. 120)
        return rate
