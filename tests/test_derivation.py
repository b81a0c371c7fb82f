"""docs/derivation.md and the code agree: equation by equation, and in their cross-references.

Each gradient equation of the seed is checked three ways at once, in float64: the formula as the
derivation writes it for one sample (column vectors), the value the code computes, and the
central finite difference of the loss (eq. 14), which needs no calculus at all. The derivatives
of the activations are the code's *_backward functions against central differences of the
activation. CHECKED_BY names the test of every gradient, update and schedule equation, here or
in another file, and the derivation's last table must name the same tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import digitnet.activations
import digitnet.network
import digitnet.optim
import digitnet.train
from digitnet.network import Network, cross_entropy, init_network, one_hot, sigmoid
from test_network import numerical_gradient

ROOT = Path(__file__).resolve().parent.parent
DERIVATION = ROOT / "docs" / "derivation.md"
SOURCES = ROOT / "src" / "digitnet"
GRADIENT_EQUATIONS = ("4", "8", "9", "10", "11", "12", "13", "102", "104")
EVERY_OPTION = "test_options.py::test_gradients_match_finite_differences_for_every_option"
# Each gradient, update and schedule equation, and the tests that check it.
CHECKED_BY: dict[str, list[str]] = {
    "4": ["test_derivation.py::check_sigmoid_derivative"],
    "8": ["test_derivation.py::check_output_error"],
    "9": ["test_derivation.py::check_input_error"],
    "10": ["test_derivation.py::check_weight_gradient"],
    "11": ["test_derivation.py::check_bias_gradient"],
    "12": ["test_derivation.py::check_hidden_error"],
    "13": ["test_derivation.py::check_batch_mean"],
    "15": ["test_optim.py::test_sgd_matches_a_hand_computed_step"],
    "102": ["test_derivation.py::check_tanh_derivative", EVERY_OPTION],
    "104": ["test_derivation.py::check_relu_derivative", EVERY_OPTION],
    "108": [EVERY_OPTION],
    "109": [EVERY_OPTION],
    "111": [EVERY_OPTION],
    "113": ["test_optim.py::test_momentum_matches_a_hand_computed_step"],
    "114": ["test_optim.py::test_nesterov_matches_a_hand_computed_step"],
    "115": ["test_optim.py::test_adam_matches_a_hand_computed_step"],
    "116": ["test_optim.py::test_adam_matches_a_hand_computed_step"],
    "117": [
        "test_optim.py::test_adam_matches_a_hand_computed_step",
        "test_optim.py::test_adam_first_step_is_the_learning_rate_for_any_gradient",
    ],
    "118": ["test_optim.py::test_constant_and_step_schedules"],
    "119": ["test_optim.py::test_cosine_schedule_falls_from_the_base_to_zero"],
    "120": ["test_optim.py::test_warm_up_rises_linearly_then_hands_over_to_the_schedule"],
}
# The forward pass, the losses, the initializations and the finite difference itself: values,
# not gradients or updates.
NOT_GRADIENTS = {"1a", "1b", "2", "3", "5", "6", "7", "14", "16"}
NOT_GRADIENTS |= {"101", "103", "105", "106", "107", "110", "112"}
RELATIVE_TOLERANCE = 1e-6
CHECKS_HEADING = "## Which test checks each gradient, update and schedule"
Vector = np.ndarray


def central_difference(
    f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """(f(x + h e_i) - f(x - h e_i)) / 2h for every entry i of x, in the shape of x (eq. 14)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + h
        plus = f(x)
        x[index] = original - h
        minus = f(x)
        x[index] = original
        grad[index] = (plus - minus) / (2 * h)
    return grad


def assert_close(*arrays: np.ndarray) -> None:
    """Every pair of arrays agrees to RELATIVE_TOLERANCE, entry by entry."""
    first = arrays[0]
    assert np.abs(first).max() > 1e-4, "a vanishing gradient would make the check meaningless"
    for other in arrays[1:]:
        assert other.shape == first.shape
        scale = np.maximum(np.abs(first) + np.abs(other), 1e-8)
        assert np.max(np.abs(first - other) / scale) < RELATIVE_TOLERANCE


def small_problem(n: int, seed: int = 0) -> tuple[Network, np.ndarray, np.ndarray]:
    """A float64 network 12 -> 7 -> 10 with non-zero biases, n inputs and one-hot targets."""
    rng = np.random.default_rng(seed)
    network = init_network((12, 7, 10), rng, dtype=np.float64)
    for value in network.params.values():
        value += rng.normal(scale=0.3, size=value.shape)
    return network, rng.random((n, 12)), one_hot(rng.integers(0, 10, size=n), np.float64)


def book_backprop(network: Network, x: Vector, y: Vector) -> dict[str, Vector]:
    """One sample through the derivation's per-sample equations, with column vectors."""
    W1, b1, W2, b2 = (network.params[name] for name in ("W1", "b1", "W2", "b2"))
    x, y = x.reshape(-1, 1), y.reshape(-1, 1)
    a1 = sigmoid(W1 @ x + b1.reshape(-1, 1))  # (eq. 1a, 2)
    a2 = sigmoid(W2 @ a1 + b2.reshape(-1, 1))
    delta2 = a2 - y  # (eq. 8)
    dA1 = W2.T @ delta2  # (eq. 9)
    delta1 = dA1 * a1 * (1 - a1)  # (eq. 12)
    return {
        "a1": a1,
        "delta2": delta2,
        "dA1": dA1,
        "delta1": delta1,
        "dW2": delta2 @ a1.T,  # (eq. 10)
        "dW1": delta1 @ x.T,
        "db2": delta2.ravel(),  # (eq. 11)
        "db1": delta1.ravel(),
    }


def code_gradients(network: Network, X: np.ndarray, Y: np.ndarray) -> dict[str, np.ndarray]:
    _, cache = network.forward(X)
    return network.backward(cache, Y)


def loss_of_logits(Z2: np.ndarray, Y: np.ndarray) -> float:
    return cross_entropy(Z2.reshape(Y.shape), Y)


def check_activation_derivative(
    forward: Callable[[np.ndarray], np.ndarray],
    backward: Callable[[np.ndarray, np.ndarray], np.ndarray],
    z: np.ndarray,
) -> None:
    """backward(dA, forward(z)) is dA times the central difference of forward at z."""
    dA = np.random.default_rng(0).normal(size=z.shape)
    numeric = np.array(
        [
            central_difference(lambda v: float(forward(v)[0]), z[i : i + 1].copy())[0]
            for i in range(z.size)
        ]
    )
    expected = dA * numeric
    assert_close(backward(dA.copy(), forward(z)), expected)  # backward may write over dA


def check_sigmoid_derivative() -> None:
    """(eq. 4): sigma'(z) = a (1 - a), as activations.sigmoid_backward applies it."""
    check_activation_derivative(
        sigmoid, digitnet.activations.sigmoid_backward, np.linspace(-6, 6, 25)
    )


def check_tanh_derivative() -> None:
    """(eq. 102): tanh'(z) = 1 - a^2, as activations.tanh_backward applies it."""
    activations = digitnet.activations
    check_activation_derivative(activations.tanh, activations.tanh_backward, np.linspace(-3, 3, 25))


def check_relu_derivative() -> None:
    """(eq. 104): relu'(z) = [a > 0], as activations.relu_backward applies it, away from z = 0."""
    activations = digitnet.activations
    z = np.linspace(-3, 3, 24)  # 24 points: none is 0, where relu has no derivative
    check_activation_derivative(activations.relu, activations.relu_backward, z)


def check_output_error() -> None:
    """(eq. 8): dC/dz2 = a2 - y; for one sample the code's db2 is exactly its dZ (eq. 11)."""
    network, X, Y = small_problem(1)
    book = book_backprop(network, X[0], Y[0])
    _, cache = network.forward(X)
    numeric = central_difference(lambda z: loss_of_logits(z, Y), cache.Z_out.copy())
    assert_close(book["delta2"].ravel(), code_gradients(network, X, Y)["db2"], numeric.ravel())


def check_input_error() -> None:
    """(eq. 9): dC/da1 = W2^T delta2; the code's dA1 is its db1 / (a1 (1 - a1)) (eq. 12)."""
    network, X, Y = small_problem(1)
    book = book_backprop(network, X[0], Y[0])
    W2, b2 = network.params["W2"], network.params["b2"]
    a1 = book["a1"].ravel()
    numeric = central_difference(lambda a: loss_of_logits(W2 @ a + b2, Y), a1.copy())
    code = code_gradients(network, X, Y)["db1"] / (a1 * (1 - a1))
    assert_close(book["dA1"].ravel(), code, numeric)


def check_weight_gradient() -> None:
    """(eq. 10): dC/dW = delta a_prev^T, for both layers, against the code's dW1 and dW2."""
    network, X, Y = small_problem(1)
    book = book_backprop(network, X[0], Y[0])
    code = code_gradients(network, X, Y)
    for name in ("W1", "W2"):
        numeric = numerical_gradient_of(network, X, Y, name)
        assert_close(book[f"d{name}"], code[f"d{name}"], numeric)


def check_bias_gradient() -> None:
    """(eq. 11): dC/db = delta, for both layers, against the code's db1 and db2."""
    network, X, Y = small_problem(1)
    book = book_backprop(network, X[0], Y[0])
    code = code_gradients(network, X, Y)
    for name in ("b1", "b2"):
        numeric = numerical_gradient_of(network, X, Y, name)
        assert_close(book[f"d{name}"], code[f"d{name}"], numeric)


def check_hidden_error() -> None:
    """(eq. 12): dC/dz1 = dC/da1 * a1 (1 - a1); for one sample the code's db1 is its dZ1."""
    network, X, Y = small_problem(1)
    book = book_backprop(network, X[0], Y[0])
    W2, b2 = network.params["W2"], network.params["b2"]
    numeric = central_difference(
        lambda z: loss_of_logits(W2 @ sigmoid(z) + b2, Y),
        (network.params["W1"] @ X[0] + network.params["b1"]),
    )
    assert_close(book["delta1"].ravel(), code_gradients(network, X, Y)["db1"], numeric)


def check_batch_mean() -> None:
    """(eq. 13): the batch gradient is the mean of the per-sample gradients."""
    network, X, Y = small_problem(6)
    code = code_gradients(network, X, Y)
    samples = [book_backprop(network, x, y) for x, y in zip(X, Y, strict=True)]
    for name in ("W1", "b1", "W2", "b2"):
        mean = np.mean([sample[f"d{name}"] for sample in samples], axis=0)
        numeric = numerical_gradient_of(network, X, Y, name)
        assert_close(mean, code[f"d{name}"], numeric)


def numerical_gradient_of(network: Network, X: np.ndarray, Y: np.ndarray, name: str) -> np.ndarray:
    """Central differences of the mean loss for every entry of one parameter."""
    shape = network.params[name].shape
    values = numerical_gradient(network, X, Y, name, list(np.ndindex(shape)))
    return values.reshape(shape)


CHECKS = {
    "4": check_sigmoid_derivative,
    "8": check_output_error,
    "9": check_input_error,
    "10": check_weight_gradient,
    "11": check_bias_gradient,
    "12": check_hidden_error,
    "13": check_batch_mean,
    "102": check_tanh_derivative,
    "104": check_relu_derivative,
}


@pytest.mark.parametrize("number", GRADIENT_EQUATIONS)
def test_gradient_equation_matches_the_code_and_finite_differences(number: str) -> None:
    CHECKS[number]()


def derivation_tags() -> list[str]:
    return re.findall(r"\\tag\{([^}]+)\}", DERIVATION.read_text(encoding="utf-8"))


def cited_in_sources() -> dict[str, set[str]]:
    """Each equation number cited as "(eq. N)" in the package, with the files citing it."""
    cited: dict[str, set[str]] = {}
    for path in SOURCES.rglob("*.py"):
        for group in re.findall(r"\(eq\. ([^)]*)\)", path.read_text(encoding="utf-8")):
            for number in re.findall(r"\d+[a-z]?", group):
                cited.setdefault(number, set()).add(path.name)
    return cited


def test_every_equation_has_one_number() -> None:
    tags = derivation_tags()
    assert len(tags) == len(set(tags)), f"duplicate equation numbers in {tags}"
    assert {"1a", "1b", *map(str, range(2, 17)), *map(str, range(101, 121))} <= set(tags)


def test_every_equation_the_code_cites_is_in_the_derivation() -> None:
    cited = cited_in_sources()
    missing = {number: files for number, files in cited.items() if number not in derivation_tags()}
    assert cited and not missing, f"cited in the code but not in docs/derivation.md: {missing}"


def test_every_gradient_equation_is_cited_by_the_code_and_checked_here() -> None:
    cited = cited_in_sources()
    assert set(GRADIENT_EQUATIONS) <= set(cited), f"uncited: {set(GRADIENT_EQUATIONS) - set(cited)}"
    assert set(CHECKS) == set(GRADIENT_EQUATIONS)
    here = {number for number, tests in CHECKED_BY.items() if tests[0].startswith("test_deriv")}
    assert here == set(GRADIENT_EQUATIONS)


def test_every_equation_is_a_value_or_a_checked_gradient_or_update() -> None:
    tags = set(derivation_tags())
    assert not NOT_GRADIENTS & set(CHECKED_BY)
    assert tags == NOT_GRADIENTS | set(CHECKED_BY), "a new equation: add it to one of the two"
    uncited = set(CHECKED_BY) - set(cited_in_sources())
    assert not uncited, f"checked but not cited by the code: {uncited}"


CHECKED_NUMBERS: list[str] = sorted(CHECKED_BY, key=int)


@pytest.mark.parametrize("number", CHECKED_NUMBERS)
def test_every_check_named_for_an_equation_exists(number: str) -> None:
    for test in CHECKED_BY[number]:
        file, function = test.split("::")
        source = (ROOT / "tests" / file).read_text(encoding="utf-8")
        assert re.search(rf"^def {function}\(", source, re.MULTILINE), f"({number}): no {test}"


def checks_in_the_derivation() -> dict[str, list[str]]:
    """The tests the derivation's last table names for each equation, "(N)" rows in order."""
    table = DERIVATION.read_text(encoding="utf-8").split(CHECKS_HEADING, 1)[1]
    named: dict[str, list[str]] = {}
    for row in re.findall(r"^\| (\(.*)$", table, re.MULTILINE):
        cells = [cell.strip() for cell in row.split("|")]
        for number in re.findall(r"\((\d+[a-z]?)\)", cells[0]):
            named.setdefault(number, []).extend(re.findall(r"`([\w.]+::\w+)`", cells[-2]))
    return named


def test_the_derivation_names_the_test_of_each_gradient_and_update() -> None:
    named = checks_in_the_derivation()
    assert named == CHECKED_BY


NAMES = {
    "Network": Network,
    "network": digitnet.network,
    "activations": digitnet.activations,
    "optim": digitnet.optim,
    "train": digitnet.train,
    "numerical_gradient": numerical_gradient,
    "central_difference": central_difference,
}


def resolve(dotted: str) -> object:
    """The object a name such as `Network.backward` or `optim.Optimizer` stands for."""
    head, *rest = dotted.split(".")
    value: object = NAMES[head]
    for part in rest:
        value = getattr(value, part)
    return value


def test_every_equation_names_a_function_that_exists() -> None:
    text = DERIVATION.read_text(encoding="utf-8")
    blocks = re.split(r"\\tag\{([^}]+)\}", text)
    for number, after in zip(blocks[1::2], blocks[2::2], strict=True):
        prose = after.split("$$", 2)[1]
        named = re.search(r"[Cc]omputed (?:by|in)\s+`([\w.]+)`", prose)
        assert named, f"equation ({number}) does not say which function computes it"
        assert callable(resolve(named.group(1))), f"({number}) names {named.group(1)}"
