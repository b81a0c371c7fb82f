"""Image files for the tests: MNIST digits made to look like users' photos, and broken files.

Each digit is enlarged, placed off-centre on a larger non-square canvas, drawn as dark ink on
light, grey or textured paper under uneven lighting, and saved as PNG, JPEG or RGBA PNG with a
transparent background. Everything random comes from the Generator passed in.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

KINDS = ("light", "grey", "textured", "transparent", "coloured")


def enlarge(digit: NDArray[np.uint8], scale: float) -> NDArray[np.float64]:
    """The digit's ink in [0, 1], resized smoothly by scale."""
    size = round(28 * scale)
    image = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(image, dtype=np.float64) / 255.0, 0.0, 1.0)


def place(ink: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
    """Ink placed at a random spot of a larger canvas whose sides differ."""
    size = ink.shape[0]
    height = int(size * rng.uniform(1.3, 2.4))
    width = int(size * rng.uniform(1.3, 2.4))
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    canvas = np.zeros((height, width))
    canvas[top : top + size, left : left + size] = ink
    return canvas


def lighting(shape: tuple[int, int], rng: np.random.Generator) -> NDArray[np.float64]:
    """A smooth brightness gradient across the page, from about 0.55 to 1."""
    rows = np.linspace(0.0, 1.0, shape[0])[:, None]
    cols = np.linspace(0.0, 1.0, shape[1])[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * rows + np.sin(angle) * cols
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-9)
    shade: NDArray[np.float64] = 1.0 - rng.uniform(0.2, 0.45) * ramp
    return shade


def texture(shape: tuple[int, int], rng: np.random.Generator) -> NDArray[np.float64]:
    """Paper grain: fine noise plus a blotchy pattern at a coarser scale."""
    fine = rng.normal(0.0, 0.03, shape)
    coarse = rng.normal(0.0, 1.0, (shape[0] // 8 + 2, shape[1] // 8 + 2)).astype(np.float32)
    blotches = Image.fromarray(coarse).resize(shape[::-1], Image.Resampling.BICUBIC)
    return fine + 0.04 * np.asarray(blotches, dtype=np.float64)


def photo_pixels(
    digit: NDArray[np.uint8], kind: str, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Brightness (H, W) in [0, 1] of dark ink on paper, for every kind but 'transparent'."""
    ink = place(enlarge(digit, rng.uniform(3.0, 7.0)), rng)
    paper = {"grey": rng.uniform(0.5, 0.65)}.get(kind, rng.uniform(0.85, 0.97))
    page = paper * lighting(ink.shape, rng)
    if kind == "textured":
        page = page + texture(ink.shape, rng)
    ink_tone = rng.uniform(0.05, 0.2)
    return np.clip(page * (1.0 - ink) + ink_tone * ink, 0.0, 1.0)


def photo_image(digit: NDArray[np.uint8], kind: str, rng: np.random.Generator) -> Image.Image:
    """A Pillow image of the digit made to look like a user's picture of the given kind."""
    if kind == "transparent":
        ink = place(enlarge(digit, rng.uniform(3.0, 7.0)), rng)
        alpha = (255 * ink).round().astype(np.uint8)
        rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)
        rgba[..., 3] = alpha
        return Image.fromarray(rgba)
    pixels = (255 * photo_pixels(digit, kind, rng)).round().astype(np.uint8)
    if kind == "coloured":
        tint = np.array([1.0, 0.85, 0.35])  # darkest in red and green: blue ink
        rgb = 255 - (255 - pixels[..., None]) * tint
        return Image.fromarray(rgb.round().astype(np.uint8))
    return Image.fromarray(pixels)


def save_photos(digits: NDArray[np.uint8], folder: Path, rng: np.random.Generator) -> list[Path]:
    """Save one photo-like file per digit, cycling through the kinds and formats."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, digit in enumerate(digits):
        kind = KINDS[index % len(KINDS)]
        image = photo_image(digit, kind, rng)
        as_jpeg = kind in ("textured", "coloured") or (kind == "grey" and index % 2 == 0)
        path = folder / f"{index:04d}-{kind}.{'jpg' if as_jpeg else 'png'}"
        image.save(path, quality=85) if as_jpeg else image.save(path)
        paths.append(path)
    return paths


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height 1-bit pixels and holds none: a decompression bomb."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")


def write_bad_files(folder: Path, digit: NDArray[np.uint8]) -> dict[str, Path]:
    """One file of each kind that cannot be answered, keyed by the kind."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "text": folder / "notes.png",
        "empty": folder / "empty.png",
        "truncated": folder / "cut.png",
        "directory": folder / "folder.png",
        "bomb": folder / "bomb.png",
        "blank": folder / "blank.jpg",
    }
    files["text"].write_text("a shopping list, not a picture\n")
    files["empty"].write_bytes(b"")
    Image.fromarray(255 - np.kron(digit, np.ones((6, 6), dtype=np.uint8))).save(files["truncated"])
    files["truncated"].write_bytes(files["truncated"].read_bytes()[:300])
    files["directory"].mkdir()
    files["bomb"].write_bytes(png_header_only(30_000, 30_000))
    Image.new("L", (320, 240), 235).save(files["blank"])
    return files
