"""Figures of the data and of a trained network, each written as one PNG.

matplotlib is imported inside the functions that draw, and only its non-interactive Agg canvas
is used (no pyplot, no window, no global state), so importing digitnet for training or
prediction never loads it. Each figure has a fixed size in inches and is saved at DPI dots per
inch without cropping, so its pixel size is known in advance: width * DPI by height * DPI.
Files are written to a temporary name and renamed into place, never left half-written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from digitnet.files import write_atomically

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
CELL_WIDTH = 1.0  # inches per image in a grid of digits
CELL_HEIGHT = 1.3  # room for the image and a two-line caption under it
WEIGHT_CELL = 0.6  # inches per hidden unit in the weight mosaic
MIN_WEIGHT_WIDTH = 6.0
MAX_WEIGHT_IMAGES = 256
RIGHT_COLOR = "#2a7ab0"
WRONG_COLOR = "#d1495b"


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of width x height inches on an Agg canvas, laid out automatically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write figure as a PNG of exactly its size in pixels, atomically; return the path."""
    path = Path(path)
    write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=DPI))
    return path


def grid_shape(count: int, columns: int) -> tuple[int, int]:
    """Rows and columns of a grid holding count cells, at most columns wide."""
    columns = max(1, min(columns, count))
    return math.ceil(count / columns), columns


def draw_digit_grid(
    images: NDArray[np.uint8],
    captions: Sequence[str],
    path: str | Path,
    columns: int = 10,
    title: str | None = None,
    caption_colors: Sequence[str] | None = None,
) -> Path:
    """Grayscale digits (N, rows, cols), ink dark on white, each with a caption underneath.

    The figure is columns * CELL_WIDTH by rows * CELL_HEIGHT inches, plus 0.4 inch for a title.
    """
    if len(images) == 0 or len(images) != len(captions):
        raise ValueError(f"need one caption per image, got {len(images)} and {len(captions)}")
    rows, columns = grid_shape(len(images), columns)
    height = rows * CELL_HEIGHT + (0.4 if title else 0.0)
    figure = new_figure(columns * CELL_WIDTH, height)
    if title:
        figure.suptitle(title, fontsize=12)
    axes = figure.subplots(rows, columns, squeeze=False)
    colors = caption_colors or ["black"] * len(images)
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index < len(images):
            ax.imshow(images[index], cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(captions[index], fontsize=9, color=colors[index], pad=3)
    return save_figure(figure, path)


def draw_learning_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Training loss and validation accuracy per epoch, side by side (10 x 4 inches)."""
    from matplotlib.ticker import MaxNLocator

    epochs = [int(row["epoch"]) for row in history]
    figure = new_figure(10, 4)
    loss_ax, accuracy_ax = figure.subplots(1, 2)
    loss_ax.plot(epochs, [row["train_loss"] for row in history], "o-", color=RIGHT_COLOR)
    label_axes(loss_ax, "training loss per epoch", "epoch", "mean cross-entropy (eq. 6)")
    measured = [(e, row["val_accuracy"]) for e, row in zip(epochs, history, strict=True)]
    measured = [(e, 100 * a) for e, a in measured if a is not None]
    if measured:
        accuracy_ax.plot(*zip(*measured, strict=True), "o-", color="#3b8b5a")
    else:
        accuracy_ax.text(
            0.5, 0.5, "no validation images", ha="center", transform=accuracy_ax.transAxes
        )
    label_axes(accuracy_ax, "validation accuracy per epoch", "epoch", "accuracy (%)")
    for ax in (loss_ax, accuracy_ax):
        # NOTE: min_n_ticks=1, or with one epoch the locator falls back to fractions of it
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
    return save_figure(figure, path)


def label_axes(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=12)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def draw_confusion_matrix(confusion: NDArray[np.int64], path: str | Path) -> Path:
    """Counts of true digit (rows) against predicted digit (columns), 7.5 x 6.5 inches.

    The colour is the fraction of the row on a log scale, so that a single mistake shows next to
    a diagonal of a thousand; cells with no image stay white.
    """
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import PercentFormatter

    totals = np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fractions = np.ma.masked_equal(confusion / totals, 0.0)
    figure = new_figure(7.5, 6.5)
    ax = figure.subplots()
    cmap = colormaps["Blues"].with_extremes(bad="white")
    image = ax.imshow(fractions, cmap=cmap, norm=LogNorm(vmin=3e-4, vmax=1.0))
    annotate_counts(ax, confusion, fractions)
    classes = range(confusion.shape[0])
    ax.set_xticks(classes)
    ax.set_yticks(classes)
    ax.set_xticks(np.arange(-0.5, confusion.shape[1]), minor=True)
    ax.set_yticks(np.arange(-0.5, confusion.shape[0]), minor=True)
    ax.grid(which="minor", color="#dddddd", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    label_axes(ax, "confusion matrix (test images)", "predicted digit", "true digit")
    bar = figure.colorbar(image, ax=ax, shrink=0.85, format=PercentFormatter(xmax=1, decimals=1))
    bar.set_label("share of the true digit's images (log scale)")
    return save_figure(figure, path)


def annotate_counts(ax: Axes, confusion: NDArray[np.int64], fractions: Any) -> None:
    """Write each non-zero count in its cell, white on dark cells."""
    for (row, column), count in np.ndenumerate(confusion):
        if count:
            color = "white" if fractions[row, column] > 0.1 else "black"
            ax.text(column, row, str(count), ha="center", va="center", fontsize=8, color=color)


def draw_per_class_accuracy(confusion: NDArray[np.int64], path: str | Path) -> Path:
    """Accuracy of each digit as a dot with its value, and the overall accuracy (8 x 4 inches).

    Dots rather than bars: the axis is zoomed to where the accuracies lie, and a bar that does
    not start at zero would exaggerate the differences.
    """
    totals = confusion.sum(axis=1)
    accuracy = np.where(totals > 0, 100 * np.diag(confusion) / np.maximum(totals, 1), np.nan)
    overall = 100 * np.trace(confusion) / max(int(totals.sum()), 1)
    digits = np.arange(len(accuracy))
    figure = new_figure(8, 4)
    ax = figure.subplots()
    ax.vlines(digits, overall, accuracy, color="#999999", linewidth=1)
    ax.plot(digits, accuracy, "o", color=RIGHT_COLOR, markersize=8)
    ax.axhline(overall, color="#555555", linestyle="--", linewidth=1)
    ax.text(len(digits) - 0.45, overall, f"all: {overall:.1f}%", va="bottom", fontsize=9)
    for digit, value in zip(digits, accuracy, strict=True):
        if np.isnan(value):
            continue  # a digit without test images has no accuracy; its tick says n=0
        above = value >= overall
        ax.annotate(
            f"{value:.1f}",
            (digit, value),
            textcoords="offset points",
            xytext=(0, 8 if above else -14),
            ha="center",
            fontsize=9,
        )
    ax.set_xticks(digits, [f"{d}\nn={n}" for d, n in zip(digits, totals, strict=True)])
    low, high = float(np.nanmin(accuracy, initial=100.0)), float(np.nanmax(accuracy, initial=0.0))
    spread = max(high - low, 1.0)
    ax.set_ylim(low - 0.25 * spread, min(high + 0.25 * spread, 100.5))
    ax.set_xlim(-0.6, len(digits) + 0.6)
    label_axes(ax, "accuracy per digit (test images)", "true digit", "accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(figure, path)


def draw_hidden_weights(W1: NDArray[np.floating], path: str | Path, columns: int = 16) -> Path:
    """Each row of W1 (one hidden unit's 784 incoming weights) drawn as a 28 x 28 image.

    Red is a positive weight (ink there excites the unit), blue a negative one. Each unit is
    scaled to its own largest |w| with white at zero, because units differ in overall scale.
    At most MAX_WEIGHT_IMAGES units are drawn. The figure is columns * WEIGHT_CELL inches wide
    (at least MIN_WEIGHT_WIDTH, room for the title) and rows * WEIGHT_CELL + 0.6 high.
    """
    units = W1[:MAX_WEIGHT_IMAGES].reshape(-1, 28, 28)
    rows, columns = grid_shape(len(units), columns)
    figure = new_figure(max(columns * WEIGHT_CELL, MIN_WEIGHT_WIDTH), rows * WEIGHT_CELL + 0.6)
    shown = f"the first {len(units)} of {len(W1)}" if len(W1) > len(units) else f"all {len(W1)}"
    figure.suptitle(
        f"incoming weights of {shown} hidden units (red +, blue -, white 0)", fontsize=11
    )
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index < len(units):
            limit = float(np.abs(units[index]).max()) or 1.0
            ax.imshow(units[index], cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    return save_figure(figure, path)


def draw_confidence_histogram(
    right: NDArray[np.floating], wrong: NDArray[np.floating], path: str | Path
) -> Path:
    """How sure the network was of its right and of its wrong answers (8 x 4.5 inches).

    Each group is normalized to fractions of its own size, since wrong answers are far fewer.
    """
    bins = [step / 20 for step in range(21)]
    figure = new_figure(8, 4.5)
    ax = figure.subplots()
    for values, color, name in ((right, RIGHT_COLOR, "right"), (wrong, WRONG_COLOR, "wrong")):
        if len(values):
            weights = np.full(len(values), 100 / len(values))
            ax.hist(
                values,
                bins=bins,
                weights=weights,
                color=color,
                alpha=0.55,
                edgecolor=color,
                label=f"{name} answers (n={len(values)})",
            )
    label_axes(
        ax,
        "confidence of right and wrong answers (test images)",
        "confidence: output of the predicted digit's unit",
        "share of the group's answers (%)",
    )
    ax.set_xlim(0, 1)
    ax.legend(loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(figure, path)
