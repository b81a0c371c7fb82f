"""The command line, driven through main([...])."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from digitnet.checkpoint import load_model
from digitnet.cli import COMMANDS, EXIT_STATUSES, main
from digitnet.commands import evaluate
from digitnet.commands import train as train_command
from digitnet.state import load_checkpoint


def train_small(small_data: Path, output: Path, *extra: str) -> int:
    argv = ["train", "--data", str(small_data), "--epochs", "2", "--validation-size", "500"]
    return main([*argv, "--output", str(output), *extra])


def test_train_prints_progress_on_stderr_and_accuracy_on_stdout(
    tmp_path: Path, small_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_small(small_data, tmp_path / "m.npz") == 0
    out, err = capsys.readouterr()
    assert out.startswith("test accuracy: ") and out.strip().endswith("%")
    assert "epoch   1/2 | loss " in err and "epoch   2/2 | loss " in err
    _, metadata = load_model(tmp_path / "m.npz")
    assert len(metadata["history"]) == 2 and metadata["config"]["epochs"] == 2
    assert f"{100 * metadata['test_accuracy']:.2f}%" in out


class Terminal(io.StringIO):
    """A stream that says it is a terminal, so that tqdm draws its bar into it."""

    def isatty(self) -> bool:
        return True


def screen_lines(text: str) -> list[str]:
    """The lines a terminal shows for text: a carriage return goes back to the line's start."""
    lines = []
    for line in text.split("\n"):
        shown: list[str] = []
        for piece_index, piece in enumerate(line.split("\r")):
            column = 0 if piece_index else len(shown)
            shown[column : column + len(piece)] = piece
        lines.append("".join(shown).rstrip())
    return lines


def test_epoch_lines_stand_on_their_own_under_a_progress_bar(
    tmp_path: Path, small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert train_small(small_data, tmp_path / "m.npz") == 0

    text = terminal.getvalue()
    assert "img/s" in text, "the progress bar was drawn"
    epoch_lines = [line for line in screen_lines(text) if "epoch " in line and " | loss " in line]
    assert len(epoch_lines) == 2
    assert all(line.startswith("epoch ") for line in epoch_lines), epoch_lines


def test_train_json_summary(
    tmp_path: Path, small_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_small(small_data, tmp_path / "m.npz", "--json", "--quiet") == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert 0.5 < summary["test_accuracy"] <= 1.0 and len(summary["history"]) == 2
    assert summary["val_accuracy"] == summary["history"][-1]["val_accuracy"] > 0.5
    assert summary["config"]["seed"] == 0 and summary["config"]["validation_size"] == 500
    assert summary["config"]["epochs"] == 2 and summary["threads"] >= 1
    assert summary["data"] == str(small_data)
    assert err == ""


def test_evaluate_prints_accuracy_and_confusion_matrix(
    tmp_path: Path, small_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_small(small_data, tmp_path / "m.npz", "--quiet")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "m.npz"), "--data", str(small_data), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sum(map(sum, summary["confusion_matrix"])) == 500
    assert main(["evaluate", str(tmp_path / "m.npz"), "--data", str(small_data)]) == 0
    text = capsys.readouterr().out
    assert f"test accuracy: {100 * summary['test_accuracy']:.2f}%" in text
    assert "rows: true digit" in text and "total 500 images" in text


def test_missing_model_is_one_line_error_with_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(tmp_path / "nope.npz")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.npz: no such model file" in err


def test_missing_data_folder_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--data", str(tmp_path / "none"), "--output", "x.npz"]) == 1
    assert capsys.readouterr().err.strip().endswith("none: not a folder")


def test_diverging_training_suggests_a_lower_learning_rate(
    tmp_path: Path, small_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_small(small_data, tmp_path / "m.npz", "--learning-rate", "1e36") == 3
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("digitnet: error: training diverged: the loss became ")
    assert re.search(r" in epoch 1 at sample \d+;", last), last
    assert "lower learning rate" in last
    assert not (tmp_path / "m.npz").exists()


def test_bad_flag_values_exit_with_status_2_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--epochs", "many"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid int value: 'many'" in err
    assert err.startswith("digitnet train: error: ") and "digitnet train --help" in err


def test_unknown_command_exits_with_status_2_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["trian"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'trian'" in err


def test_invalid_setting_is_a_one_line_usage_error_with_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["train", "--batch-size", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "batch size must be at least 1, got 0" in err


def test_a_validation_split_as_large_as_the_data_is_a_usage_error_before_training(
    small_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def no_training(*args: object) -> None:
        raise AssertionError("training started")

    monkeypatch.setattr(train_command, "fit", no_training)
    assert train_small(small_data, tmp_path / "m.npz", "--validation-size", "2000") == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == (
        "digitnet: error: --validation-size 2000 must be less than the 2000 training images, "
        "so that some are left to train on"
    )
    assert not (tmp_path / "m.npz").exists()


def test_help_lists_every_flag_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--epochs", "--batch-size", "--learning-rate", "--hidden", "--seed", "--output"):
        assert flag in text
    assert "(default: 0.5)" in text


def test_every_exit_status_is_listed_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for status, meaning in EXIT_STATUSES.items():
        assert f"{status:>3}  {meaning}" in text


@pytest.mark.parametrize("argv", [["--help"], ["--help", "predict"], ["--debug", "-h"]])
def test_the_top_level_help_describes_every_command(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    lines = capsys.readouterr().out.splitlines()
    for command in COMMANDS:
        described = [line.split() for line in lines if line.split()[:1] == [command]]
        assert described and len(described[0]) > 1, command  # the name, then its summary


def test_a_command_loads_only_its_own_module() -> None:
    code = (
        "import sys; from digitnet.cli import build_parser, command_in; "
        "build_parser(command_in(['--debug', 'predict', 'x.png'])); "
        "print(*sorted(m for m in sys.modules if m.startswith('digitnet.commands.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["digitnet.commands.common", "digitnet.commands.predict"]


def test_an_unexpected_exception_is_an_internal_error_with_status_4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def buggy(path: Path) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(evaluate, "load_model", buggy)
    assert main(["evaluate", "any.npz"]) == 4
    err = capsys.readouterr().err
    assert err == (
        "digitnet: internal error: ZeroDivisionError: division by zero; "
        "rerun with --debug to see where, and report it\n"
    )


def test_running_out_of_memory_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def exhausted(path: Path) -> None:
        raise MemoryError()

    monkeypatch.setattr(evaluate, "load_model", exhausted)
    assert main(["evaluate", "any.npz"]) == 1
    assert capsys.readouterr().err.startswith("digitnet: error: out of memory; try a smaller")


def test_ctrl_c_is_reported_in_one_line_with_status_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(path: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "load_model", interrupted)
    assert main(["evaluate", "any.npz"]) == 130
    assert capsys.readouterr().err == "digitnet: interrupted\n"


@pytest.mark.parametrize("position", ["before", "after"])
def test_debug_shows_the_traceback_wherever_the_flag_is(tmp_path: Path, position: str) -> None:
    command = ["evaluate", str(tmp_path / "nope.npz")]
    argv = ["--debug", *command] if position == "before" else [*command, "--debug"]
    with pytest.raises(ValueError, match=r"nope.npz: no such model file"):
        main(argv)


def run_digitnet(*argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "digitnet", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_real_process_prints_no_traceback_and_exits_with_status_1(tmp_path: Path) -> None:
    result = run_digitnet("evaluate", str(tmp_path / "nope.npz"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"digitnet: error: {tmp_path / 'nope.npz'}: no such model file\n"


@pytest.mark.parametrize(
    ("signum", "status", "message"),
    [
        (
            signal.SIGINT,
            130,
            r"digitnet: interrupted; .*m.checkpoint.npz holds epoch \d+; continue with .*",
        ),
        (signal.SIGTERM, 143, "digitnet: terminated"),
    ],
    ids=["SIGINT", "SIGTERM"],
)
def test_a_signal_during_training_exits_quietly_and_keeps_only_the_checkpoint(
    tmp_path: Path, small_data: Path, signum: int, status: int, message: str
) -> None:
    output = tmp_path / "m.npz"
    argv = ["train", "--data", str(small_data), "--epochs", "1000", "--validation-size", "500"]
    process = subprocess.Popen(
        [sys.executable, "-m", "digitnet", *argv, "--output", str(output)],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first_epoch = ""
    while "epoch " not in first_epoch and process.poll() is None:
        first_epoch = process.stderr.readline()
    process.send_signal(signum)
    err = first_epoch + process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=30) == status
    assert re.fullmatch(message, err.splitlines()[-1]) and "Traceback" not in err
    assert [path.name for path in tmp_path.iterdir()] == ["m.checkpoint.npz"]
    assert load_checkpoint(tmp_path / "m.checkpoint.npz").epoch >= 1


def test_output_closed_early_exits_141_without_a_message(tmp_path: Path, small_data: Path) -> None:
    model = tmp_path / "m.npz"
    assert train_small(small_data, model, "--quiet") == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `digitnet evaluate | head -0`: every write fails with EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "-m", "digitnet", "evaluate", str(model), "--data", str(small_data)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141 and result.stderr == ""
