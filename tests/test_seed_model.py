"""The shipped seed model is exactly what `digitnet train` makes with the default settings.

Training it again takes 15-20 seconds: the 20 epochs of the seed on the bundled MNIST.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digitnet.checkpoint import load_model
from digitnet.cli import main
from digitnet.commands.common import bundled_model_path
from digitnet.threads import THREADS_ENV, blas_description

TARGET_ACCURACY = 0.98


def test_digitnet_train_with_the_defaults_reproduces_the_shipped_model_bit_for_bit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)  # the thread count digitnet chooses itself
    output = tmp_path / "seed.npz"
    assert main(["train", "--quiet", "--output", str(output)]) == 0

    trained, metadata = load_model(output)
    shipped, shipped_metadata = load_model(bundled_model_path())
    assert metadata["test_accuracy"] >= TARGET_ACCURACY
    assert metadata["config"] == shipped_metadata["config"]
    for name, value in shipped.params.items():
        assert np.array_equal(trained.params[name], value), f"{name} differs ({blas_description()})"
    assert metadata["test_accuracy"] == shipped_metadata["test_accuracy"]
    assert metadata["val_accuracy"] == shipped_metadata["val_accuracy"]
