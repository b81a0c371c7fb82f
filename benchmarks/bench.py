"""Speed and memory of digitnet on this machine.

Measures, in this order: seconds per epoch and samples per second at batch sizes 1, 32, 128 and
256; one against two BLAS threads at each batch size; the float32 matrix-multiply throughput
and how far an epoch is from the time its arithmetic alone needs; the time the default
training takes to reach 98% test accuracy; the time to classify the 10,000 test images; and
the peak memory of a default `digitnet train` run. Warm-up runs are never timed.

Usage: python benchmarks/bench.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from digitnet.data import Dataset, load_dataset, scale_pixels, split_validation
from digitnet.network import Network
from digitnet.state import new_training_state
from digitnet.threads import blas_description, blas_threads, choose_threads
from digitnet.train import TrainConfig, evaluate, make_schedule, train_epoch

BATCH_SIZES = (1, 32, 128, 256)
THREAD_BATCH_SIZES = (*BATCH_SIZES, 1024)
WEIGHTS = 784 * 128 + 128 * 10  # 101,632 in the seed network (biases add little arithmetic)
FLOPS_PER_SAMPLE = 6 * WEIGHTS  # forward 2 per weight, backward 4: the usual estimate
TARGET_ACCURACY = 0.98

FloatArray = NDArray[np.float32]


@dataclass
class Timing:
    """Wall-clock and CPU seconds of some work.

    On a busy machine the wall clock also counts the time other processes held the core; with
    one BLAS thread the CPU seconds leave that out, so both are reported.
    """

    wall: float
    cpu: float


def timed(work: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def median_timing(work: Callable[[], object], repeats: int) -> Timing:
    """Median wall and CPU time of repeats calls, after one untimed warm-up call."""
    work()
    timings = [timed(work) for _ in range(repeats)]
    return Timing(
        statistics.median(t.wall for t in timings), statistics.median(t.cpu for t in timings)
    )


# ---------------------------------------------------------------------------------------------
# Machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_machine() -> list[str]:
    names = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    openblas_env = {name: os.environ.get(name) for name in names}
    return [
        f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; load average "
        + ", ".join(f"{load:.2f}" for load in os.getloadavg()),
        f"Python {platform.python_version()}, NumPy {np.__version__}, BLAS {blas_description()}",
        f"OpenBLAS variables: {openblas_env}",
    ]


# ---------------------------------------------------------------------------------------------
# Epoch speed per batch size


def time_training(
    X: FloatArray, labels: NDArray[np.uint8], batch_size: int, samples: int, repeats: int
) -> Timing:
    """Median time to train on `samples` images at this batch size (warm-up untimed)."""
    config = TrainConfig(batch_size=batch_size, schedule="constant")
    state = new_training_state(config)
    schedule = make_schedule(config, -(-samples // batch_size))
    subset = slice(0, samples)

    def warm_up() -> None:
        train_epoch(state, X[:256], labels[:256], schedule)

    def one_pass() -> None:
        train_epoch(state, X[subset], labels[subset], schedule)

    warm_up()
    return median_timing(one_pass, repeats) if repeats > 1 else timed(one_pass)


def epoch_speeds(
    X: FloatArray, labels: NDArray[np.uint8], quick: bool, threads: int | None
) -> dict[int, Timing]:
    """Seconds per epoch of all the training images, for every batch size."""
    n = X.shape[0]
    print(f"\n## Epoch speed (all {n:,} training images per epoch, median of repeats)")
    print(f"{'batch':>6} {'threads':>7} {'s/epoch':>8} {'CPU s':>6} {'samples/s':>10}  note")
    epochs = {}
    for batch_size in BATCH_SIZES:
        samples = n if batch_size > 1 else n // 10
        samples = samples // 5 if quick else samples
        count = choose_threads(batch_size, threads)
        with blas_threads(count):
            measured = time_training(X, labels, batch_size, samples, 1 if quick else 3)
        epoch = epochs[batch_size] = Timing(measured.wall * n / samples, measured.cpu * n / samples)
        note = "" if samples == n else f"timed on {samples:,} images, scaled to the epoch"
        print(
            f"{batch_size:>6} {count:>7} {epoch.wall:>8.3f} {epoch.cpu:>6.3f} "
            f"{n / epoch.wall:>10,.0f}  {note}"
        )
    return epochs


def thread_comparison(X: FloatArray, labels: NDArray[np.uint8], quick: bool) -> None:
    """One against two BLAS threads, alternating, on the same images; ratios per round."""
    rounds = 3 if quick else 7
    print(f"\n## One against two BLAS threads (wall clock, alternating, {rounds} rounds)")
    print(f"{'batch':>6} {'1 thread s/epoch':>17} {'2 threads s/epoch':>18} {'2 / 1':>6}  chosen")
    for batch_size in THREAD_BATCH_SIZES:
        samples = 1000 if batch_size == 1 else 8192
        ratios: list[float] = []
        times: dict[int, list[float]] = {1: [], 2: []}
        for round_number in range(rounds):
            order = (1, 2) if round_number % 2 == 0 else (2, 1)
            for count in order:
                with blas_threads(count):
                    times[count].append(time_training(X, labels, batch_size, samples, 1).wall)
            ratios.append(times[2][-1] / times[1][-1])
        one, two = (statistics.median(times[c]) * X.shape[0] / samples for c in (1, 2))
        print(
            f"{batch_size:>6} {one:>17.3f} {two:>18.3f} {statistics.median(ratios):>6.2f}  "
            f"{choose_threads(batch_size)}"
        )


# ---------------------------------------------------------------------------------------------
# The arithmetic limit


def matmul_rate(shape_a: tuple[int, int], shape_b: tuple[int, int], repeats: int) -> float:
    """float32 GFLOP/s of A @ B at these shapes (best of repeats: the least disturbed run)."""
    rng = np.random.default_rng(0)
    A = rng.random(shape_a, dtype=np.float32)
    B = rng.random(shape_b, dtype=np.float32)
    calls = max(1, int(2e8 / (shape_a[0] * shape_a[1] * shape_b[1])))

    def work() -> None:
        for _ in range(calls):
            A @ B

    work()
    best = min(timed(work).wall for _ in range(repeats)) / calls
    return 2 * shape_a[0] * shape_a[1] * shape_b[1] / best / 1e9


def training_shapes(batch_size: int) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
    """The two large products of a training step: Z1 = X @ W1.T and dW1 = dZ1.T @ X."""
    return {
        "forward": ((batch_size, 784), (784, 128)),
        "dW1": ((128, batch_size), (batch_size, 784)),
    }


def arithmetic_limit(
    epochs: dict[int, Timing], samples: int, quick: bool, threads: int | None
) -> None:
    """Each epoch against the time its arithmetic takes at the square-matrix rate.

    The rate is measured with as many threads as the epoch used.
    """
    repeats = 3 if quick else 7
    counts = {batch_size: choose_threads(batch_size, threads) for batch_size in epochs}
    square = {}
    for count in sorted(set(counts.values())):
        with blas_threads(count):
            square[count] = matmul_rate((2048, 2048), (2048, 2048), repeats)
    with blas_threads(1):
        shape_rates = {
            batch_size: statistics.mean(
                matmul_rate(a, b, repeats) for a, b in training_shapes(batch_size).values()
            )
            for batch_size in BATCH_SIZES
        }
    flops = FLOPS_PER_SAMPLE * samples
    print("\n## The arithmetic limit (float32, best of repeats)")
    for count, rate in square.items():
        print(f"matrix multiply 2048 x 2048 x 2048, {count} thread(s): {rate:.1f} GFLOP/s")
    print(f"an epoch is about 6 x {samples:,} x {WEIGHTS:,} = {flops / 1e9:.1f} GFLOP")
    header = ("batch", "threads", "GFLOP/s at its shapes", "s/epoch", "limit s", "x limit")
    print("{:>6} {:>7} {:>22} {:>8} {:>8} {:>8}".format(*header))
    for batch_size, epoch in epochs.items():
        limit = flops / square[counts[batch_size]] / 1e9
        print(
            f"{batch_size:>6} {counts[batch_size]:>7} {shape_rates[batch_size]:>22.1f} "
            f"{epoch.wall:>8.3f} {limit:>8.3f} {epoch.wall / limit:>8.2f}"
        )
    print("(GFLOP/s at its shapes: the step's two large products, on one thread)")


# ---------------------------------------------------------------------------------------------
# Time to 98%, classification, memory


def time_to_target(
    dataset: Dataset, X_test: FloatArray, quick: bool, requested_threads: int | None
) -> Network:
    """Train with TrainConfig() as fit() does, checking test accuracy after every epoch."""
    config = TrainConfig(epochs=3) if quick else TrainConfig()
    train_x, train_y, _, _ = split_validation(
        dataset.train_images, dataset.train_labels, config.validation_size
    )
    X = scale_pixels(train_x)
    state = new_training_state(config)
    schedule = make_schedule(config, -(-X.shape[0] // config.batch_size))
    threads = choose_threads(config.batch_size, requested_threads)
    print(f"\n## Default training to {100 * TARGET_ACCURACY:.0f}% test accuracy ({threads} thread)")
    wall = cpu = 0.0
    with blas_threads(threads), np.errstate(over="ignore", invalid="ignore"):
        for epoch in range(1, config.epochs + 1):
            spent = timed(lambda: train_epoch(state, X, train_y, schedule))
            wall, cpu = wall + spent.wall, cpu + spent.cpu
            accuracy = evaluate(state.network, X_test, dataset.test_labels).accuracy
            print(
                f"epoch {epoch:>2}: training {wall:6.2f} s (CPU {cpu:6.2f} s), test {accuracy:.2%}"
            )
            if accuracy >= TARGET_ACCURACY:
                print(
                    f"reached {TARGET_ACCURACY:.0%} in {epoch} epochs: {wall:.2f} s, CPU {cpu:.2f}"
                )
                return state.network
    print(f"did not reach {100 * TARGET_ACCURACY:.0f}% in {config.epochs} epochs")
    return state.network


def classification_time(network: Network, X_test: FloatArray, labels: NDArray[np.uint8]) -> None:
    print(f"\n## Classifying the {X_test.shape[0]:,} test images (median of 20, after warm-up)")
    for threads in (1, 2):
        with blas_threads(threads):
            predict = median_timing(lambda: network.predict(X_test), 20)
            full = median_timing(lambda: evaluate(network, X_test, labels), 20)
        print(
            f"{threads} thread(s): predict {1000 * predict.wall:.1f} ms "
            f"(CPU {1000 * predict.cpu:.1f} ms), evaluate (accuracy and confusion matrix) "
            f"{1000 * full.wall:.1f} ms (CPU {1000 * full.cpu:.1f} ms)"
        )


def whole_train_command(quick: bool, threads: int | None) -> None:
    """Wall time, result and peak memory of `digitnet train` with the defaults, as a child process.

    NOTE: Linux counts the parent's peak into a child's ru_maxrss when the child is started
    (the exec replaces a copy of the parent's memory), so this runs before the benchmark
    loads any data: the parent is then far smaller than the child.
    """
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "digitnet", "train", "-q", "-o", f"{folder}/model.npz"]
        command += ["--epochs", "1"] if quick else []
        command += ["--threads", str(threads)] if threads is not None else []
        started = time.perf_counter()
        finished = subprocess.run(command, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_mb, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    result = finished.stdout.strip().splitlines()[-1] if finished.stdout.strip() else "no output"
    print("\n## `digitnet train`, the whole command" + (" --epochs 1 (--quick)" if quick else ""))
    print(f"{seconds:.1f} s wall, CPU {cpu:.1f} s, loading, training, evaluating and saving")
    print(f"it printed: {result}")
    print(f"{peak_mb:.0f} MB peak resident")


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Speed and memory of digitnet on this machine.")
    parser.add_argument("--quick", action="store_true", help="a short run on fewer images")
    parser.add_argument(
        "--threads", type=int, default=None, help="BLAS threads (default: chosen by batch size)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("\n".join(describe_machine()))
    whole_train_command(args.quick, args.threads)
    dataset = load_dataset()
    X, X_test = scale_pixels(dataset.train_images), scale_pixels(dataset.test_images)

    seconds = epoch_speeds(X, dataset.train_labels, args.quick, args.threads)
    thread_comparison(X, dataset.train_labels, args.quick)
    arithmetic_limit(seconds, X.shape[0], args.quick, args.threads)
    network = time_to_target(dataset, X_test, args.quick, args.threads)
    classification_time(network, X_test, dataset.test_labels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
