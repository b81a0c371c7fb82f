"""Prediction latency: one image in a running process, and `digitnet predict` from a cold start.

Run from the repository root with the package installed in .venv:

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/predict_latency.py

It writes test images (an MNIST digit as a 28x28 PNG, and the same digit as photo-like JPEGs
of dark ink on unevenly lit paper, from 320x240 to 4000x3000 pixels) to a temporary folder, then
prints the median and 90th percentile wall time and the median CPU time of each measurement, in
milliseconds, as a Markdown table.
"""

from __future__ import annotations

import functools
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

import digitnet
from digitnet.data import load_dataset
from digitnet.preprocess import load_image, preprocess_image

REPEATS = 300
PHOTO_SIZES = ((320, 240), (512, 384), (640, 480), (1024, 768), (4000, 3000))  # width, height


def write_images(folder: Path) -> tuple[Path, dict[tuple[int, int], Path]]:
    """The MNIST PNG, and a photo JPEG of each of PHOTO_SIZES."""
    digit = load_dataset().test_images[0]
    mnist_png = folder / "mnist.png"
    Image.fromarray(digit).save(mnist_png)
    photos = {}
    for width, height in PHOTO_SIZES:
        photos[width, height] = folder / f"photo-{width}x{height}.jpg"
        photo_of(digit, width, height).save(photos[width, height], quality=85)
    return mnist_png, photos


def photo_of(digit: np.ndarray, width: int, height: int) -> Image.Image:
    """The digit as dark ink 0.7 of the page high, on paper lit more from the left."""
    scale = height * 7 // (10 * 28)
    big = np.kron(255 - digit, np.ones((scale, scale), dtype=np.uint8)).astype(np.float64)
    page = np.full((height, width), 255.0)
    top, left = height // 6, width * 3 // 8
    page[top : top + big.shape[0], left : left + big.shape[1]] = big
    light = np.linspace(1.0, 0.6, width)[None, :]
    return Image.fromarray((page * light).astype(np.uint8))


def timings_ms(call: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each call; CPU includes finished child processes.

    On a busy machine the wall time includes waiting for a core; the CPU time does not, and is
    close to what the wall time would be on an idle machine (everything here is one thread).
    """
    call()  # warm-up: first-call imports and caches stay out of the figures
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), cpu_seconds()
        call()
        walls.append(1000 * (time.perf_counter() - wall))
        cpus.append(1000 * (cpu_seconds() - cpu))
    return walls, cpus


def cpu_seconds() -> float:
    own = time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + children.ru_utime + children.ru_stime


def row(name: str, times: tuple[list[float], list[float]]) -> str:
    walls, cpus = times
    p90 = statistics.quantiles(walls, n=10)[-1]
    return (
        f"| {name} | {statistics.median(walls):.2f} | {p90:.2f} | {statistics.median(cpus):.2f} |"
    )


def main() -> None:
    model = digitnet.load_model()
    folder = Path(tempfile.mkdtemp())
    try:
        mnist_png, photos = write_images(folder)
        photo_jpg = photos[320, 240]
        photo = load_image(photo_jpg)
        network_input = preprocess_image(photo)[np.newaxis]
        beside_python = shutil.which("digitnet", path=str(Path(sys.executable).parent))
        cli = [beside_python or shutil.which("digitnet") or "digitnet", "predict"]
        measurements: list[tuple[str, Callable[[], object], int]] = [
            ("network only, one 28x28 input", lambda: model.predict_inputs(network_input), REPEATS),
            ("model.predict(28x28 MNIST PNG file)", lambda: model.predict(mnist_png), REPEATS),
            ("model.predict(open 320x240 photo image)", lambda: model.predict(photo), REPEATS),
        ]
        for (width, height), path in photos.items():
            repeats = max(30, REPEATS * 320 * 240 // (width * height))
            name = f"model.predict({width}x{height} photo JPEG file)"
            measurements.append((name, functools.partial(model.predict, path), repeats))
        measurements += [
            ("`python -c pass` (new process)", lambda: run([sys.executable, "-c", "pass"]), 15),
            ("`digitnet predict mnist.png` (new process)", lambda: run([*cli, mnist_png]), 15),
            ("`digitnet predict photo.jpg` (new process)", lambda: run([*cli, photo_jpg]), 15),
        ]
        print("| measurement | median wall ms | p90 wall ms | median CPU ms |")
        print("|---|---|---|---|")
        for name, call, repeats in measurements:
            print(row(name, timings_ms(call, repeats)), flush=True)
    finally:
        shutil.rmtree(folder)


def run(argv: list[str | Path]) -> None:
    subprocess.run(argv, check=True, capture_output=True)


if __name__ == "__main__":
    main()
