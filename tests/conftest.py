"""Shared fixtures: the bundled MNIST, loaded once per test session, and IDX writing."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from digitnet.data import Dataset, load_dataset


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    return load_dataset()


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory, mnist: Dataset) -> Path:
    """A folder of 2000 training and 500 test images in MNIST layout."""
    return write_dataset(tmp_path_factory.mktemp("data"), small_dataset(mnist, 2000, 500))


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """The IDX encoding of a uint8 array with the given magic number."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, magic: int, compress: bool = False) -> Path:
    data = idx_bytes(array, magic)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_dataset(folder: Path, dataset: Dataset, compress: bool = True) -> Path:
    """Write dataset as the four MNIST-layout IDX files in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", dataset.train_images, 2051, compress)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", dataset.train_labels, 2049, compress)
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", dataset.test_images, 2051, compress)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", dataset.test_labels, 2049, compress)
    return folder


def small_dataset(mnist: Dataset, n_train: int = 600, n_test: int = 200) -> Dataset:
    return Dataset(
        mnist.train_images[:n_train],
        mnist.train_labels[:n_train],
        mnist.test_images[:n_test],
        mnist.test_labels[:n_test],
    )


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A network trained for three epochs on the bundled MNIST (a few seconds)."""
    from digitnet.cli import main

    path = tmp_path_factory.mktemp("model") / "model.npz"
    assert main(["train", "--epochs", "3", "--quiet", "--output", str(path)]) == 0
    return path


# Where the browser test saved its screenshots, for the summary to name.
SCREENSHOT_FOLDER = pytest.StashKey[Path]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the browser test's screenshot folder, and say loudly when that test did not run."""
    folder = terminalreporter.config.stash.get(SCREENSHOT_FOLDER, None)
    if folder is not None:
        terminalreporter.write_sep("-", f"browser test screenshots in {folder}")
    announce_skipped_browser_test(terminalreporter)


def announce_skipped_browser_test(terminalreporter: pytest.TerminalReporter) -> None:
    """A skip is never mistaken for a pass: a red banner gives the reason."""
    reasons = {
        str(report.longrepr[2])
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and "BROWSER TEST SKIPPED" in report.longrepr[2]
    }
    for reason in sorted(reasons):
        message = reason.split("BROWSER TEST SKIPPED", 1)[1].lstrip(": ")
        terminalreporter.write_sep("!", f"BROWSER TEST SKIPPED: {message}", red=True, bold=True)
