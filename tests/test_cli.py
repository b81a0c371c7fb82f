"""The command line, driven through main([...])."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import small_dataset, write_dataset
from digitnet.checkpoint import load_model
from digitnet.cli import main
from digitnet.data import Dataset


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory, mnist: Dataset) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"), small_dataset(mnist, 2000, 500))


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


def test_train_json_summary(tmp_path: Path, small_data: Path, capsys) -> None:
    assert train_small(small_data, tmp_path / "m.npz", "--json", "--quiet") == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert 0.5 < summary["test_accuracy"] <= 1.0 and len(summary["history"]) == 2
    assert err == ""


def test_evaluate_prints_accuracy_and_confusion_matrix(
    tmp_path: Path, small_data: Path, capsys
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


def test_missing_model_is_one_line_error_with_status_1(tmp_path: Path, capsys) -> None:
    assert main(["evaluate", str(tmp_path / "nope.npz")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.npz: no such model file" in err


def test_missing_data_folder_is_one_line_error(tmp_path: Path, capsys) -> None:
    assert main(["train", "--data", str(tmp_path / "none"), "--output", "x.npz"]) == 1
    assert capsys.readouterr().err.strip().endswith("none: not a folder")


def test_diverging_training_suggests_a_lower_learning_rate(
    tmp_path: Path, small_data: Path, capsys
) -> None:
    assert train_small(small_data, tmp_path / "m.npz", "--learning-rate", "1e36") == 1
    assert "lower learning rate" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


def test_bad_flag_values_exit_with_status_2(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--epochs", "many"])
    assert exit_info.value.code == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_invalid_setting_is_a_one_line_error(capsys) -> None:
    assert main(["train", "--batch-size", "0", "--quiet"]) == 1
    assert "invalid batch size: 0" in capsys.readouterr().err


def test_help_lists_every_flag_with_its_default(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--epochs", "--batch-size", "--learning-rate", "--hidden", "--seed", "--output"):
        assert flag in text
    assert "(default: 0.5)" in text
