"""`digitnet show` and the figure functions: readable PNGs of the promised size and content."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from PIL import Image

from conftest import small_dataset, write_dataset
from digitnet import plots
from digitnet.cli import main
from digitnet.data import Dataset

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100  # pixels per inch the figures are documented to use


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory, mnist: Dataset) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"), small_dataset(mnist, 300, 120))


def read_png(path: Path) -> np.ndarray:
    """The pixels of a PNG, after Pillow has checked that it decodes."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def grid_pixels(count: int, columns: int, title: bool) -> tuple[int, int]:
    """(height, width) in pixels of a digit grid: 1 x 1.3 inches per cell, 0.4 for a title."""
    rows = math.ceil(count / columns)
    return round((rows * 1.3 + (0.4 if title else 0)) * DPI), columns * DPI


def test_show_writes_a_grid_of_the_expected_size(
    tmp_path: Path, small_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "digits.png"
    argv = ["show", "--data", str(small_data), "--split", "test", "--count", "12"]
    assert main([*argv, "--columns", "5", "--output", str(output)]) == 0
    assert capsys.readouterr().out.strip() == str(output)
    assert read_png(output).shape[:2] == grid_pixels(12, 5, title=True)


def test_show_captions_are_the_labels_of_the_drawn_images(
    tmp_path: Path, small_data: Path, mnist: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: dict[str, Any] = {}

    def record(
        images: np.ndarray,
        captions: Sequence[str],
        path: str | Path,
        columns: int,
        title: str | None,
    ) -> Path:
        drawn.update(images=images, captions=captions)
        return Path(path)

    monkeypatch.setattr(plots, "draw_digit_grid", record)
    argv = ["show", "--data", str(small_data), "--count", "25", "--seed", "7"]
    assert main([*argv, "--output", str(tmp_path / "d.png")]) == 0
    train = small_dataset(mnist, 300, 120)
    for image, caption in zip(drawn["images"], drawn["captions"], strict=True):
        index, label = (int(part) for part in caption.lstrip("#").split(": "))
        assert np.array_equal(image, train.train_images[index])
        assert label == train.train_labels[index]
    assert len(set(drawn["captions"])) == 25


def test_show_is_reproducible_and_the_seed_changes_the_choice(
    tmp_path: Path, small_data: Path
) -> None:
    paths = [tmp_path / f"{name}.png" for name in ("a", "b", "c")]
    for path, seed in zip(paths, ("1", "1", "2"), strict=True):
        argv = ["show", "--data", str(small_data), "--count", "10", "--seed", seed]
        assert main([*argv, "--output", str(path)]) == 0
    first, again, other = (read_png(path) for path in paths)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--count", "0"], "--count must be between 1 and 400, got 0"),
        (["--count", "121", "--split", "test"], "--count 121 is more than the 120 test images"),
        (["--columns", "0"], "--columns must be at least 1, got 0"),
        (["--seed", "-1"], "--seed must be zero or positive, got -1"),
    ],
)
def test_show_rejects_impossible_flag_values_as_one_line_usage_errors(
    tmp_path: Path,
    small_data: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    output = tmp_path / "d.png"
    assert main(["show", "--data", str(small_data), *flags, "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("digitnet: error: ") and message in err
    assert not output.exists()


def test_show_into_a_missing_folder_fails_without_leaving_files(
    tmp_path: Path, small_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "nowhere" / "d.png"
    assert main(["show", "--data", str(small_data), "--output", str(output)]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_learning_curves_allow_epochs_without_validation(tmp_path: Path) -> None:
    history = [
        {"epoch": 1, "train_loss": 0.9, "val_accuracy": None, "seconds": 1.0},
        {"epoch": 2, "train_loss": 0.5, "val_accuracy": None, "seconds": 1.0},
    ]
    path = plots.draw_learning_curves(history, tmp_path / "curves.png")
    assert read_png(path).shape[:2] == (400, 1000)


@pytest.mark.parametrize("count", [1, 2, 20])
def test_learning_curves_mark_whole_epochs_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    history = [
        {"epoch": e, "train_loss": 1.0 / e, "val_accuracy": 0.9, "seconds": 1.0}
        for e in range(1, count + 1)
    ]
    drawn: list[Figure] = []
    save = plots.save_figure

    def record(figure: Figure, path: str | Path) -> Path:
        drawn.append(figure)
        return save(figure, path)

    monkeypatch.setattr(plots, "save_figure", record)
    plots.draw_learning_curves(history, tmp_path / "curves.png")

    for ax in drawn[0].axes:
        low, high = ax.get_xlim()
        shown = [tick for tick in ax.get_xticks() if low <= tick <= high]
        assert shown, "no epoch is marked"
        assert all(float(tick).is_integer() for tick in shown), shown
        assert low <= 1 and high >= count


def test_hidden_weights_draw_each_unit_where_its_weights_are(tmp_path: Path) -> None:
    W1 = np.zeros((3, 784))
    W1[0, 0] = 1.0  # unit 0 likes only the top-left pixel: one red corner, the rest white
    W1[1] = -1.0  # unit 1 dislikes every pixel: all blue
    pixels = read_png(plots.draw_hidden_weights(W1, tmp_path / "w.png", columns=3)).astype(int)
    assert pixels.shape[:2] == (round((0.6 + 0.6) * DPI), 6 * DPI)  # 6 inches at least
    red = pixels[..., 0] > pixels[..., 2] + 60
    blue = pixels[..., 2] > pixels[..., 0] + 60
    columns, rows = np.flatnonzero(blue.any(axis=0)), np.flatnonzero(blue.any(axis=1))
    assert 40 < columns.size < 1.2 * DPI and abs(columns.size - rows.size) <= 2, "one square"
    red_columns = np.flatnonzero(red.any(axis=0))
    assert red_columns.size and red_columns.max() < columns.min(), "the red pixel is left of it"
    assert red.sum() < blue.sum() / 100


def test_importing_the_command_line_does_not_load_matplotlib() -> None:
    code = (
        "import sys, digitnet.cli, digitnet.report, digitnet.plots; "
        "print('matplotlib' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
