"""The shipped seed model is what `digitnet train` makes with the default settings.

Training it again takes 15-20 seconds: the 20 epochs of the seed on the bundled MNIST. The
weights are not compared bit for bit: another processor's BLAS kernels round differently, and
twenty epochs carry those last bits into every weight. The answers on the test set must agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digitnet.checkpoint import load_model
from digitnet.cli import main
from digitnet.commands.common import bundled_model_path
from digitnet.data import load_dataset, scale_pixels
from digitnet.threads import THREADS_ENV, blas_description

TARGET_ACCURACY = 0.98
TOLERANCE = 0.002  # test accuracy, as a fraction
MIN_AGREEMENT = 0.995  # share of test images given the same answer


def test_digitnet_train_with_the_defaults_reproduces_the_shipped_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)  # the thread count digitnet chooses itself
    output = tmp_path / "seed.npz"
    assert main(["train", "--quiet", "--output", str(output)]) == 0

    trained, metadata = load_model(output)
    shipped, shipped_metadata = load_model(bundled_model_path())
    assert metadata["test_accuracy"] >= TARGET_ACCURACY
    assert metadata["config"] == shipped_metadata["config"]
    assert abs(metadata["test_accuracy"] - shipped_metadata["test_accuracy"]) <= TOLERANCE

    images = scale_pixels(load_dataset().test_images)
    agreement = np.mean(trained.predict(images) == shipped.predict(images))
    assert agreement >= MIN_AGREEMENT, f"{agreement:.4f} of answers agree ({blas_description()})"
