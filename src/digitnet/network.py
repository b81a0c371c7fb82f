"""The feed-forward network: parameters, forward pass, loss and backpropagation.

The seed model is 784 -> 128 (sigmoid) -> 10 (sigmoid), trained with cross-entropy. The code
follows docs/derivation.md; a comment "(eq. N)" points at the equation a line computes. Weights
are stored (out, in), as in z1 = W1 x + b1, while a batch is row-major, one sample per row, so
the batched form of that equation is Z1 = X @ W1.T + b1.

Beyond the seed, the hidden layers may be any number and width with sigmoid, tanh or ReLU
units, the output may be a softmax, hidden units may be dropped out, and the loss may carry an
L2 penalty on the weights; those options follow docs/derivation.md (Part II) (eq. 101 onwards).

Scope: fully connected layers only. Everything here is plain NumPy; nothing is differentiated
automatically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from digitnet.activations import (
    HIDDEN_ACTIVATIONS,
    OUTPUTS,
    relu,
    relu_backward,
    sigmoid_backward,
    softmax,
    softmax_cross_entropy,
    tanh,
    tanh_backward,
)

Array = NDArray[np.floating]

INPUT_SIZE = 784
NUM_CLASSES = 10


def sigmoid(z: Array) -> Array:
    """The logistic function 1 / (1 + e^-z), computed without overflow (eq. 3).

    NOTE: 1 / (1 + exp(-z)) overflows in exp for z below about -88 in float32. The identity
    sigmoid(z) = (1 + tanh(z / 2)) / 2 is exact and tanh saturates instead of overflowing.
    """
    out = np.multiply(z, 0.5)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def softplus(z: Array) -> Array:
    """log(1 + e^z) without overflow (eq. 7).

    NOTE: np.logaddexp(0, z) = log(e^0 + e^z) evaluates max(z, 0) + log1p(e^-|z|) in one call,
    a third of the time of those four steps on a batch's (N, 10) logits.
    """
    return np.logaddexp(0.0, z)


def cross_entropy(Z2: Array, Y: Array) -> float:
    """Mean cross-entropy of sigmoid outputs, computed from the logits Z2 (eq. 5 to 7).

    NOTE: -[y log a + (1 - y) log(1 - a)] with a = sigmoid(z) equals softplus(z) - y z. Using the
    logits avoids log(0) when an output saturates at exactly 0 or 1 in floating point.
    """
    total = float(softplus(Z2).sum()) - float(np.vdot(Y, Z2))  # sum over samples and outputs
    return total / float(Z2.shape[0])


@dataclass
class Cache:
    """What the forward pass keeps for the backward pass: the input and each layer's output.

    With dropout, activations holds the hidden outputs after the mask (what the next layer
    sees), hidden holds them before it (what the activation's derivative needs), and masks
    holds the masks; without dropout, hidden is activations[1:-1] and masks is empty.
    """

    activations: list[Array]  # [X (N, 784), A1 (N, 128), A2 (N, 10)]
    Z_out: Array  # logits of the output layer, (N, 10)
    hidden: list[Array] = field(default_factory=list)  # [A1, ..., A_{L-1}] before dropout
    masks: list[Array] = field(default_factory=list)  # [M1, ..., M_{L-1}], each (N, width)


Function = Callable[[Array], Array]

# Each hidden activation with the function that turns dA into dZ; each output with its loss.
HIDDEN: dict[str, tuple[Function, Callable[[Array, Array], Array]]] = {
    "sigmoid": (sigmoid, sigmoid_backward),
    "tanh": (tanh, tanh_backward),
    "relu": (relu, relu_backward),
}
OUTPUT: dict[str, tuple[Function, Callable[[Array, Array], float]]] = {
    "sigmoid": (sigmoid, cross_entropy),
    "softmax": (softmax, softmax_cross_entropy),
}


class Network:
    """A stack of fully connected layers; params holds W1, b1, W2, b2, ...

    Parameters
    ----------
    sizes
        Layer widths from input to output, e.g. (784, 128, 10) for the seed model.
    params
        W{l} of shape (sizes[l], sizes[l-1]) and b{l} of shape (sizes[l],), for l = 1..L.
    activation
        The hidden units: "sigmoid" (the seed), "tanh" or "relu".
    output
        The output units and their loss: "sigmoid" with cross-entropy (the seed), or "softmax"
        with the multi-class cross-entropy.
    """

    def __init__(
        self,
        sizes: tuple[int, ...],
        params: dict[str, Array],
        activation: str = "sigmoid",
        output: str = "sigmoid",
    ) -> None:
        self.sizes = tuple(sizes)
        self.params = params
        check_params(self.sizes, params)
        check_choice("activation", activation, HIDDEN_ACTIVATIONS)
        check_choice("output", output, OUTPUTS)
        self.activation = activation
        self.output = output
        self.hidden_function, self.hidden_backward = HIDDEN[activation]
        self.output_function, self.output_loss = OUTPUT[output]

    def __repr__(self) -> str:
        return f"Network({self.sizes}, activation={self.activation!r}, output={self.output!r})"

    def architecture(self) -> dict[str, str]:
        """What, besides the layer sizes, a model file must record to rebuild this network."""
        return {"activation": self.activation, "output": self.output}

    @property
    def num_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def dtype(self) -> np.dtype[np.floating]:
        return self.params["W1"].dtype

    def forward(self, X: Array, masks: list[Array] | None = None) -> tuple[Array, Cache]:
        """Run a batch X (N, 784) through the network; return A_L (N, 10) and the cache.

        masks, one (N, width) array per hidden layer as made by dropout_masks, multiplies each
        hidden layer's output (dropout); None runs the whole network, as for prediction.
        """
        activations, hidden = [X], []
        A = X
        Z = X
        for layer in range(1, self.num_layers + 1):
            W, b = self.params[f"W{layer}"], self.params[f"b{layer}"]
            Z = A @ W.T  # (N, out)  (eq. 1b)
            Z += b
            if layer == self.num_layers:
                A = self.output_function(Z)  # (N, 10)  (eq. 2; 105 for softmax)
            else:
                A = self.hidden_function(Z)  # (N, out)  (eq. 2; 101, 103)
                hidden.append(A)
                if masks:
                    A = A * masks[layer - 1]  # (N, out)  (eq. 108)
            activations.append(A)
        return A, Cache(activations, Z_out=Z, hidden=hidden, masks=list(masks or []))

    def backward(self, cache: Cache, Y: Array, weight_decay: float = 0.0) -> dict[str, Array]:
        """Gradients of the mean loss with respect to every parameter, named dW1, db1, ...

        Y holds one-hot targets, (N, 10). The output error is A_L - Y because the sigmoid's
        derivative cancels against the cross-entropy's (eq. 8); the softmax's Jacobian cancels
        the same way against its cross-entropy (eq. 109). weight_decay is lambda of the L2
        penalty (lambda / 2) sum ||W||^2 added to the loss (eq. 110).
        """
        grads: dict[str, Array] = {}
        n = Y.shape[0]
        A_out = cache.activations[-1]
        dZ: Array = A_out - Y  # (N, 10)  (eq. 8; 109)
        dZ /= n  # the mean over the batch  (eq. 13)
        for layer in range(self.num_layers, 0, -1):
            A_prev = cache.activations[layer - 1]  # (N, in)
            W = self.params[f"W{layer}"]  # (out, in)
            # NOTE: dZ.T @ A_prev, computed as the transpose of A_prev.T @ dZ so that dW is
            # column-major like W (see init_network) and the update reads both in one order.
            grads[f"dW{layer}"] = (A_prev.T @ dZ).T  # (out, in)  (eq. 10)
            if weight_decay:
                grads[f"dW{layer}"] += weight_decay * W  # (eq. 111)
            grads[f"db{layer}"] = dZ.sum(axis=0)  # (out,)  (eq. 11)
            if layer > 1:
                dA_prev = dZ @ W  # (N, in)  (eq. 9)
                if cache.masks:
                    dA_prev *= cache.masks[layer - 2]  # (N, in)  (eq. 108)
                dZ = self.hidden_backward(dA_prev, cache.hidden[layer - 2])  # (N, in)  (eq. 4, 12)
        return grads

    def loss(
        self, X: Array, Y: Array, masks: list[Array] | None = None, weight_decay: float = 0.0
    ) -> float:
        """Mean loss of the network on a batch with one-hot targets Y, plus the L2 penalty."""
        _, cache = self.forward(X, masks)
        return self.output_loss(cache.Z_out, Y) + self.penalty(weight_decay)

    def penalty(self, weight_decay: float) -> float:
        """(lambda / 2) times the sum of every squared weight; biases are not penalized."""
        if not weight_decay:
            return 0.0
        weights = (self.params[f"W{layer}"] for layer in range(1, self.num_layers + 1))
        return 0.5 * weight_decay * sum(float(np.sum(W * W)) for W in weights)  # (eq. 110)

    def predict_proba(self, images: Array) -> Array:
        """Output activations (N, 10) for one image or a batch, in any accepted shape."""
        X = as_batch(images).astype(self.dtype, copy=False)
        A_out, _ = self.forward(X)
        return A_out

    def predict(self, images: Array) -> NDArray[np.int64]:
        """The most active output unit for each image: the predicted digit, (N,)."""
        labels: NDArray[np.int64] = np.argmax(self.predict_proba(images), axis=1)
        return labels

    def astype(self, dtype: type[np.floating] | np.dtype[np.floating]) -> Network:
        """A copy of the network with every parameter cast to dtype."""
        params = {name: value.astype(dtype) for name, value in self.params.items()}
        return Network(self.sizes, params, self.activation, self.output)


def init_network(
    sizes: tuple[int, ...],
    rng: np.random.Generator,
    dtype: type[np.floating] = np.float32,
    activation: str = "sigmoid",
    output: str = "sigmoid",
) -> Network:
    """A network with weights drawn from N(0, 1 / fan_in) and zero biases (eq. 16).

    With this scale each unit's pre-activation z starts with a variance of at most 1 for inputs
    in [0, 1], about 0.11 (standard deviation 0.35) on MNIST, so the sigmoids start in their
    steep middle part instead of saturating; with plain N(0, 1) weights the 784 inputs push z
    to a standard deviation of about 9 and training starts slowly.
    Layers of ReLU units draw from N(0, 2 / fan_in) instead (He initialization, eq. 112): a
    ReLU zeroes half of its inputs, and the factor 2 keeps the variance from halving per layer.
    """
    params: dict[str, Array] = {}
    for layer in range(1, len(sizes)):
        fan_in, fan_out = sizes[layer - 1], sizes[layer]
        gain = 2.0 if activation == "relu" and layer < len(sizes) - 1 else 1.0  # (eq. 16, 112)
        W = rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in / gain)  # (eq. 16, 112)
        # NOTE: stored column-major, so that W.T in Z = A @ W.T is row-major: BLAS multiplies
        # that layout faster at small batches (10% off an epoch at batch 32, docs/benchmarks.md).
        params[f"W{layer}"] = W.astype(dtype, order="F")
        params[f"b{layer}"] = np.zeros(fan_out, dtype=dtype)
    return Network(sizes, params, activation, output)


def dropout_masks(
    network: Network, n: int, rate: float, rng: np.random.Generator
) -> list[Array] | None:
    """Inverted-dropout masks for a batch of n: 0 with probability rate, else 1 / (1 - rate).

    Scaling the kept units by 1 / (1 - rate) keeps each unit's expected output unchanged, so
    the network runs unmasked at prediction time (eq. 108). A rate of 0 gives None: no dropout.
    """
    if rate == 0.0:
        return None
    keep = 1.0 - rate
    masks: list[Array] = []
    for width in network.sizes[1:-1]:
        kept = rng.random((n, width), dtype=np.float32) < keep  # (N, width)
        masks.append(np.divide(kept, keep, dtype=network.dtype))  # (N, width)
    return masks


def parameter_shapes(sizes: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """The shape every parameter must have for the given layer widths."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(1, len(sizes)):
        shapes[f"W{layer}"] = (sizes[layer], sizes[layer - 1])
        shapes[f"b{layer}"] = (sizes[layer],)
    return shapes


def check_params(sizes: tuple[int, ...], params: dict[str, Array]) -> None:
    """Raise ValueError unless params has exactly the arrays and shapes sizes call for."""
    if len(sizes) < 2 or any(size < 1 for size in sizes):
        raise ValueError(f"layer sizes must be at least two positive widths, got {sizes}")
    expected = parameter_shapes(sizes)
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise ValueError(f"parameters for layers {sizes}: missing {missing}, extra {extra}")
    for name, shape in expected.items():
        if params[name].shape != shape:
            raise ValueError(f"parameter {name} has shape {params[name].shape}, expected {shape}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def as_batch(images: Array) -> Array:
    """Reshape one image or a batch of images into rows of 784 pixels.

    Accepts (784,), (28, 28), (N, 784) and (N, 28, 28); anything else is a ValueError.
    """
    array = np.asarray(images)
    if array.shape in ((INPUT_SIZE,), (28, 28)):
        return array.reshape(1, INPUT_SIZE)
    if array.ndim == 2 and array.shape[1] == INPUT_SIZE:
        return array
    if array.ndim == 3 and array.shape[1:] == (28, 28):
        return array.reshape(array.shape[0], INPUT_SIZE)
    raise ValueError(
        f"expected an image of shape (784,) or (28, 28), or a batch (N, 784) or (N, 28, 28), "
        f"got shape {array.shape}"
    )


def one_hot(labels: NDArray[np.integer], dtype: type[np.floating] = np.float32) -> Array:
    """Targets y with a 1 at each label's position and 0 elsewhere, (N, 10)."""
    Y = np.zeros((labels.shape[0], NUM_CLASSES), dtype=dtype)
    Y[np.arange(labels.shape[0]), labels] = 1.0
    return Y
