"""Choosing and applying the number of BLAS threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info

from conftest import small_dataset, write_dataset
from digitnet.cli import main
from digitnet.data import Dataset
from digitnet.threads import (
    THREADS_ENV,
    TWO_THREADS_FROM_BATCH,
    TWO_THREADS_FROM_CORES,
    blas_threads,
    choose_threads,
    threads_for_batch,
)
from digitnet.train import TrainConfig, fit


def blas_thread_counts() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_without_a_request_the_count_follows_the_batch_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    for batch_size in (1, 32, 256, 10_000):
        assert choose_threads(batch_size) == threads_for_batch(batch_size)


def test_the_rule_never_asks_for_more_threads_than_cores() -> None:
    cores = os.cpu_count() or 1
    assert all(1 <= threads_for_batch(size) <= cores for size in (1, 32, 128, 256, 60_000))


def test_a_second_thread_only_for_large_batches_with_cores_to_spare(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert threads_for_batch(TWO_THREADS_FROM_BATCH - 1) == 1
    assert threads_for_batch(TWO_THREADS_FROM_BATCH) == 2
    monkeypatch.setattr(os, "cpu_count", lambda: TWO_THREADS_FROM_CORES - 1)
    assert threads_for_batch(10 * TWO_THREADS_FROM_BATCH) == 1


def test_the_environment_variable_overrides_the_batch_size_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(THREADS_ENV, " 3 ")
    assert choose_threads(32) == 3


def test_an_explicit_request_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "3")
    assert choose_threads(32, requested=2) == 2


@pytest.mark.parametrize("text", ["two", "1.5", "0"])
def test_a_variable_that_is_not_a_count_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv(THREADS_ENV, text)
    with pytest.raises(ValueError, match=f"{THREADS_ENV} must be a whole number.*{text}"):
        choose_threads(32)


def test_fewer_than_one_thread_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1, got 0"):
        choose_threads(32, requested=0)


def test_blas_threads_limits_the_pool_inside_the_block_only() -> None:
    before = blas_thread_counts()
    for count in (1, 2):
        with blas_threads(count):
            assert blas_thread_counts() == {count}
    assert blas_thread_counts() == before


@pytest.mark.parametrize("threads", [1, 2])
def test_fit_trains_on_the_requested_thread_count(mnist: Dataset, threads: int) -> None:
    seen: set[int] = set()

    def on_batch(count: int) -> None:
        seen.update(blas_thread_counts())

    config = TrainConfig(epochs=1, validation_size=100)
    fit(config, small_dataset(mnist, 300, 50), on_batch=on_batch, threads=threads)
    assert seen == {threads}


def test_train_command_takes_a_thread_count(
    tmp_path: Path, mnist: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_dataset(tmp_path / "data", small_dataset(mnist, 300, 100))
    argv = ["train", "--data", str(data), "--epochs", "1", "--validation-size", "100"]
    assert main([*argv, "--threads", "1", "--output", str(tmp_path / "m.npz")]) == 0
    assert "BLAS threads: 1" in capsys.readouterr().err


def test_train_command_reports_a_bad_thread_count_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--threads", "0", "--output", str(tmp_path / "m.npz")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "threads must be at least 1, got 0" in err
    assert not (tmp_path / "m.npz").exists()
