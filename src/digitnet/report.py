"""The report on a trained model: its figures as PNG files and one self-contained HTML page.

analyse() measures the model on the test images once; write_report() draws every figure from
those numbers, stores the numbers in report.json and embeds the figures in index.html as base64
data URIs, so the page needs no other file and opens offline.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from digitnet import plots
from digitnet.data import scale_pixels
from digitnet.files import write_atomically
from digitnet.network import NUM_CLASSES, Network

CHUNK = 10_000
MAX_ERRORS_SHOWN = 60


@dataclass
class Analysis:
    """The model's answers on a labelled set of images.

    confidence is the output of the predicted digit's unit; misclassified lists the indices of
    the wrong answers, most confident first (ties in index order).
    """

    labels: NDArray[np.int64]
    predictions: NDArray[np.int64]
    confidence: NDArray[np.float64]
    confusion: NDArray[np.int64]
    misclassified: NDArray[np.int64]

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels)) if self.labels.size else 0.0

    @property
    def correct(self) -> NDArray[np.bool_]:
        correct: NDArray[np.bool_] = self.predictions == self.labels
        return correct


@dataclass
class Section:
    """One section of the report: an anchor, a heading, a PNG and what it shows."""

    anchor: str
    heading: str
    path: Path
    caption: str


def analyse(network: Network, images: NDArray[np.uint8], labels: NDArray[np.integer]) -> Analysis:
    """Predictions, confidences, confusion matrix and sorted mistakes on images (N, 28, 28)."""
    outputs = [
        network.predict_proba(scale_pixels(images[start : start + CHUNK]))
        for start in range(0, len(images), CHUNK)
    ]
    proba = np.concatenate(outputs) if outputs else np.zeros((0, NUM_CLASSES))
    predictions = np.argmax(proba, axis=1).astype(np.int64)
    confidence = np.max(proba, axis=1, initial=0.0).astype(np.float64)
    truth = labels.astype(np.int64)
    cells = np.bincount(truth * NUM_CLASSES + predictions, minlength=NUM_CLASSES**2)
    wrong = np.flatnonzero(predictions != truth)
    order = np.argsort(-confidence[wrong], kind="stable")
    return Analysis(
        labels=truth,
        predictions=predictions,
        confidence=confidence,
        confusion=cells.reshape(NUM_CLASSES, NUM_CLASSES).astype(np.int64),
        misclassified=wrong[order].astype(np.int64),
    )


def write_report(
    network: Network,
    metadata: dict[str, Any],
    images: NDArray[np.uint8],
    labels: NDArray[np.integer],
    folder: str | Path,
    title: str,
) -> Path:
    """Write every figure, report.json and index.html into folder; return index.html's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    analysis = analyse(network, images, labels)
    drawn = [
        draw_curves(metadata, folder),
        draw_confusion(analysis, folder),
        draw_per_class(analysis, folder),
        draw_mistakes(images, analysis, folder),
        draw_weights(network, folder),
        draw_confidence(analysis, folder),
    ]
    sections = [section for section in drawn if section is not None]
    summary = summarize(analysis, metadata, title)
    write_text(folder / "report.json", json.dumps(summary, indent=2) + "\n")
    page = folder / "index.html"
    write_text(page, render_html(title, summary, sections))
    return page


def draw_curves(metadata: dict[str, Any], folder: Path) -> Section | None:
    history = metadata.get("history") or []
    if not history:
        return None
    return Section(
        "curves",
        "Learning curves",
        plots.draw_learning_curves(history, folder / "learning-curves.png"),
        "The mean training loss and the validation accuracy after each epoch, from the "
        "history stored in the model file.",
    )


def draw_confusion(analysis: Analysis, folder: Path) -> Section:
    return Section(
        "confusion",
        "Confusion matrix",
        plots.draw_confusion_matrix(analysis.confusion, folder / "confusion-matrix.png"),
        "Row: the true digit; column: the digit the network answered; each cell counts test "
        "images. The diagonal holds the right answers.",
    )


def draw_per_class(analysis: Analysis, folder: Path) -> Section:
    return Section(
        "per-class",
        "Accuracy per digit",
        plots.draw_per_class_accuracy(analysis.confusion, folder / "per-class-accuracy.png"),
        "The share of each digit's test images answered right; n is the number of images.",
    )


def draw_mistakes(images: NDArray[np.uint8], analysis: Analysis, folder: Path) -> Section | None:
    shown = analysis.misclassified[:MAX_ERRORS_SHOWN]
    if shown.size == 0:
        return None
    captions = [
        f"true {analysis.labels[i]}, said {analysis.predictions[i]}\n"
        f"{100 * analysis.confidence[i]:.1f}% sure"
        for i in shown
    ]
    title = f"the {shown.size} most confident of {analysis.misclassified.size} mistakes"
    path = plots.draw_digit_grid(images[shown], captions, folder / "misclassified.png", title=title)
    total = analysis.misclassified.size
    return Section(
        "mistakes",
        "Mistakes, most confident first",
        path,
        f"The {shown.size} most confident of the {total} wrong answers on the test images, "
        "each with its true label, the network's answer and the output of the answered unit.",
    )


def draw_weights(network: Network, folder: Path) -> Section:
    return Section(
        "weights",
        "What the hidden units look for",
        plots.draw_hidden_weights(network.params["W1"], folder / "hidden-weights.png"),
        "Each square is one row of W1: the 784 weights into one hidden unit, drawn where their "
        "pixels are. Ink on red pixels raises the unit's input, ink on blue pixels lowers it.",
    )


def draw_confidence(analysis: Analysis, folder: Path) -> Section:
    right = analysis.confidence[analysis.correct]
    wrong = analysis.confidence[~analysis.correct]
    return Section(
        "confidence",
        "Confidence of right and wrong answers",
        plots.draw_confidence_histogram(right, wrong, folder / "confidence.png"),
        "How high the answered digit's output was, for right and for wrong answers; each group "
        "is shown as shares of its own size.",
    )


def summarize(analysis: Analysis, metadata: dict[str, Any], title: str) -> dict[str, Any]:
    """The numbers behind the figures, as written to report.json."""
    totals = analysis.confusion.sum(axis=1)
    return {
        "model": title,
        "test_images": int(analysis.labels.size),
        "test_accuracy": analysis.accuracy,
        "per_class_accuracy": (np.diag(analysis.confusion) / np.maximum(totals, 1)).tolist(),
        "confusion_matrix": analysis.confusion.tolist(),
        "misclassified": [
            {
                "index": int(i),
                "true": int(analysis.labels[i]),
                "predicted": int(analysis.predictions[i]),
                "confidence": float(analysis.confidence[i]),
            }
            for i in analysis.misclassified
        ],
        "config": metadata.get("config", {}),
        "history": metadata.get("history", []),
    }


def write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(title: str, summary: dict[str, Any], sections: Sequence[Section]) -> str:
    """The report page: a summary, a table of contents and each figure, all in one file."""
    contents = "".join(
        f'<li><a href="#{s.anchor}">{html.escape(s.heading)}</a></li>' for s in sections
    )
    config = ", ".join(f"{k} {v}" for k, v in summary["config"].items()) or "not recorded"
    return PAGE.format(
        title=html.escape(title),
        accuracy=f"{100 * summary['test_accuracy']:.2f}%",
        images=summary["test_images"],
        errors=len(summary["misclassified"]),
        config=html.escape(config),
        contents=contents,
        sections="".join(render_section(section) for section in sections),
    )


def render_section(section: Section) -> str:
    return (
        f'<section id="{section.anchor}"><h2>{html.escape(section.heading)}</h2>'
        f"<p>{html.escape(section.caption)}</p>"
        f'<img src="{data_uri(section.path)}" alt="{html.escape(section.heading)}"></section>\n'
    )


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>digitnet report: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }}
img {{ max-width: 100%; height: auto; border: 1px solid #ddd; }}
section {{ margin-top: 2.5em; }}
dt {{ font-weight: 600; float: left; clear: left; width: 9em; }}
dd {{ margin-left: 10em; }}
</style>
</head>
<body>
<h1>digitnet report</h1>
<dl>
<dt>model</dt><dd>{title}</dd>
<dt>test accuracy</dt><dd>{accuracy} of {images} test images ({errors} wrong)</dd>
<dt>training</dt><dd>{config}</dd>
</dl>
<nav><ul>{contents}</ul></nav>
{sections}
</body>
</html>
"""
