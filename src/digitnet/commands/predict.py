"""`digitnet predict IMAGE...`: the digit in each image file, IDX image file or .npy array.

Every file is read and preprocessed first; all the inputs then go through the network as one
batch. A file that cannot be read gets one line on stderr and the others are still answered;
the exit status is 1 when any file failed.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from digitnet.api import Model, Prediction, load_model
from digitnet.commands.common import percent, print_json
from digitnet.data import DataError, read_images
from digitnet.files import write_atomically
from digitnet.preprocess import (
    ImageError,
    is_array_batch,
    load_image,
    preprocess_array,
    preprocess_batch,
    preprocess_image,
)

CANDIDATES = 3
IDX_PREFIX = b"\x00\x00\x08"
GZIP_PREFIX = b"\x1f\x8b"
NPY_MAGIC = b"\x93NUMPY"
DESCRIPTION = """\
Print the digit in each image, its probability and the next two candidates.

Images may be PNG, JPEG, BMP, GIF, TIFF, WebP or PPM/PGM/PBM files of any size, dark ink on
light paper or light on dark: each is turned into an MNIST-like 28x28 input first.
A .npy array of shape (H, W) is one grayscale picture, (H, W, 3) or (H, W, 4) one RGB or
RGBA picture and (784,) one flattened 28x28 image; (N, H, W) holds N pictures and (N, 784) N
flattened 28x28 images. Pixels are integers within 0-255, booleans, or floats in [0, 1].
An IDX image file or a .npy array of N images gives one answer per image, named FILE[i].

Probabilities are the network's ten sigmoid outputs divided by their sum, so they add up to 1.
A file that cannot be read, or holds no digit, gets one line on stderr while the others are
still answered; the exit status is then 1.
"""


@dataclass
class Entry:
    """One image to answer: its name, and either its network input or why it has none."""

    name: str
    pixels: NDArray[np.float32] | None = None
    error: str | None = None
    index: int | None = None  # position in an IDX or .npy file of several images


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="read the digit in image files",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image, IDX or .npy file")
    parser.add_argument(
        "--model", metavar="M", help="model file (default: the ready model bundled with digitnet)"
    )
    parser.add_argument("--json", action="store_true", help="print the answers as JSON")
    parser.add_argument(
        "--show-input", metavar="DIR", help="save the 28x28 image the network saw, as PNG, in DIR"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    entries = [entry for name in args.images for entry in read_entries(name)]
    answered = [entry for entry in entries if entry.pixels is not None]
    prediction = predict_entries(model, answered)
    for entry in entries:
        if entry.error is not None:
            print(f"digitnet: error: {entry.error}", file=sys.stderr)
    if args.json:
        print_json(json_summary(model, entries, prediction))
    else:
        for line in format_answers(answered, prediction):
            print(line)
    if args.show_input:
        save_inputs(Path(args.show_input), answered)
    return 1 if len(answered) < len(entries) else 0


# ---- reading -------------------------------------------------------------------------------


def read_entries(name: str) -> list[Entry]:
    """The images of one file: one for a picture, one per image for IDX and .npy files."""
    path = Path(name)
    try:
        if path.suffix.lower() == ".npy":
            return batch_entries(name, load_npy(path))
        if is_idx(path):
            return batch_entries(name, read_images(path))
        with native_messages_silenced():
            image = load_image(path)
        return [Entry(name, pixels=preprocess_image(image))]
    except (ImageError, DataError) as exc:
        message = str(exc)  # names the file, unless it came from preprocessing the pixels
        named = message.startswith((f"{name}: ", f"{path}: "))
        return [Entry(name, error=message if named else f"{name}: {message}")]
    except (ValueError, OSError, EOFError) as exc:
        return [Entry(name, error=f"{name}: {describe(exc)}")]


@contextlib.contextmanager
def native_messages_silenced() -> Iterator[None]:
    """Send what C libraries write straight to file descriptor 2 to /dev/null meanwhile.

    libtiff prints its own lines about corrupt TIFF data ("Using code not yet in table")
    before Pillow raises; the error digitnet reports says the same in one line. The command
    reads files one at a time in one thread, so nothing else is silenced.
    """
    if sys.stderr is not None:
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all (closed by the caller): nothing to keep clean
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def is_idx(path: Path) -> bool:
    """Whether path starts like an IDX file or a gzip stream (which Pillow never reads)."""
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        head = handle.read(3)
    return head == IDX_PREFIX or head[:2] == GZIP_PREFIX


def load_npy(path: Path) -> NDArray[Any]:
    """A .npy array, its header checked first: never unpickled, never larger than the file."""
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not a .npy file")
    with path.open("rb") as handle:
        if handle.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise ImageError(f"{path}: not a .npy array file (no NumPy header)")
        handle.seek(0)
        shape, dtype = read_npy_header(path, handle)
        declared = math.prod(shape) * dtype.itemsize
        held = path.stat().st_size - handle.tell()
    if declared > held:
        raise ImageError(
            f"{path}: truncated .npy file (shape {shape} needs {declared} bytes, it holds {held})"
        )
    array: NDArray[Any] = np.load(path, allow_pickle=False)
    return array


def read_npy_header(path: Path, handle: IO[bytes]) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype from a .npy header; Python objects are refused before any is read."""
    version = np.lib.format.read_magic(handle)
    if version not in ((1, 0), (2, 0)):
        raise ImageError(f"{path}: .npy format version {version} is not read")
    try:
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    except (ValueError, SyntaxError, tokenize.TokenError, RecursionError) as exc:
        raise ImageError(f"{path}: malformed .npy header ({type(exc).__name__})") from None
    if dtype.hasobject:
        raise ImageError(f"{path}: holds Python objects, which are refused")
    if any(size < 0 for size in shape):
        raise ImageError(f"{path}: malformed .npy header (negative size in shape {shape})")
    return tuple(shape), dtype


def batch_entries(name: str, images: NDArray[Any]) -> list[Entry]:
    """Entries for an array: one for a single image, else one per image named NAME[i].

    Which shapes are one image and which a batch is preprocess.is_array_batch's to say.
    """
    if not is_array_batch(images):
        return [Entry(name, pixels=preprocess_array(images))]
    inputs, found = preprocess_batch(images)
    return [entry_of(name, i, inputs[i], bool(found[i])) for i in range(inputs.shape[0])]


def entry_of(name: str, index: int | None, pixels: NDArray[np.float32], found: bool) -> Entry:
    label = name if index is None else f"{name}[{index}]"
    if not found:
        return Entry(label, error=f"{label}: no digit found", index=index)
    return Entry(label, pixels=pixels, index=index)


def describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return " ".join(str(exc).split()) or type(exc).__name__


# ---- answering -----------------------------------------------------------------------------


def predict_entries(model: Model, answered: list[Entry]) -> Prediction | None:
    """One network pass over every readable image."""
    if not answered:
        return None
    inputs = np.stack([entry.pixels for entry in answered if entry.pixels is not None])
    return model.predict_inputs(inputs)


def all_candidates(prediction: Prediction) -> list[list[tuple[int, float]]]:
    """The CANDIDATES most probable digits of each image with their probabilities, best first.

    The whole batch is ranked in one sort, so 10,000 images cost one pass, not 10,000.
    """
    digits = prediction.ranked(CANDIDATES)  # (N, CANDIDATES)
    chances = np.take_along_axis(prediction.probabilities, digits, axis=1)  # (N, CANDIDATES)
    return [
        list(zip(row_digits, row_chances, strict=True))
        for row_digits, row_chances in zip(digits.tolist(), chances.tolist(), strict=True)
    ]


def format_answers(answered: list[Entry], prediction: Prediction | None) -> list[str]:
    """One line per image: 'NAME: 7 (98.10%), then 2 (1.20%), 9 (0.30%)'."""
    if prediction is None:
        return []
    lines = []
    for entry, ranked in zip(answered, all_candidates(prediction), strict=True):
        (best, chance), *rest = ranked
        others = ", ".join(f"{digit} ({percent(p)})" for digit, p in rest)
        lines.append(f"{entry.name}: {best} ({percent(chance)}), then {others}")
    return lines


def json_summary(
    model: Model, entries: list[Entry], prediction: Prediction | None
) -> dict[str, Any]:
    """Answers and errors in the order of the files on the command line.

    The answered entries are the prediction's rows, in order.
    """
    rows = iter([] if prediction is None else all_candidates(prediction))
    results: list[dict[str, Any]] = []
    for entry in entries:
        if entry.error is not None or prediction is None:
            results.append({"file": entry.name, "error": entry.error})
            continue
        ranked = next(rows)
        results.append(
            {
                "file": entry.name,
                "digit": ranked[0][0],
                "probability": ranked[0][1],
                "candidates": [{"digit": d, "probability": p} for d, p in ranked],
            }
        )
    note = "sigmoid outputs divided by their sum"
    return {"model": str(model.path), "probabilities": note, "results": results}


def save_inputs(folder: Path, answered: list[Entry]) -> None:
    """Write each network input as an 8-bit 28x28 PNG named after its file."""
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for entry in answered:
        assert entry.pixels is not None
        stem = input_file_stem(entry, used)
        save_png(folder / f"{stem}.png", np.round(entry.pixels * 255).astype(np.uint8))
    print(f"saved {len(answered)} network inputs to {folder}", file=sys.stderr)


def save_png(path: Path, pixels: NDArray[np.uint8]) -> None:
    """Write 8-bit grayscale pixels as a PNG, atomically."""
    from PIL import Image

    image = Image.fromarray(pixels)
    write_atomically(path, lambda handle: image.save(handle, format="PNG"))


def input_file_stem(entry: Entry, used: set[str]) -> str:
    """A file stem for an entry's input, unique among used: 'seven', 'digits-3', 'seven-2'."""
    if entry.index is None:
        base = Path(entry.name).stem
    else:
        base = f"{Path(entry.name.rsplit('[', 1)[0]).stem}-{entry.index}"
    stem, count = base, 1
    while stem in used:
        count += 1
        stem = f"{base}-{count}"
    used.add(stem)
    return stem
