"""Atomic writes: a failed or interrupted save leaves the previous file intact."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from digitnet.checkpoint import load_model, save_model
from digitnet.checkpoint import write_atomically as write_atomically_from_checkpoint
from digitnet.cli import main
from digitnet.commands import train as train_command
from digitnet.data import Dataset
from digitnet.files import WriteFailedError, check_writable, write_atomically
from digitnet.network import Network, init_network


class FullDisk:
    """A file handle that accepts `room` bytes and then fails like a full disk."""

    def __init__(self, handle: Any, room: int, failure: BaseException) -> None:
        self.handle, self.room, self.failure = handle, room, failure

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.handle.write(bytes(data[: self.room]))
            raise self.failure
        self.room -= len(data)
        return int(self.handle.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def __enter__(self) -> FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def fill_disk_after(
    monkeypatch: pytest.MonkeyPatch, room: int, failure: BaseException | None = None
) -> None:
    """Make the next temporary files accept room bytes, then fail (ENOSPC by default)."""
    real_fdopen = os.fdopen
    failure = failure or OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(
        "digitnet.files.os.fdopen",
        lambda fd, mode: FullDisk(real_fdopen(fd, mode), room, failure),
    )


@pytest.fixture
def network() -> Network:
    return init_network((784, 16, 10), np.random.default_rng(5))


def test_write_replaces_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    write_atomically(target, lambda handle: handle.write(b"new"))
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_written_files_follow_the_umask_not_the_private_temp_mode(tmp_path: Path) -> None:
    mask = os.umask(0o027)
    try:
        write_atomically(tmp_path / "out.bin", lambda handle: handle.write(b"x"))
    finally:
        os.umask(mask)
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o640


def test_a_full_disk_half_way_through_a_save_keeps_the_previous_model(
    tmp_path: Path, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_model(tmp_path / "model.npz", network, {"run": "first"})
    size = path.stat().st_size
    newer = init_network((784, 16, 10), np.random.default_rng(6))

    fill_disk_after(monkeypatch, size // 2)
    with pytest.raises(WriteFailedError) as failure:
        save_model(path, newer, {"run": "second"})

    assert str(failure.value) == (
        f"{path}: saving failed: no space left on device; the previous file is unchanged"
    )
    kept, metadata = load_model(path)
    assert metadata["run"] == "first"
    assert np.array_equal(kept.params["W1"], network.params["W1"])
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_a_failed_first_save_says_nothing_was_written(
    tmp_path: Path, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_disk_after(monkeypatch, 100)
    with pytest.raises(WriteFailedError, match=r"no space left on device; nothing was written"):
        save_model(tmp_path / "model.npz", network, {})
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_a_save_keeps_the_previous_file(
    tmp_path: Path, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_model(tmp_path / "model.npz", network, {"run": "first"})
    fill_disk_after(monkeypatch, 1000, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        save_model(path, network, {"run": "second"})
    assert load_model(path)[1]["run"] == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_the_cli_reports_a_failed_save_in_one_line(
    tmp_path: Path,
    small_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "m.npz"
    argv = ["train", "--data", str(small_data), "--epochs", "1", "--validation-size", "100"]
    assert main([*argv, "--output", str(output), "--quiet"]) == 0
    before = output.read_bytes()

    real_save_model = save_model

    def save_model_on_a_full_disk(*args: Any, **kwargs: Any) -> Path:
        fill_disk_after(monkeypatch, 4096)
        return real_save_model(*args, **kwargs)

    monkeypatch.setattr(train_command, "save_model", save_model_on_a_full_disk)
    assert main([*argv, "--output", str(output), "--quiet", "--seed", "9"]) == 1

    assert capsys.readouterr().err == (
        f"digitnet: error: {output}: saving failed: no space left on device; "
        "the previous file is unchanged\n"
    )
    assert output.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.checkpoint.npz", "m.npz"]


def test_train_checks_the_output_folder_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def must_not_load(directory: object) -> None:
        raise AssertionError("the data was loaded before the output path was checked")

    monkeypatch.setattr("digitnet.commands.train.load_dataset", must_not_load)
    output = tmp_path / "missing" / "m.npz"
    assert main(["train", "--output", str(output)]) == 1
    assert capsys.readouterr().err == (
        f"digitnet: error: {output}: cannot write there: folder {output.parent} does not exist\n"
    )


def test_a_folder_is_not_a_valid_output_file(tmp_path: Path) -> None:
    with pytest.raises(WriteFailedError, match=r"is a folder, expected a file name"):
        check_writable(tmp_path)


def test_the_helper_stays_importable_from_checkpoint() -> None:
    assert write_atomically_from_checkpoint is write_atomically


def fail_writes_to(monkeypatch: pytest.MonkeyPatch, name: str, room: int = 200) -> None:
    """Make saves of files called name fail like a full disk after room bytes; others succeed."""
    real_mkstemp, real_fdopen = tempfile.mkstemp, os.fdopen
    doomed: set[int] = set()

    def mkstemp(**kwargs: Any) -> tuple[int, str]:
        fd, temp_name = real_mkstemp(**kwargs)
        if kwargs["prefix"] == f".{name}.":
            doomed.add(fd)
        return fd, temp_name

    def fdopen(fd: int, mode: str) -> Any:
        handle = real_fdopen(fd, mode)
        if fd not in doomed:
            return handle
        failure = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return FullDisk(handle, room, failure)

    monkeypatch.setattr("digitnet.files.tempfile.mkstemp", mkstemp)
    monkeypatch.setattr("digitnet.files.os.fdopen", fdopen)


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_a_failed_show_keeps_the_previous_picture(
    tmp_path: Path,
    small_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "digits.png"
    argv = ["show", "--data", str(small_data), "--count", "4", "--output", str(output)]
    assert main(argv) == 0
    before = output.read_bytes()

    fail_writes_to(monkeypatch, "digits.png")
    assert main([*argv, "--seed", "7"]) == 1

    assert capsys.readouterr().err.endswith(
        f"digitnet: error: {output}: saving failed: no space left on device; "
        "the previous file is unchanged\n"
    )
    assert output.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["digits.png"]


@pytest.mark.parametrize("failing", ["confusion-matrix.png", "report.json", "index.html"])
def test_a_failed_report_keeps_every_previous_file_whole(
    tmp_path: Path,
    small_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failing: str,
) -> None:
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    save_model(first, init_network((784, 16, 10), np.random.default_rng(1)), {})
    save_model(second, init_network((784, 16, 10), np.random.default_rng(2)), {})
    folder = tmp_path / "report"
    argv = ["--data", str(small_data), "-o", str(folder), "-q"]
    assert main(["report", str(first), *argv]) == 0
    before = contents(folder)

    fail_writes_to(monkeypatch, failing)
    assert main(["report", str(second), *argv]) == 1

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{folder / failing}: saving failed" in err
    after = contents(folder)
    assert sorted(after) == sorted(before)  # no temporary file left behind
    assert after[failing] == before[failing]
    assert any(after[name] != before[name] for name in after) == (failing != "confusion-matrix.png")
    assert_whole(folder)


def assert_whole(folder: Path) -> None:
    """Every file of a report folder is complete: PNGs decode, the JSON parses, the page ends."""
    for path in folder.iterdir():
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.load()
        elif path.suffix == ".json":
            json.loads(path.read_text())
        else:
            assert path.read_text().rstrip().endswith("</html>")


def test_a_failed_show_input_keeps_the_previous_picture(
    tmp_path: Path,
    mnist: Dataset,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for digit in (0, 1):
        Image.fromarray(mnist.test_images[digit]).save(tmp_path / f"d{digit}.png")
    folder = tmp_path / "inputs"
    assert main(["predict", str(tmp_path / "d0.png"), "--show-input", str(folder)]) == 0
    before = (folder / "d0.png").read_bytes()
    (tmp_path / "d1.png").replace(tmp_path / "d0.png")

    fail_writes_to(monkeypatch, "d0.png", room=20)
    assert main(["predict", str(tmp_path / "d0.png"), "--show-input", str(folder)]) == 1

    out, err = capsys.readouterr()
    assert out.splitlines()[-1].startswith(f"{tmp_path / 'd0.png'}: 2 (")
    assert err.endswith("the previous file is unchanged\n")
    assert (folder / "d0.png").read_bytes() == before
    assert [p.name for p in folder.iterdir()] == ["d0.png"]
