"""Training control: checkpoints, exact resumption, Ctrl-C, early stopping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import small_dataset, write_dataset
from digitnet.checkpoint import ModelFileError, load_model
from digitnet.cli import main
from digitnet.config import TrainConfig, preset
from digitnet.data import Dataset
from digitnet.state import EpochStats, load_checkpoint
from digitnet.train import TrainingInterrupted, fit

# Every source of randomness and every kind of optimizer state is in play.
RESUMABLE = TrainConfig(
    epochs=4,
    batch_size=50,
    learning_rate=0.002,
    hidden=(32, 16),
    activation="relu",
    output_units="softmax",
    dropout=0.2,
    optimizer="adam",
    schedule="cosine",
    warmup_epochs=0.5,
    augment="elastic",
    patience=3,
    validation_size=100,
    seed=5,
)


def stop_after(epoch: int):
    """An on_epoch callback that presses Ctrl-C once the given epoch is done."""

    def on_epoch(stats: EpochStats) -> None:
        if stats.epoch == epoch:
            raise KeyboardInterrupt

    return on_epoch


def same_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def data(mnist: Dataset) -> Dataset:
    return small_dataset(mnist, 600, 10)


def test_two_epochs_and_a_resumed_two_equal_four_straight(tmp_path: Path, data: Dataset) -> None:
    straight, straight_history = fit(RESUMABLE, data)
    checkpoint = tmp_path / "run.checkpoint.npz"
    with pytest.raises(TrainingInterrupted) as stop:
        fit(RESUMABLE, data, on_epoch=stop_after(2), checkpoint=checkpoint)
    assert stop.value.epoch == 2

    state = load_checkpoint(checkpoint)
    assert state.epoch == 2
    resumed, resumed_history = fit(RESUMABLE, data, checkpoint=checkpoint, resume=state)

    assert same_weights(straight.params, resumed.params)
    assert [s.train_loss for s in straight_history.epochs] == [
        s.train_loss for s in resumed_history.epochs
    ]


def test_ctrl_c_inside_an_epoch_leaves_the_last_completed_epoch(
    tmp_path: Path, data: Dataset
) -> None:
    config = preset("seed", epochs=3, hidden=(16,), validation_size=100, dropout=0.1)
    straight, _ = fit(config, data)
    batches = 0

    def press_ctrl_c_in_epoch_two(count: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 20:  # 500 images in batches of 32: 16 per epoch
            raise KeyboardInterrupt

    checkpoint = tmp_path / "c.npz"
    with pytest.raises(TrainingInterrupted) as stop:
        fit(config, data, on_batch=press_ctrl_c_in_epoch_two, checkpoint=checkpoint)
    assert (stop.value.epoch, stop.value.checkpoint) == (1, checkpoint)
    assert not list(tmp_path.glob("*.tmp"))

    resumed, _ = fit(config, data, resume=load_checkpoint(checkpoint))
    assert same_weights(straight.params, resumed.params)


def test_ctrl_c_in_the_first_epoch_still_leaves_a_checkpoint(tmp_path: Path, data: Dataset) -> None:
    config = preset("seed", epochs=2, hidden=(8,), validation_size=100)

    def interrupt(count: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        fit(config, data, on_batch=interrupt, checkpoint=tmp_path / "c.npz")
    assert load_checkpoint(tmp_path / "c.npz").epoch == 0


def test_early_stopping_keeps_the_best_weights(data: Dataset) -> None:
    # Steps this small move the weights but flip no prediction: after epoch 1 the validation
    # accuracy never improves, so patience 2 stops the run after epoch 3 and keeps epoch 1.
    def config(epochs: int, patience: int) -> TrainConfig:
        return preset("seed", epochs=epochs, learning_rate=1e-4, validation_size=100,
                      patience=patience)  # fmt: skip

    after_one, _ = fit(config(1, 0), data)
    after_three, _ = fit(config(3, 0), data)
    network, history = fit(config(10, 2), data)

    assert len(history.epochs) == 3
    assert len({stats.val_accuracy for stats in history.epochs}) == 1
    assert same_weights(network.params, after_one.params)
    assert not same_weights(network.params, after_three.params)


def test_a_resumed_run_refuses_changed_settings(tmp_path: Path, data: Dataset) -> None:
    config = preset("seed", epochs=1, hidden=(8,), validation_size=100)
    fit(config, data, checkpoint=tmp_path / "c.npz")
    state = load_checkpoint(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="these differ: learning_rate"):
        fit(preset("seed", epochs=2, hidden=(8,), validation_size=100, learning_rate=1.0), data,
            resume=state)  # fmt: skip


def test_checkpoints_and_models_are_not_confused(tmp_path: Path, data: Dataset, capsys) -> None:
    folder = write_dataset(tmp_path / "data", data)
    model = tmp_path / "m.npz"
    assert main(["train", "--data", str(folder), "--epochs", "1", "--hidden", "8", "-q",
                 "--validation-size", "100", "-o", str(model)]) == 0  # fmt: skip
    checkpoint = tmp_path / "m.checkpoint.npz"
    with pytest.raises(ModelFileError, match=r"training checkpoint.*--resume"):
        load_model(checkpoint)
    with pytest.raises(ModelFileError, match="not a training checkpoint"):
        load_checkpoint(model)


def test_cli_resume_continues_to_the_same_weights(tmp_path: Path, data: Dataset) -> None:
    folder = write_dataset(tmp_path / "data", data)
    common = ["--data", str(folder), "--hidden", "8", "--validation-size", "100", "-q"]
    assert main(["train", *common, "--epochs", "3", "-o", str(tmp_path / "straight.npz")]) == 0
    assert main(["train", *common, "--epochs", "2", "-o", str(tmp_path / "part.npz")]) == 0
    resume = ["train", "--resume", str(tmp_path / "part.checkpoint.npz"), "--epochs", "3"]
    assert main([*resume, "-q", "--data", str(folder), "-o", str(tmp_path / "whole.npz")]) == 0
    straight, _ = load_model(tmp_path / "straight.npz")
    whole, metadata = load_model(tmp_path / "whole.npz")
    assert same_weights(straight.params, whole.params)
    assert len(metadata["history"]) == 3


def test_cli_resume_refuses_other_settings(tmp_path: Path, data: Dataset, capsys) -> None:
    folder = write_dataset(tmp_path / "data", data)
    options = ["--data", str(folder), "--hidden", "8", "--validation-size", "100", "-q"]
    assert main(["train", *options, "--epochs", "1", "-o", str(tmp_path / "m.npz")]) == 0
    resume = ["train", "--resume", str(tmp_path / "m.checkpoint.npz")]
    status = main([*resume, "--dropout", "0.5", "--preset", "best"])
    assert status == 2
    assert "drop --dropout, --preset" in capsys.readouterr().err


def test_cli_ctrl_c_names_the_checkpoint_and_exits_130(
    tmp_path: Path, data: Dataset, monkeypatch, capsys
) -> None:
    import digitnet.commands.train as train_command

    def interrupted_fit(*args: object, **kwargs: object) -> None:
        raise TrainingInterrupted(3, tmp_path / "m.checkpoint.npz")

    monkeypatch.setattr(train_command, "fit", interrupted_fit)
    folder = write_dataset(tmp_path / "data", data)
    argv = ["train", "--data", str(folder), "--validation-size", "100", "-q"]
    status = main([*argv, "-o", str(tmp_path / "m.npz")])
    assert status == 130
    err = capsys.readouterr().err
    assert "holds epoch 3" in err and f"--resume {tmp_path / 'm.checkpoint.npz'}" in err
    assert not (tmp_path / "m.npz").exists()


def test_a_run_killed_mid_epoch_resumes_to_the_weights_of_an_unbroken_run(
    tmp_path: Path, small_data: Path
) -> None:
    """SIGKILL gives no chance to clean up: the last checkpoint on disk must be enough."""
    flags = ["--data", str(small_data), "--validation-size", "500", "--batch-size", "1"]
    flags += ["--epochs", "4", "--hidden", "16", "--learning-rate", "0.05", "--seed", "3"]
    env = {**os.environ, "DIGITNET_THREADS": "1"}
    command = [sys.executable, "-m", "digitnet", "train", *flags]
    killed = subprocess.Popen(
        [*command, "-o", str(tmp_path / "killed.npz")], stderr=subprocess.PIPE, text=True, env=env
    )
    assert killed.stderr is not None
    line = ""
    while not line.startswith("epoch   2/4") and killed.poll() is None:
        line = killed.stderr.readline()
    time.sleep(0.05)  # well inside epoch 3, which takes about half a second here
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    killed.stderr.close()
    assert line.startswith("epoch   2/4") and killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed.npz").exists()

    checkpoint = tmp_path / "killed.checkpoint.npz"
    assert load_checkpoint(checkpoint).epoch == 2
    resume = [sys.executable, "-m", "digitnet", "train", "--resume", str(checkpoint), "-q"]
    subprocess.run([*resume, "-o", str(tmp_path / "killed.npz")], check=True, env=env)
    subprocess.run([*command, "-q", "-o", str(tmp_path / "whole.npz")], check=True, env=env)

    resumed, metadata = load_model(tmp_path / "killed.npz")
    whole, _ = load_model(tmp_path / "whole.npz")
    assert [stats["epoch"] for stats in metadata["history"]] == [1, 2, 3, 4]
    assert all(np.array_equal(resumed.params[k], whole.params[k]) for k in whole.params)
