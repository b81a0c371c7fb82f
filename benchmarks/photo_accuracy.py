"""How well the bundled model reads MNIST test digits made to look like harder photos.

Run from the repository root with the package installed in .venv:

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/photo_accuracy.py [COUNT]

Each of COUNT test digits (default 200, chosen with a fixed seed) is enlarged 5 times, drawn as
dark ink on a page lit from one side, and then altered one way per row of the table; the last
two rows keep the digit light on a black 28x28 canvas but move it or shrink it. The table gives
the share read correctly; "no digit found" counts as wrong.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

import digitnet
from digitnet.data import load_dataset, scale_pixels
from digitnet.preprocess import NoDigitError

Pixels = NDArray[np.float64]


def page_with(ink: Pixels, shape: tuple[int, int], rng: np.random.Generator) -> Pixels:
    """Ink placed at a random spot of a page lit from top to bottom, values in [0, 1]."""
    page = 0.9 * np.linspace(0.65, 1.0, shape[0])[:, None] * np.ones(shape)
    top = int(rng.integers(0, shape[0] - ink.shape[0] + 1))
    left = int(rng.integers(0, shape[1] - ink.shape[1] + 1))
    window = page[top : top + ink.shape[0], left : left + ink.shape[1]]
    window *= 1.0 - 0.9 * ink
    return page


def enlarged(digit: NDArray[np.uint8], scale: int) -> Pixels:
    size = 28 * scale
    image = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(image, dtype=np.float64) / 255.0, 0.0, 1.0)


def to_image(pixels: Pixels) -> Image.Image:
    return Image.fromarray((255 * np.clip(pixels, 0.0, 1.0)).round().astype(np.uint8))


def as_jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer)


def variants(rng: np.random.Generator) -> dict[str, Callable[[NDArray[np.uint8]], Image.Image]]:
    def plain(digit: NDArray[np.uint8]) -> Image.Image:
        return to_image(page_with(enlarged(digit, 5), (260, 340), rng))

    def faint(digit: NDArray[np.uint8]) -> Image.Image:
        return to_image(page_with(0.35 * enlarged(digit, 5), (260, 340), rng))

    def blurred(digit: NDArray[np.uint8]) -> Image.Image:
        return plain(digit).filter(ImageFilter.GaussianBlur(4))

    def rotated(digit: NDArray[np.uint8]) -> Image.Image:
        image = plain(digit)
        paper = int(np.median(np.asarray(image)))
        return image.rotate(10, resample=Image.Resampling.BILINEAR, fillcolor=paper)

    def small(digit: NDArray[np.uint8]) -> Image.Image:
        return to_image(page_with(enlarged(digit, 2), (600, 800), rng))

    def moved(digit: NDArray[np.uint8]) -> Image.Image:
        down, right = rng.choice([-5, 5], size=2)
        return Image.fromarray(np.roll(np.pad(digit, 5), (down, right), axis=(0, 1))[5:-5, 5:-5])

    def in_corner(digit: NDArray[np.uint8]) -> Image.Image:
        canvas = np.zeros_like(digit)
        canvas[:14, :14] = np.asarray(Image.fromarray(digit).resize((14, 14), Image.Resampling.BOX))
        return Image.fromarray(canvas)

    return {
        "dark ink, lit from one side": plain,
        "faint ink (35% as dark)": faint,
        "out of focus (Gaussian blur, radius 4)": blurred,
        "JPEG quality 20": lambda digit: as_jpeg(plain(digit), 20),
        "turned 10 degrees": rotated,
        "56 px digit on an 800x600 page": small,
        "28x28, the digit moved 5 px across and 5 down or up": moved,
        "28x28, the digit shrunk to 10 px in the top left corner": in_corner,
    }


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rng = np.random.default_rng(9)
    dataset = load_dataset()
    chosen = rng.choice(len(dataset.test_labels), count, replace=False)
    digits, labels = dataset.test_images[chosen], dataset.test_labels[chosen]
    model = digitnet.load_model()
    original = float(np.mean(model.network.predict(scale_pixels(digits)) == labels))
    print(f"| {count} MNIST test digits | share read correctly |")
    print("|---|---|")
    print(f"| the original 28x28 digits | {original:.3f} |")
    for name, make in variants(rng).items():
        right = sum(
            read_correctly(model, make(digit), int(label))
            for digit, label in zip(digits, labels, strict=True)
        )
        print(f"| {name} | {right / count:.3f} |", flush=True)


def read_correctly(model: digitnet.Model, image: Image.Image, label: int) -> bool:
    try:
        return bool(model.predict(image).labels[0] == label)
    except NoDigitError:
        return False


if __name__ == "__main__":
    main()
