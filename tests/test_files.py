"""Atomic writes: a failed or interrupted save leaves the previous file intact."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from digitnet import files
from digitnet.checkpoint import load_model, save_model
from digitnet.checkpoint import write_atomically as write_atomically_from_checkpoint
from digitnet.cli import main
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
        files.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode), room, failure)
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
    tmp_path: Path, small_data: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    output = tmp_path / "m.npz"
    argv = ["train", "--data", str(small_data), "--epochs", "1", "--validation-size", "100"]
    assert main([*argv, "--output", str(output), "--quiet"]) == 0
    before = output.read_bytes()

    fill_disk_after(monkeypatch, 4096)
    assert main([*argv, "--output", str(output), "--quiet", "--seed", "9"]) == 1

    assert capsys.readouterr().err == (
        f"digitnet: error: {output}: saving failed: no space left on device; "
        "the previous file is unchanged\n"
    )
    assert output.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_train_checks_the_output_folder_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
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
