"""Prediction on users' files: the bundled model, `digitnet predict` and the Python API."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import digitnet
from conftest import write_idx
from digitnet.api import Model, normalize
from digitnet.checkpoint import load_model as load_checkpoint
from digitnet.checkpoint import save_model
from digitnet.cli import main
from digitnet.commands.common import bundled_model_path
from digitnet.commands.predict import read_entries
from digitnet.data import Dataset, scale_pixels
from digitnet.network import Network, init_network
from digitnet.preprocess import ImageError, NoDigitError
from digitnet.train import TrainConfig
from photos import save_photos, write_bad_files

PHOTO_COUNT = 300


@pytest.fixture(scope="module")
def model() -> Model:
    return digitnet.load_model()


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory: pytest.TempPathFactory, mnist: Dataset) -> list[Path]:
    """The first five MNIST test digits saved unchanged as 28x28 PNG files."""
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for index, image in enumerate(mnist.test_images[:5]):
        paths.append(folder / f"digit{index}.png")
        Image.fromarray(image).save(paths[-1])
    return paths


def predict_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    status = main(["predict", "--json", *argv])
    out, err = capsys.readouterr()
    return status, json.loads(out), err


# ---- the bundled model ---------------------------------------------------------------------


def test_bundled_model_was_trained_with_the_default_settings() -> None:
    network, metadata = load_checkpoint(bundled_model_path())
    assert metadata["config"] == TrainConfig().to_dict()
    assert network.sizes == TrainConfig().sizes
    assert metadata["test_accuracy"] >= 0.98
    assert bundled_model_path().stat().st_size < 1_000_000


def test_load_model_gives_the_bundled_network(model: Model) -> None:
    assert isinstance(model.network, Network)
    assert model.path == bundled_model_path()
    assert model.metadata["format_version"] == 1


# ---- accuracy on photo-like digits ---------------------------------------------------------


def test_photo_like_digits_are_read_within_two_points_of_mnist(
    tmp_path: Path, mnist: Dataset, model: Model, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(2024)
    chosen = rng.choice(len(mnist.test_labels), PHOTO_COUNT, replace=False)
    digits, labels = mnist.test_images[chosen], mnist.test_labels[chosen]
    paths = save_photos(digits, tmp_path, rng)
    assert {path.suffix for path in paths} == {".png", ".jpg"}

    status, summary, _ = predict_json(capsys, *map(str, paths))
    predicted = np.array([result["digit"] for result in summary["results"]])
    photo_accuracy = float(np.mean(predicted == labels))
    mnist_accuracy = float(np.mean(model.network.predict(scale_pixels(digits)) == labels))
    assert status == 0
    assert photo_accuracy >= mnist_accuracy - 0.02, (photo_accuracy, mnist_accuracy)


def shifted(image: np.ndarray, down: int, right: int) -> np.ndarray:
    """Image moved by whole pixels on a black canvas of the same size; what leaves is lost."""
    pad = max(abs(down), abs(right))
    height, width = image.shape
    return np.pad(image, pad)[pad - down : pad - down + height, pad - right : pad - right + width]


def shrunk_into_corner(image: np.ndarray, side: int) -> np.ndarray:
    """The 28x28 image shrunk to side x side by area averaging, at the top left of a black 28x28."""
    small = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BOX))
    canvas = np.zeros_like(image)
    canvas[:side, :side] = small
    return canvas


def test_off_centre_and_small_digits_on_28x28_are_read_like_the_originals(
    mnist: Dataset, model: Model
) -> None:
    rng = np.random.default_rng(11)
    chosen = rng.choice(len(mnist.test_labels), 200, replace=False)
    digits, labels = mnist.test_images[chosen], mnist.test_labels[chosen]
    moves = rng.choice([-5, 5], size=(200, 2)).tolist()  # down and right, each +-5 pixels
    variants = {
        "shifted by 5 pixels": [shifted(d, *move) for d, move in zip(digits, moves, strict=True)],
        "a 10-pixel digit in the corner": [shrunk_into_corner(d, 14) for d in digits],
    }
    original = float(np.mean(model.predict(digits).labels == labels))
    for name, images in variants.items():
        accuracy = float(np.mean(model.predict(np.stack(images)).labels == labels))
        assert accuracy >= original - 0.03, (name, accuracy, original)


# ---- the same pixels give the same network input -------------------------------------------


def test_loader_and_predict_give_identical_network_input(
    tmp_path: Path, mnist: Dataset, digit_files: list[Path]
) -> None:
    loader_input = scale_pixels(mnist.test_images[:5]).reshape(5, 28, 28)
    idx = write_idx(tmp_path / "digits.idx", mnist.test_images[:5], 2051)
    np.save(tmp_path / "digits.npy", mnist.test_images[:5])
    from_png = [read_entries(str(path))[0].pixels for path in digit_files]
    from_idx = [entry.pixels for entry in read_entries(str(idx))]
    from_npy = [entry.pixels for entry in read_entries(str(tmp_path / "digits.npy"))]
    for inputs in (from_png, from_idx, from_npy):
        assert np.array_equal(np.stack([np.asarray(pixels) for pixels in inputs]), loader_input)


def test_predict_probabilities_are_the_normalized_network_outputs(
    mnist: Dataset, digit_files: list[Path], model: Model
) -> None:
    expected = normalize(model.network.predict_proba(scale_pixels(mnist.test_images[:5])))
    result = model.predict(digit_files)
    assert np.allclose(result.probabilities, expected, rtol=1e-5, atol=1e-7)
    assert np.allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert result.labels.tolist() == mnist.test_labels[:5].tolist()


def test_single_image_and_batch_of_one_give_the_same_probabilities(
    model: Model, digit_files: list[Path]
) -> None:
    path = digit_files[0]
    single = model.predict(path).probabilities
    image = Image.open(path)
    pixels = np.asarray(image)
    for same in (model.predict([path]), model.predict(image), model.predict(pixels[None])):
        assert np.array_equal(same.probabilities, single)
    in_batch = model.predict(digit_files).probabilities[0]
    assert np.allclose(in_batch, single[0], rtol=1e-5, atol=1e-7)


# ---- the Python API ------------------------------------------------------------------------


def test_api_accepts_paths_images_and_arrays_mixed(
    model: Model, mnist: Dataset, digit_files: list[Path]
) -> None:
    items = [str(digit_files[0]), Image.open(digit_files[1]), mnist.test_images[2]]
    assert model.predict(items).labels.tolist() == mnist.test_labels[:3].tolist()
    flat = mnist.test_images[:4].reshape(4, 784)
    assert model.predict(flat).labels.tolist() == mnist.test_labels[:4].tolist()


def test_api_raises_for_blank_images(model: Model) -> None:
    batch = np.zeros((3, 28, 28), dtype=np.uint8)
    with pytest.raises(NoDigitError, match="image 0 of the batch: no digit found"):
        model.predict(batch)
    with pytest.raises(ValueError, match="no images"):
        model.predict([])


def test_api_errors_name_the_item_they_are_about(
    model: Model, tmp_path: Path, digit_files: list[Path]
) -> None:
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    blank = str(tmp_path / "blank.png")
    with pytest.raises(NoDigitError, match=f"^{re.escape(blank)}: no digit found"):
        model.predict([str(digit_files[0]), blank])
    with pytest.raises(NoDigitError, match=f"^{re.escape(blank)}: no digit found"):
        model.predict(Path(blank))
    blank_array = np.zeros((28, 28), dtype=np.uint8)
    with pytest.raises(NoDigitError, match=r"^item 1: no digit found"):
        model.predict([Image.open(digit_files[0]), Image.open(blank)])
    with pytest.raises(NoDigitError, match=r"^item 2: no digit found"):
        model.predict([digit_files[0], digit_files[1], blank_array])
    with pytest.raises(ImageError, match=r"^item 1: not a supported image"):
        model.predict([digit_files[0].read_bytes(), b"not a picture"])


def test_importing_digitnet_does_not_import_numpy() -> None:
    code = "import sys, digitnet; print('numpy' in sys.modules, digitnet.load_model.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "load_model"], result.stderr


# ---- the command line ----------------------------------------------------------------------


def test_predict_prints_digit_probability_and_two_candidates(
    digit_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", str(digit_files[0]), str(digit_files[1])]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2 and err == ""
    assert lines[0].startswith(f"{digit_files[0]}: 7 (") and ", then " in lines[0]
    assert lines[1].startswith(f"{digit_files[1]}: 2 (") and lines[1].count("%") == 3


def test_predict_json_lists_candidates_best_first(
    digit_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, summary, _ = predict_json(capsys, *map(str, digit_files))
    assert status == 0 and summary["model"] == str(bundled_model_path())
    for result in summary["results"]:
        chances = [candidate["probability"] for candidate in result["candidates"]]
        assert len(chances) == 3 and chances == sorted(chances, reverse=True)
        assert result["candidates"][0]["digit"] == result["digit"]
        assert result["probability"] == chances[0]


def test_bad_files_get_one_line_each_while_the_others_are_answered(
    tmp_path: Path, mnist: Dataset, digit_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write_bad_files(tmp_path, mnist.test_images[0])
    argv = [str(digit_files[0]), *map(str, bad.values()), str(digit_files[1])]
    assert main(["predict", *argv]) == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2
    errors = err.splitlines()
    assert len(errors) == len(bad)
    expected = {
        "text": "not a supported image",
        "empty": "empty file",
        "truncated": "truncated",
        "directory": "is a directory",
        "bomb": "too large to decode safely",
        "blank": "no digit found",
    }
    for line, (kind, path) in zip(errors, bad.items(), strict=True):
        assert line.startswith(f"digitnet: error: {path}: ") and expected[kind] in line


def test_npy_and_idx_files_give_one_answer_per_image(
    tmp_path: Path, mnist: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    images = mnist.test_images[:4].copy()
    images[2] = 0
    np.save(tmp_path / "batch.npy", images)
    np.save(tmp_path / "flat.npy", images[:2].reshape(2, 784) / 255.0)
    np.save(tmp_path / "one.npy", images[0])
    write_idx(tmp_path / "images.idx.gz", images[:2], 2051, compress=True)
    names = ["batch.npy", "flat.npy", "one.npy", "images.idx.gz"]
    status, summary, err = predict_json(capsys, *(str(tmp_path / name) for name in names))
    files = [Path(result["file"]).name for result in summary["results"]]
    assert files == [
        *(f"batch.npy[{i}]" for i in range(4)),
        "flat.npy[0]",
        "flat.npy[1]",
        "one.npy",
        "images.idx.gz[0]",
        "images.idx.gz[1]",
    ]
    assert status == 1 and err.strip().endswith("batch.npy[2]: no digit found")
    answered = [result["digit"] for result in summary["results"] if "digit" in result]
    assert answered == [7, 2, 0, 7, 2, 7, 7, 2]


def test_a_batch_of_10000_images_is_ranked_in_one_sort_per_output(
    tmp_path: Path,
    mnist: Dataset,
    model: Model,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    idx = write_idx(tmp_path / "t10k.idx", mnist.test_images, 2051)
    probabilities = normalize(model.network.predict_proba(scale_pixels(mnist.test_images)))
    expected = np.argsort(-probabilities, axis=1, kind="stable")[:, :3]
    sorted_values = []
    real_argsort = np.argsort

    def counting_argsort(array: Any, *args: Any, **kwargs: Any) -> Any:
        sorted_values.append(np.size(array))
        return real_argsort(array, *args, **kwargs)

    monkeypatch.setattr(np, "argsort", counting_argsort)
    status, summary, _ = predict_json(capsys, str(idx))
    assert main(["predict", str(idx)]) == 0
    lines = capsys.readouterr().out.splitlines()
    monkeypatch.undo()

    from_json = [[c["digit"] for c in result["candidates"]] for result in summary["results"]]
    from_text = [[int(d) for d in re.findall(r" (\d) \(", line)] for line in lines]
    assert status == 0 and from_json == expected.tolist() and from_text == expected.tolist()
    assert sum(sorted_values) <= 2 * probabilities.size  # one sort of (N, 10) per output


def test_show_input_saves_what_the_network_saw(
    tmp_path: Path, mnist: Dataset, digit_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "pair.npy", mnist.test_images[:2])
    argv = [str(digit_files[0]), str(tmp_path / "pair.npy"), "--show-input", str(tmp_path / "in")]
    assert main(["predict", *argv]) == 0
    assert "saved 3 network inputs" in capsys.readouterr().err
    saved = sorted(path.name for path in (tmp_path / "in").iterdir())
    assert saved == ["digit0.png", "pair-0.png", "pair-1.png"]
    seen = np.asarray(Image.open(tmp_path / "in" / "pair-1.png"))
    assert np.array_equal(seen, mnist.test_images[1])


def test_model_flag_uses_the_named_model(
    tmp_path: Path, digit_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    network = init_network((784, 16, 10), np.random.default_rng(0))
    save_model(tmp_path / "tiny.npz", network, {})
    status, summary, _ = predict_json(
        capsys, "--model", str(tmp_path / "tiny.npz"), str(digit_files[0])
    )
    expected = normalize(network.predict_proba(read_images_of(digit_files[0])))
    assert status == 0 and summary["model"] == str(tmp_path / "tiny.npz")
    assert np.isclose(summary["results"][0]["probability"], expected.max(), rtol=1e-5)


def read_images_of(path: Path) -> np.ndarray:
    return scale_pixels(np.asarray(Image.open(path))[np.newaxis])


def test_missing_model_is_a_one_line_error(
    tmp_path: Path, digit_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "--model", str(tmp_path / "none.npz"), str(digit_files[0])]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.npz: no such model file" in err


def test_help_says_how_probabilities_are_made(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "sigmoid outputs divided by their sum" in text
    for flag in ("--json", "--model", "--show-input"):
        assert flag in text


def test_bad_npy_files_get_one_line_each(
    tmp_path: Path, mnist: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "garbage.npy").write_bytes(b"not numpy at all")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "wide.npy", mnist.test_images[:2].astype(np.float32))  # 0-255 floats
    np.save(tmp_path / "full.npy", mnist.test_images[:4])
    cut = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(cut[: len(cut) // 2])
    names = ["garbage.npy", "objects.npy", "wide.npy", "cut.npy"]
    assert main(["predict", *(str(tmp_path / name) for name in names)]) == 1
    errors = capsys.readouterr().err.splitlines()
    expected = [
        "not a .npy array file (no NumPy header)",
        "holds Python objects, which are refused",
        "float pixels must be within [0, 1] (divide 0-255 values by 255), got 0 to 255",
        "",
    ]
    assert len(errors) == len(names)
    for line, name, message in zip(errors, names, expected, strict=True):
        assert line.startswith(f"digitnet: error: {tmp_path / name}: {message}")


def test_evaluate_uses_the_bundled_model_when_none_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["evaluate", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    _, metadata = load_checkpoint(bundled_model_path())
    assert summary["model"] == str(bundled_model_path())
    assert summary["test_accuracy"] == metadata["test_accuracy"]


def test_flat_and_colour_npy_arrays_are_single_images(
    tmp_path: Path, mnist: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "flat.npy", mnist.test_images[0].reshape(784))
    colour = np.repeat(255 - np.kron(mnist.test_images[1], np.ones((4, 4), np.uint8)), 3)
    np.save(tmp_path / "colour.npy", colour.reshape(112, 112, 3))
    status, summary, _ = predict_json(
        capsys, str(tmp_path / "flat.npy"), str(tmp_path / "colour.npy")
    )
    assert status == 0
    assert [(Path(r["file"]).name, r["digit"]) for r in summary["results"]] == [
        ("flat.npy", 7),
        ("colour.npy", 2),
    ]


def test_answers_are_printed_even_when_show_input_cannot_write(
    tmp_path: Path, digit_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").write_text("a file where the folder should go")
    argv = ["predict", str(digit_files[0]), "--show-input", str(tmp_path / "taken")]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"{digit_files[0]}: 7 (")
    assert err.startswith("digitnet: error: ") and err.count("\n") == 1


def test_api_reads_the_bytes_of_an_image_file(model: Model, digit_files: list[Path]) -> None:
    content = digit_files[1].read_bytes()
    assert model.predict(content).labels.tolist() == [2]
    assert np.array_equal(
        model.predict(content).probabilities, model.predict(digit_files[1]).probabilities
    )


HEAVY_LIBRARIES = ("scipy", "matplotlib", "flask", "waitress")


def test_predict_on_an_mnist_like_file_imports_no_heavy_library(
    digit_files: list[Path],
) -> None:
    code = (
        "import sys; from digitnet.cli import main; "
        f"status = main(['predict', {str(digit_files[0])!r}]); "
        f"print(status, *(name in sys.modules for name in {HEAVY_LIBRARIES!r}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == "0 False False False False", result.stderr


def save_in_mode(digit: np.ndarray, folder: Path, mode: str, suffix: str) -> Path:
    """The digit as dark ink on white, 112 pixels square, saved in a Pillow mode (or as a
    palette image whose paper is transparent) in the format of suffix."""
    paper = Image.fromarray(255 - np.kron(digit, np.ones((4, 4), dtype=np.uint8)))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(paper).astype(np.uint16) * 257)
    elif mode == "F":
        image = Image.fromarray(np.asarray(paper) / np.float32(255))
    elif mode == "P-transparent":
        image = paper.convert("P")
        image.info["transparency"] = 255  # palette index 255 marks transparent paper
    else:
        image = paper.convert(mode)
    path = folder / f"{mode.replace(';', '-')}{suffix}"
    image.save(path)
    return path


ODD_MODES = [
    ("1", ".png"),
    ("P", ".gif"),
    ("P-transparent", ".png"),
    ("LA", ".png"),
    ("RGBA", ".png"),
    ("RGB", ".webp"),
    ("RGB", ".bmp"),
    ("P", ".bmp"),
    ("I;16", ".png"),
    ("CMYK", ".jpg"),
    ("CMYK", ".tiff"),
    ("F", ".tiff"),
    ("I", ".tiff"),
]


def test_files_in_odd_modes_are_all_read_as_the_digit(
    tmp_path: Path, mnist: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [save_in_mode(mnist.test_images[0], tmp_path, m, s) for m, s in ODD_MODES]
    status, summary, err = predict_json(capsys, *map(str, paths))
    assert status == 0 and err == ""
    assert [result["digit"] for result in summary["results"]] == [7] * len(paths)


def test_a_pipe_among_the_files_is_refused_without_blocking(
    tmp_path: Path, digit_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    argv = [str(digit_files[0]), str(tmp_path / "pipe.png"), str(digit_files[1])]
    assert main(["predict", *argv]) == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2
    assert (
        err
        == f"digitnet: error: {tmp_path / 'pipe.png'}: not a regular file, expected an image file\n"
    )


def test_a_corrupt_tiff_gets_one_line_without_libtiffs_own_messages(
    tmp_path: Path, digit_files: list[Path], capfd: pytest.CaptureFixture[str]
) -> None:
    stripes = np.kron(np.eye(8, dtype=np.uint8) * 255, np.ones((8, 8), dtype=np.uint8))
    Image.fromarray(255 - stripes).save(tmp_path / "scan.tiff", compression="tiff_lzw")
    data = bytearray((tmp_path / "scan.tiff").read_bytes())
    data[8:14] = b"\xff" * 6  # the start of the LZW strip
    (tmp_path / "scan.tiff").write_bytes(bytes(data))

    assert main(["predict", str(tmp_path / "scan.tiff"), str(digit_files[0])]) == 1
    out, err = capfd.readouterr()
    assert out.startswith(f"{digit_files[0]}: 7 (")
    assert (
        err == f"digitnet: error: {tmp_path / 'scan.tiff'}: corrupt image data (decoder error -2)\n"
    )


def on_page(digit: np.ndarray, size: tuple[int, int], scale: int = 2) -> np.ndarray:
    """The digit enlarged as dark ink on a white page of size (H, W), off-centre."""
    big = np.kron(digit, np.ones((scale, scale), dtype=np.uint8))
    page = np.zeros(size, dtype=np.uint8)
    page[1 : 1 + big.shape[0], 3 : 3 + big.shape[1]] = big
    return 255 - page


def array_cases(mnist: Dataset) -> dict[str, tuple[np.ndarray, list[int] | str]]:
    """Arrays of every accepted shape with the digits they hold, and bad ones with their error."""
    seven, two, one = mnist.test_images[:3]
    inked = int(np.count_nonzero(seven))
    shapes = "one image, (784,) of one flattened 28x28 image, or (N, H, W) or (N, 784) of N images"
    return {
        "h100": (on_page(seven, (100, 100)), [7]),
        "h100-floats": (on_page(seven, (100, 100)) / 255.0, [7]),
        "tall": (on_page(two, (90, 64)), [2]),
        "pair40": (np.stack([on_page(seven, (40, 40), 1), on_page(two, (40, 40), 1)]), [7, 2]),
        "one28x30": (np.pad(seven, ((0, 0), (1, 1)))[np.newaxis], [7]),
        "mixed28": (np.stack([seven, 255 - two, np.roll(one, 5, axis=1)]), [7, 2, 1]),
        "rows": (mnist.test_images[:3].reshape(3, 784), [7, 2, 1]),
        "flat": (seven.reshape(784), [7]),
        "mask": (seven > 127, [7]),
        "rgba-floats": (
            np.dstack(
                [np.repeat(on_page(two, (60, 60))[..., None] / 255, 3, 2), np.ones((60, 60))]
            ),
            [2],
        ),
        "tiny2x3x5": (np.zeros((2, 3, 5), dtype=np.uint8), "no digit found"),
        "empty": (np.zeros((0, 784), dtype=np.uint8), "holds no images (its shape is (0, 784))"),
        "empty-pictures": (np.zeros((0, 40, 40)), "holds no images (its shape is (0, 40, 40))"),
        "short": (np.zeros(5), f"expected the shape (H, W) or (H, W, 3|4) of {shapes}; got (5,)"),
        "4-D": (np.zeros((1, 28, 28, 1)), f"of {shapes}; got (1, 28, 28, 1)"),
        "rows783": (
            np.zeros((3, 783)),
            "shape (3, 783) looks like rows of flattened 28x28 "
            "images, but those rows hold 784 values, not 783",
        ),
        "labelled": (np.zeros((3, 785)), "but those rows hold 784 values, not 785"),
        "complex": (
            seven.astype(complex),
            "pixels must be real numbers (booleans, integers or floats), got dtype complex128",
        ),
        "text": (np.array([["1", "2"], ["3", "4"]]), "got dtype <U1"),
        "nan": (np.where(seven > 0, np.nan, 0.0), f"pixels must be finite, got {inked} NaN or"),
        "inf": (np.where(seven > 0, -np.inf, 0.0), f"must be finite, got {inked} NaN or infinite"),
        "wide-ints": (seven.astype(np.int64) * 2, "integer pixels must be within 0-255, got 0 to"),
    }


SINGLE_IMAGES = {"h100", "h100-floats", "tall", "flat", "mask", "rgba-floats"}


def test_arrays_of_every_shape_give_the_same_answers_by_cli_and_api(
    tmp_path: Path, mnist: Dataset, model: Model, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, (array, expected) in array_cases(mnist).items():
        path = tmp_path / f"{name}.npy"
        np.save(path, array)
        status, summary, err = predict_json(capsys, str(path))
        results = summary["results"]
        if isinstance(expected, str):
            assert status == 1, name
            assert all(expected in r["error"] for r in results), (name, results)
            assert err.count("\n") == len(results) and "Traceback" not in err, name
            with pytest.raises(ValueError, match=re.escape(expected)):
                model.predict(array)
            continue
        assert (status, err) == (0, ""), name
        assert [r["digit"] for r in results] == expected, name
        assert model.predict(array).labels.tolist() == expected, name
        names = [Path(r["file"]).name for r in results]
        singles = [f"{name}.npy"]
        assert names == (
            singles if name in SINGLE_IMAGES else [f"{name}.npy[{i}]" for i in range(len(expected))]
        )
        api = model.predict(array).probabilities.max(axis=1)
        assert [r["probability"] for r in results] == pytest.approx(api.tolist(), rel=1e-6)


class Exploit:
    """Unpickling this object would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_npy_objects_are_refused_unread_and_oversized_headers_unallocated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "was-unpickled"
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array([Exploit(marker)], dtype=object), allow_pickle=True)
    np.load(evil, allow_pickle=True)  # the control: loading with pickle runs the payload
    assert marker.exists()
    marker.unlink()

    huge = tmp_path / "huge.npy"
    header = io.BytesIO()
    shape = (100_000, 1_000_000)  # 100 GB declared in a file of a few hundred bytes
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": shape}
    )
    huge.write_bytes(header.getvalue() + bytes(100))

    negative = tmp_path / "negative.npy"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (-1, 784)}
    )
    negative.write_bytes(header.getvalue() + bytes(784))
    assert main(["predict", str(evil), str(huge), str(negative)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"digitnet: error: {evil}: holds Python objects, which are refused",
        f"digitnet: error: {huge}: truncated .npy file (shape {shape} needs 100000000000 bytes, "
        "it holds 100)",
        f"digitnet: error: {negative}: malformed .npy header (negative size in shape (-1, 784))",
    ]
    assert not marker.exists()
