"""Training control: checkpoints, exact resumption, Ctrl-C, early stopping."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import small_dataset, write_dataset
from digitnet.checkpoint import ModelFileError, load_model
from digitnet.cli import EXIT_ERROR, main
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


def stop_after(epoch: int) -> Callable[[EpochStats], None]:
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


def test_checkpoints_and_models_are_not_confused(
    tmp_path: Path, data: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
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


def test_cli_resume_refuses_other_settings(
    tmp_path: Path, data: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_dataset(tmp_path / "data", data)
    options = ["--data", str(folder), "--hidden", "8", "--validation-size", "100", "-q"]
    assert main(["train", *options, "--epochs", "1", "-o", str(tmp_path / "m.npz")]) == 0
    resume = ["train", "--resume", str(tmp_path / "m.checkpoint.npz")]
    status = main([*resume, "--dropout", "0.5", "--preset", "best"])
    assert status == 2
    assert "drop --dropout, --preset" in capsys.readouterr().err


def test_cli_resume_refuses_fewer_epochs_than_the_checkpoint_has(
    tmp_path: Path, data: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_dataset(tmp_path / "data", data)
    options = ["--data", str(folder), "--hidden", "8", "--validation-size", "100", "-q"]
    assert main(["train", *options, "--epochs", "2", "-o", str(tmp_path / "m.npz")]) == 0
    capsys.readouterr()
    resume = [
        "train",
        "--resume",
        str(tmp_path / "m.checkpoint.npz"),
        "-o",
        str(tmp_path / "y.npz"),
    ]
    assert main([*resume, "--epochs", "1"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--epochs 1 is fewer than the 2 epochs" in error
    assert not (tmp_path / "y.npz").exists()


def test_fit_refuses_to_resume_with_fewer_epochs(tmp_path: Path, data: Dataset) -> None:
    config = preset("seed", epochs=2, hidden=(8,), validation_size=100)
    fit(config, data, checkpoint=tmp_path / "c.npz")
    state = load_checkpoint(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="epochs 1 is fewer than the 2 already trained"):
        fit(replace(config, epochs=1), data, resume=state)


def test_cli_ctrl_c_names_the_checkpoint_and_exits_130(
    tmp_path: Path,
    data: Dataset,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
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


# ---- hostile or corrupt checkpoints ---------------------------------------------------------

# Adam and a patience, so the checkpoint holds optimizer slots and best weights.
SMALL_RUN = preset(
    "seed", epochs=4, hidden=(8,), optimizer="adam", learning_rate=0.002, patience=3,
    validation_size=100,
)  # fmt: skip


@pytest.fixture(scope="module")
def sound_checkpoint(tmp_path_factory: pytest.TempPathFactory, data: Dataset) -> Path:
    """A checkpoint of SMALL_RUN after epoch 2 of 4."""
    path = tmp_path_factory.mktemp("sound") / "run.checkpoint.npz"
    with pytest.raises(TrainingInterrupted):
        fit(SMALL_RUN, data, on_epoch=stop_after(2), checkpoint=path)
    return path


Edit = Callable[[dict[str, np.ndarray], dict[str, Any]], None]


def edited_checkpoint(original: Path, target: Path, change: Edit) -> Path:
    """Copy original to target after change(arrays, metadata) edits them in place."""
    with np.load(original) as archive:
        arrays = {name: archive[name] for name in archive.files}
    metadata = json.loads(arrays.pop("metadata").tobytes())
    change(arrays, metadata)
    text = json.dumps(metadata).encode()
    with target.open("wb") as handle:
        np.savez(handle, **arrays, metadata=np.frombuffer(text, dtype=np.uint8))
    return target


def set_array(name: str, value: np.ndarray) -> Edit:
    return lambda arrays, meta: arrays.update({name: value})


def drop_array(name: str) -> Edit:
    def drop(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        del arrays[name]

    return drop


def set_field(name: str, value: object) -> Edit:
    return lambda arrays, meta: meta.update({name: value})


def set_nested(outer: str, name: str, value: object) -> Edit:
    return lambda arrays, meta: meta[outer].update({name: value})


def set_rng_word(name: str, value: object) -> Edit:
    return lambda arrays, meta: meta["rng"]["state"].update({name: value})


def negate(name: str) -> Edit:
    return lambda arrays, meta: arrays.update({name: -np.abs(arrays[name]) - 1.0})


FAULTS: dict[str, tuple[Edit, str]] = {
    "optimizer slot of the wrong shape": (
        set_array("optimizer/m/W1", np.zeros((3, 3), np.float32)),
        r"optimizer state m/W1 has shape \(3, 3\), expected \(8, 784\)",
    ),
    "optimizer slot missing": (drop_array("optimizer/v/b2"), r"missing \['v/b2'\], extra \[\]"),
    "another optimizer's slot": (
        set_array("optimizer/velocity/b1", np.zeros(8, np.float32)),
        r"adam optimizer state .* extra \['velocity/b1'\]",
    ),
    "negative squared-gradient average": (negate("optimizer/v/W2"), r"v/W2 holds negative"),
    "optimizer steps negative": (
        set_field("optimizer_steps", -1),
        r"'optimizer_steps' must be a whole number from 0, got -1",
    ),
    "best accuracy a word": (
        set_field("best_accuracy", "high"),
        r"'best_accuracy' must be null or a number from 0 to 1, got 'high'",
    ),
    "best accuracy above 1": (set_field("best_accuracy", 1.5), r"from 0 to 1, got 1.5"),
    "best weights of the wrong shape": (
        set_array("best/W1", np.zeros((8, 783), np.float32)),
        r"best weights: parameter W1 has shape \(8, 783\), expected \(8, 784\)",
    ),
    "best weights without an accuracy": (
        set_field("best_accuracy", None),
        "the best validation result has weights but no accuracy",
    ),
    "weights beyond float32": (
        set_array("params/b1", np.full(8, 1e300)),
        r"array params/b1 holds values beyond float32's range",
    ),
    "epoch negative": (
        set_field("epoch", -5),
        r"'epoch' must be a whole number from 0 to 4, got -5",
    ),
    "epoch past the run": (set_field("epoch", 9), r"'epoch' must be .* to 4, got 9"),
    "epoch a fraction": (set_field("epoch", 2.5), r"'epoch' must be .*, got 2.5"),
    "stale epochs a boolean": (set_field("stale_epochs", True), r"'stale_epochs' .* got True"),
    "history shorter than the epochs": (
        lambda arrays, meta: meta["history"].pop(),
        r"'history' must list the 2 completed epochs",
    ),
    "history row of the wrong epoch": (
        lambda arrays, meta: meta["history"][1].update(epoch=7),
        r"history row 2 is not the statistics of epoch 2",
    ),
    "generator of another kind": (
        set_nested("rng", "bit_generator", "MT19937"),
        r"'rng' is not the state of numpy's PCG64 generator",
    ),
    "generator word a fraction": (set_rng_word("state", 1.5), r"'rng' is not the state"),
    "generator word too large": (set_rng_word("inc", 2**130 + 1), r"'rng' is not the state"),
    "setting of the wrong type": (
        set_nested("config", "batch_size", "32"),
        r"setting 'batch_size' must be a whole number, got '32'",
    ),
    "setting out of range": (
        set_nested("config", "dropout", 1.5),
        r"refused training settings \(dropout must be in \[0, 1\), got 1.5\)",
    ),
    "learning rate beyond float's range": (
        set_nested("config", "learning_rate", 10**400),
        r"setting 'learning_rate' must be a finite number, got 1000",
    ),
    "settings for another network": (
        set_nested("config", "hidden", [16]),
        r"weights are for a \(784, 8, 10\) .* settings describe \(784, 16, 10\)",
    ),
    "data folder a number": (set_field("source", {"data": 5}), r"'source' must be"),
    "no thread": (set_field("threads", 0), r"'threads' must be a whole number from 1, got 0"),
    "a stray array": (
        set_array("junk", np.zeros(2, np.float32)),
        r"array 'junk' is not part of a training checkpoint",
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_corrupt_checkpoint_is_refused_in_one_line_before_training(
    tmp_path: Path,
    sound_checkpoint: Path,
    fault: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import digitnet.commands.train as train_command

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("training started")

    monkeypatch.setattr(train_command, "fit", no_training)
    change, message = FAULTS[fault]
    bad = edited_checkpoint(sound_checkpoint, tmp_path / "bad.checkpoint.npz", change)
    status = main(["train", "--resume", str(bad), "-q", "-o", str(tmp_path / "m.npz")])

    err = capsys.readouterr().err
    assert status == EXIT_ERROR
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"digitnet: error: {bad}: ")
    assert re.search(message, err), err
    assert not (tmp_path / "m.npz").exists()


def test_the_sound_checkpoint_the_faults_start_from_resumes(
    tmp_path: Path, sound_checkpoint: Path, data: Dataset
) -> None:
    """The control for the faults above: the same file, unedited, loads and trains on."""
    copy = edited_checkpoint(sound_checkpoint, tmp_path / "copy.npz", lambda arrays, meta: None)
    straight, _ = fit(SMALL_RUN, data)
    resumed, _ = fit(SMALL_RUN, data, resume=load_checkpoint(copy))
    assert same_weights(straight.params, resumed.params)


def test_float64_optimizer_state_is_cast_to_the_layout_training_uses(
    tmp_path: Path, sound_checkpoint: Path, data: Dataset
) -> None:
    def widen(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        for name in [name for name in arrays if name.startswith(("optimizer/", "best/"))]:
            arrays[name] = np.ascontiguousarray(arrays[name], dtype=np.float64)

    state = load_checkpoint(edited_checkpoint(sound_checkpoint, tmp_path / "wide.npz", widen))

    arrays = {**state.optimizer.state, **(state.best_params or {})}
    assert set(state.optimizer.state) == {
        f"{s}/{p}" for s in "mv" for p in ("W1", "b1", "W2", "b2")
    }
    assert all(value.dtype == np.float32 for value in arrays.values())
    assert all(value.flags.f_contiguous for name, value in arrays.items() if "W" in name)
    straight, _ = fit(SMALL_RUN, data)
    resumed, _ = fit(SMALL_RUN, data, resume=state)
    assert same_weights(straight.params, resumed.params)


# ---- the BLAS thread count of a resumed run -------------------------------------------------


@pytest.fixture
def thread_counts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The BLAS thread counts training runs with, epoch by epoch, recorded; the batch-size
    rule made to answer 1, so a count of 2 can only come from a request or a checkpoint."""
    import digitnet.threads
    import digitnet.train

    counts: list[int] = []
    real = digitnet.threads.blas_threads

    def recording(count: int) -> Any:
        counts.append(count)
        return real(count)

    monkeypatch.setattr(digitnet.train, "blas_threads", recording)
    monkeypatch.setattr(digitnet.threads, "threads_for_batch", lambda batch_size: 1)
    monkeypatch.delenv("DIGITNET_THREADS", raising=False)
    return counts


def test_a_resumed_run_keeps_the_thread_count_of_its_checkpoint(
    tmp_path: Path, data: Dataset, thread_counts: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_dataset(tmp_path / "data", data)
    options = ["--data", str(folder), "--hidden", "8", "--validation-size", "100"]
    assert main(["train", *options, "-q", "--epochs", "1", "--threads", "2",
                 "-o", str(tmp_path / "m.npz")]) == 0  # fmt: skip
    checkpoint = tmp_path / "m.checkpoint.npz"
    assert load_checkpoint(checkpoint).threads == 2

    assert main(["train", "--resume", str(checkpoint), "--epochs", "2",
                 "-o", str(tmp_path / "m.npz")]) == 0  # fmt: skip
    assert thread_counts == [2, 2]
    assert "BLAS threads: 2 (as the checkpoint's run)" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_an_explicit_thread_count_wins_over_the_checkpoints(
    tmp_path: Path,
    data: Dataset,
    thread_counts: list[int],
    how: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checkpoint = tmp_path / "c.npz"
    fit(preset("seed", epochs=1, hidden=(8,), validation_size=100), data, checkpoint=checkpoint,
        threads=2)  # fmt: skip
    resume = ["train", "--resume", str(checkpoint), "--epochs", "2", "-q"]
    if how == "flag":
        resume += ["--threads", "3"]
    else:
        monkeypatch.setenv("DIGITNET_THREADS", "3")
    assert main([*resume, "-o", str(tmp_path / "m.npz")]) == 0
    assert thread_counts == [2, 3]
    assert load_checkpoint(checkpoint).threads == 3


def test_two_threads_resumed_without_the_flag_end_like_an_unbroken_run(
    tmp_path: Path, data: Dataset, thread_counts: list[int]
) -> None:
    """At batch 256 and 32 hidden units, two BLAS threads change the last bits of the weights,
    so a resumed run that fell back to one thread would end elsewhere."""
    config = preset("seed", epochs=3, hidden=(32,), batch_size=256, validation_size=100)
    one_thread, _ = fit(config, data, threads=1)
    straight, _ = fit(config, data, threads=2)
    if same_weights(one_thread.params, straight.params):
        pytest.skip("this BLAS gives one and two threads the same weights: nothing to tell apart")

    checkpoint = tmp_path / "c.npz"
    with pytest.raises(TrainingInterrupted):
        fit(config, data, on_epoch=stop_after(1), checkpoint=checkpoint, threads=2)
    resumed, _ = fit(config, data, resume=load_checkpoint(checkpoint))
    assert same_weights(straight.params, resumed.params)
