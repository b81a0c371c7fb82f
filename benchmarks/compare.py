"""Train the seed network with digitnet, PyTorch and scikit-learn, side by side.

Every library trains the same network (784 -> 128 sigmoid -> 10 sigmoid, cross-entropy summed
over the ten outputs and averaged over the batch, plain SGD with the same step and batch size,
float32) on all 60,000 training images, for the same number of epochs. The runs alternate in
one process, the order rotating from repeat to repeat, so that a busy machine slows all of them
alike. Printed per batch size: wall-clock seconds per epoch (median, min, max over every timed
epoch) and the median CPU seconds, the ratios digitnet / other of the medians, and test accuracy
after the last epoch (median over repeats).

The comparison libraries are optional (`pip install 'digitnet[bench]'`); a missing one is
skipped with the reason. Usage: python benchmarks/compare.py [--quick] [--epochs E] ...
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from digitnet.data import Dataset, load_dataset, scale_pixels
from digitnet.network import init_network, one_hot
from digitnet.state import new_training_state
from digitnet.threads import blas_description, choose_threads
from digitnet.train import TrainConfig, evaluate, make_schedule, train_epoch

LEARNING_RATE = TrainConfig().learning_rate
SIZES = (784, 128, 10)
DIGITS = np.arange(10)


@dataclass
class Data:
    """The training and test sets, scaled once and shared by every library."""

    dataset: Dataset
    X_train: NDArray[np.float32]
    Y_train: NDArray[np.float32]
    X_test: NDArray[np.float32]
    test_labels: NDArray[np.uint8]


@dataclass
class Run:
    """One training run: wall and CPU seconds of each epoch, and test accuracy at the end."""

    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    accuracy: float = 0.0

    def time_epoch(self, epoch: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        epoch()
        self.seconds.append(time.perf_counter() - wall)
        self.cpu_seconds.append(time.process_time() - cpu)


@dataclass
class Results:
    """Every run of one library at one batch size."""

    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)

    def add(self, run: Run) -> None:
        self.seconds.extend(run.seconds)
        self.cpu_seconds.extend(run.cpu_seconds)
        self.accuracies.append(run.accuracy)


Trainer = Callable[[Data, int, int, int], Run]


def load_data() -> Data:
    dataset = load_dataset()
    X_train = scale_pixels(dataset.train_images).astype(np.float32)
    return Data(
        dataset=dataset,
        X_train=X_train,
        Y_train=one_hot(dataset.train_labels, np.float32),
        X_test=scale_pixels(dataset.test_images).astype(np.float32),
        test_labels=dataset.test_labels,
    )


def initial_params(seed: int) -> dict[str, NDArray[np.floating]]:
    """digitnet's initial weights, shared with PyTorch so both start from the same point."""
    return init_network(SIZES, np.random.default_rng(seed)).params


def train_digitnet(data: Data, batch_size: int, epochs: int, seed: int) -> Run:
    """Training as fit() does it, on the images scaled once for every library.

    The rate is held constant, as the other libraries' plain SGD holds it.
    """
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=LEARNING_RATE,
        schedule="constant",
        hidden=SIZES[1:-1],
        validation_size=0,
        seed=seed,
    )
    state = new_training_state(config)
    schedule = make_schedule(config, -(-data.X_train.shape[0] // batch_size))
    labels = data.dataset.train_labels
    run = Run()
    for _ in range(epochs):
        run.time_epoch(lambda: train_epoch(state, data.X_train, labels, schedule))
    run.accuracy = evaluate(state.network, data.X_test, data.test_labels).accuracy
    return run


def make_torch_trainer(requested_threads: int | None) -> Trainer:
    """A trainer written the way a PyTorch user would write it: nn.Linear, optim.SGD."""
    import torch
    from torch import nn

    def build_model(seed: int) -> nn.Module:
        hidden, output = nn.Linear(SIZES[0], SIZES[1]), nn.Linear(*SIZES[1:])
        params = initial_params(seed)
        with torch.no_grad():
            for layer, linear in ((1, hidden), (2, output)):
                linear.weight.copy_(torch.from_numpy(params[f"W{layer}"]))
                linear.bias.copy_(torch.from_numpy(params[f"b{layer}"]))
        return nn.Sequential(hidden, nn.Sigmoid(), output)

    def train(data: Data, batch_size: int, epochs: int, seed: int) -> Run:
        torch.set_num_threads(choose_threads(batch_size, requested_threads))
        model = build_model(seed)
        optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
        loss_function = nn.BCEWithLogitsLoss(reduction="sum")
        X, Y = torch.from_numpy(data.X_train), torch.from_numpy(data.Y_train)
        generator = torch.Generator().manual_seed(seed)

        def epoch() -> None:
            order = torch.randperm(X.shape[0], generator=generator)
            for start in range(0, X.shape[0], batch_size):
                index = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = loss_function(model(X[index]), Y[index]) / index.shape[0]
                loss.backward()
                optimizer.step()

        run = Run()
        for _ in range(epochs):
            run.time_epoch(epoch)
        with torch.no_grad():
            predicted = model(torch.from_numpy(data.X_test)).argmax(dim=1).numpy()
        run.accuracy = float(np.mean(predicted == data.test_labels))
        return run

    return train


def make_sklearn_trainer(requested_threads: int | None) -> Trainer:
    """MLPClassifier with one-hot targets, so that its outputs are sigmoids as in digitnet.

    One-hot targets make it a multi-label problem: logistic outputs with the binary
    cross-entropy summed over the outputs and averaged over the batch, the seed network's loss.
    Each partial_fit call is one epoch. Its initial weights are its own (Glorot uniform).
    """
    from sklearn.neural_network import MLPClassifier

    def train(data: Data, batch_size: int, epochs: int, seed: int) -> Run:
        model = MLPClassifier(
            hidden_layer_sizes=(SIZES[1],),
            activation="logistic",
            solver="sgd",
            learning_rate="constant",
            learning_rate_init=LEARNING_RATE,
            batch_size=batch_size,
            momentum=0.0,
            nesterovs_momentum=False,
            alpha=0.0,
            early_stopping=False,
            shuffle=True,
            random_state=seed,
        )
        run = Run()
        for _ in range(epochs):
            run.time_epoch(lambda: model.partial_fit(data.X_train, data.Y_train, classes=DIGITS))
        predicted = model.predict_proba(data.X_test).argmax(axis=1)
        run.accuracy = float(np.mean(predicted == data.test_labels))
        return run

    return train


def available_trainers(threads: int | None) -> tuple[dict[str, Trainer], list[str]]:
    """The trainers that can run here, and one line per library that was skipped and why."""
    trainers: dict[str, Trainer] = {"digitnet": train_digitnet}
    skipped = []
    makers: dict[str, Callable[[int | None], Trainer]] = {
        "pytorch": make_torch_trainer,
        "sklearn": make_sklearn_trainer,
    }
    for name, make in makers.items():
        try:
            trainers[name] = make(threads)
        except ImportError as exc:
            hint = "install it with: pip install 'digitnet[bench]'"
            skipped.append(f"skipped {name}: {exc} ({hint})")
        except Exception as exc:  # a broken install fails on import in its own ways (OSError, ...)
            skipped.append(f"skipped {name}: importing it failed: {type(exc).__name__}: {exc}")
    return trainers, skipped


def warm_up(trainers: dict[str, Trainer], data: Data) -> None:
    """One short untimed run of each library, so first-call costs stay out of the figures."""
    small = Data(
        dataset=Dataset(
            data.dataset.train_images[:2000],
            data.dataset.train_labels[:2000],
            data.dataset.test_images[:500],
            data.dataset.test_labels[:500],
        ),
        X_train=data.X_train[:2000],
        Y_train=data.Y_train[:2000],
        X_test=data.X_test[:500],
        test_labels=data.test_labels[:500],
    )
    for train in trainers.values():
        train(small, 32, 1, 0)


def compare_at(
    trainers: dict[str, Trainer], data: Data, batch_size: int, epochs: int, repeats: int
) -> dict[str, Results]:
    """Run every library repeats times, alternating, rotating who goes first."""
    names = list(trainers)
    results = {name: Results() for name in names}
    for repeat in range(repeats):
        turn = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in turn:
            results[name].add(trainers[name](data, batch_size, epochs, repeat))
    return results


def format_table(batch_size: int, results: dict[str, Results]) -> str:
    """Wall seconds per epoch (median, min, max), CPU seconds, ratios and test accuracy."""
    base = statistics.median(results["digitnet"].seconds)
    base_cpu = statistics.median(results["digitnet"].cpu_seconds)
    lines = [
        f"{'batch':>5} {'library':<9} {'s/epoch':>8} {'min':>6} {'max':>6} {'digitnet/lib':>12} "
        f"{'CPU s':>6} {'CPU ratio':>9} {'test acc':>8}",
    ]
    for name, result in results.items():
        median, cpu = statistics.median(result.seconds), statistics.median(result.cpu_seconds)
        accuracy = statistics.median(result.accuracies)
        lines.append(
            f"{batch_size:>5} {name:<9} {median:>8.3f} {min(result.seconds):>6.3f} "
            f"{max(result.seconds):>6.3f} {base / median:>12.2f} {cpu:>6.3f} "
            f"{base_cpu / cpu:>9.2f} {100 * accuracy:>7.2f}%"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="1 epoch, 2 repeats, batch 32 (overrides the rest)"
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (default: 3)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per library (default: 3)")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[10, 32, 128], help="(default: 10 32 128)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for every library (default: digitnet's choice for the batch size)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats, args.batch_sizes = 1, 2, [32]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = load_data()
    print(f"BLAS: {blas_description()}; learning rate {LEARNING_RATE}; {args.epochs} epochs")
    print(f"{args.repeats} runs per library, alternating; every epoch of every run is timed")
    trainers, skipped = available_trainers(args.threads)
    for line in skipped:
        print(line)
    for batch_size in args.batch_sizes:
        threads = choose_threads(batch_size, args.threads)
        with threadpool_limits(limits=threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warm_up(trainers, data)
            results = compare_at(trainers, data, batch_size, args.epochs, args.repeats)
        print(f"\n{threads} BLAS/intra-op thread(s) for every library")
        print(format_table(batch_size, results))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
