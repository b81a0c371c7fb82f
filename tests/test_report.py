"""`digitnet report`: the figures exist at their size, the page is self-contained, and the
numbers behind the figures equal an independent count on the test images."""

from __future__ import annotations

import base64
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import small_dataset, write_dataset
from digitnet.checkpoint import load_model, save_model
from digitnet.cli import main
from digitnet.data import Dataset, scale_pixels
from digitnet.network import init_network
from digitnet.report import MAX_ERRORS_SHOWN, analyse

HIDDEN = 24
FIGURE_PIXELS = {  # (height, width): the documented inches at 100 pixels per inch
    "learning-curves.png": (400, 1000),
    "confusion-matrix.png": (650, 750),
    "per-class-accuracy.png": (400, 800),
    "confidence.png": (450, 800),
    "hidden-weights.png": (round((2 * 0.6 + 0.6) * 100), round(16 * 0.6 * 100)),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, mnist: Dataset) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"), small_dataset(mnist, 1500, 400))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.npz"
    argv = ["train", "--data", str(data_dir), "--epochs", "2", "--hidden", str(HIDDEN)]
    assert main([*argv, "--validation-size", "300", "--output", str(path), "--quiet"]) == 0
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, data_dir: Path, model: Path) -> Path:
    folder = tmp_path_factory.mktemp("report") / "out"
    assert main(["report", str(model), "--data", str(data_dir), "-o", str(folder), "-q"]) == 0
    return folder


class Links(HTMLParser):
    """Every src and href attribute of a page, the ids it defines and the tags it uses."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.ids: set[str] = set()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "action", "poster"):
                self.references.append(value or "")
            if name == "id" and value:
                self.ids.add(value)


def parse_page(folder: Path) -> Links:
    links = Links()
    links.feed((folder / "index.html").read_text(encoding="utf-8"))
    return links


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.height, image.width


def independent_answers(model: Path, mnist: Dataset) -> tuple[np.ndarray, ...]:
    """Labels, predictions and confidences on the 400 test images, computed in the test."""
    network, _ = load_model(model)
    labels = mnist.test_labels[:400].astype(np.int64)
    proba = network.predict_proba(scale_pixels(mnist.test_images[:400]))
    return labels, network.predict(scale_pixels(mnist.test_images[:400])), proba.max(axis=1)


def test_report_prints_the_page_and_writes_each_figure_at_its_size(
    tmp_path: Path, data_dir: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "r"
    assert main(["report", str(model), "--data", str(data_dir), "--output", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(folder / "index.html")
    assert "measuring" in err and "400 test images" in err
    for name, pixels in FIGURE_PIXELS.items():
        assert png_size(folder / name) == pixels, name
    errors = len(json.loads((folder / "report.json").read_text())["misclassified"])
    rows = math.ceil(min(errors, MAX_ERRORS_SHOWN) / 10)
    assert png_size(folder / "misclassified.png") == (round(rows * 130 + 40), 1000)


def test_report_page_references_nothing_outside_itself(report: Path) -> None:
    links = parse_page(report)
    page = (report / "index.html").read_text(encoding="utf-8")
    assert links.references
    for reference in links.references:
        assert reference.startswith(("data:image/png;base64,", "#")), reference[:60]
        if reference.startswith("#"):
            assert reference[1:] in links.ids, f"anchor {reference} leads nowhere"
    assert not {"link", "script", "iframe", "object", "embed"} & set(links.tags)
    assert "url(" not in page and "@import" not in page


def test_report_page_embeds_exactly_the_png_files(report: Path) -> None:
    embedded = [
        base64.b64decode(ref.split(",", 1)[1])
        for ref in parse_page(report).references
        if ref.startswith("data:")
    ]
    files = sorted(path.read_bytes() for path in report.glob("*.png"))
    assert len(files) == 6 and sorted(embedded) == files


def test_report_confusion_matrix_equals_an_independent_count(
    report: Path, model: Path, mnist: Dataset
) -> None:
    labels, predictions, _ = independent_answers(model, mnist)
    expected = np.zeros((10, 10), dtype=int)
    np.add.at(expected, (labels, predictions), 1)
    summary = json.loads((report / "report.json").read_text())
    assert np.array_equal(summary["confusion_matrix"], expected)
    assert summary["test_accuracy"] == pytest.approx(np.mean(labels == predictions))
    per_class = [np.mean(predictions[labels == d] == d) for d in range(10)]
    assert np.allclose(summary["per_class_accuracy"], per_class)
    page = (report / "index.html").read_text(encoding="utf-8")
    assert f"{100 * np.mean(labels == predictions):.2f}% of 400 test images" in page


def test_report_lists_exactly_the_wrong_answers_most_confident_first(
    report: Path, model: Path, mnist: Dataset
) -> None:
    labels, predictions, confidence = independent_answers(model, mnist)
    listed = json.loads((report / "report.json").read_text())["misclassified"]
    wrong = set(np.flatnonzero(labels != predictions).tolist())
    assert wrong and {item["index"] for item in listed} == wrong
    assert len(listed) == len(wrong)
    shown = [item["confidence"] for item in listed]
    assert shown == sorted(shown, reverse=True)
    for item in listed:
        assert item["true"] == labels[item["index"]] != item["predicted"]
        assert item["predicted"] == predictions[item["index"]]
        assert item["confidence"] == pytest.approx(confidence[item["index"]], rel=1e-6)


def test_report_learning_curves_come_from_the_model_history(report: Path, model: Path) -> None:
    _, metadata = load_model(model)
    summary = json.loads((report / "report.json").read_text())
    assert summary["history"] == metadata["history"] and len(summary["history"]) == 2
    assert summary["config"]["hidden"] == [HIDDEN]


def test_analyse_sorts_ties_by_index_and_counts_every_image() -> None:
    network = init_network((784, 5, 10), np.random.default_rng(0))
    images = np.zeros((6, 28, 28), dtype=np.uint8)  # equal images: equal, tied confidences
    labels = np.array([0, 1, 2, 3, 4, 5])
    analysis = analyse(network, images, labels)
    predicted = int(analysis.predictions[0])
    assert np.all(analysis.predictions == predicted)
    assert analysis.misclassified.tolist() == [i for i in range(6) if labels[i] != predicted]
    assert analysis.confusion.sum() == 6 and analysis.confusion[:, predicted].sum() == 6


def test_report_on_a_model_without_history_skips_the_learning_curves(
    tmp_path: Path, data_dir: Path
) -> None:
    model = save_model(
        tmp_path / "bare.npz", init_network((784, 8, 10), np.random.default_rng(1)), {}
    )
    folder = tmp_path / "r"
    assert main(["report", str(model), "--data", str(data_dir), "-o", str(folder), "-q"]) == 0
    assert not (folder / "learning-curves.png").exists()
    assert "#curves" not in parse_page(folder).references
    assert len(list(folder.glob("*.png"))) == 5


def test_report_on_a_missing_model_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "r"
    assert main(["report", str(tmp_path / "none.npz"), "-o", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.npz" in err
    assert not folder.exists()
