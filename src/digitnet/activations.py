"""Hidden-layer activations with their derivatives, and the softmax output with its loss.

Each derivative is written in terms of the activation's output A, not its input Z, so the
forward pass only has to keep A; the *_backward functions multiply an incoming gradient dA by
it, giving dZ, and may write dZ over dA, which the caller no longer needs. docs/derivation.md
(Part II) derives every line; a comment "(eq. N)", N from 101 up, points at the equation it
computes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]

HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu")
OUTPUTS = ("sigmoid", "softmax")


def sigmoid_backward(dA: Array, A: Array) -> Array:
    """dZ = dA * sigma'(z), with sigma'(z) = a (1 - a) from the sigmoid's output a (eq. 4, 12)."""
    dZ = np.multiply(dA, A)  # (N, width)
    dZ *= 1.0 - A
    return dZ


def tanh(Z: Array) -> Array:
    """The hyperbolic tangent (eq. 101); NumPy's tanh saturates at +-1 and never overflows."""
    return np.tanh(Z)


def tanh_backward(dA: Array, A: Array) -> Array:
    """dZ = dA * tanh'(z), with tanh'(z) = 1 - a^2 from tanh's output a (eq. 102)."""
    dZ = np.multiply(A, A)  # (N, width)
    np.subtract(1.0, dZ, out=dZ)
    dZ *= dA
    return dZ


def relu(Z: Array) -> Array:
    """max(z, 0) (eq. 103)."""
    return np.maximum(Z, 0.0)


def relu_backward(dA: Array, A: Array) -> Array:
    """dZ = dA where the unit is active (a > 0), else 0 (eq. 104); at z = 0 we take 0."""
    return np.multiply(dA, A > 0, out=dA)


def log_softmax(Z: Array) -> Array:
    """log softmax(z) row by row, z - max(z) - log sum exp(z - max(z)) (eq. 106).

    NOTE: subtracting the row maximum leaves the result unchanged and keeps every exponent at
    most 0, so exp never overflows and the log never sees 0.
    """
    shifted: Array = Z - Z.max(axis=1, keepdims=True)  # (N, 10)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N, 10)
    return shifted


def softmax(Z: Array) -> Array:
    """Row-wise softmax e^z_k / sum_j e^z_j, each row summing to 1 (eq. 105)."""
    return np.exp(log_softmax(Z))


def softmax_cross_entropy(Z_out: Array, Y: Array) -> float:
    """Mean of -sum_k y_k log softmax(z)_k over the batch, from the logits (eq. 107)."""
    per_sample = -(Y * log_softmax(Z_out)).sum(axis=1)  # (N,)
    return float(per_sample.mean())
