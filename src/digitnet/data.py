"""Reading datasets in the IDX format of MNIST, and preparing them for training.

An IDX file is a 4-byte magic number (two zero bytes, a data-type code and the number of
dimensions), one big-endian uint32 per dimension, then the values. digitnet reads unsigned-byte
files: images (magic 2051, three dimensions) and labels (magic 2049, one dimension), raw or
gzipped. The four MNIST files ship with the package and are checked against their SHA-256 sums.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
UNSIGNED_BYTE = 0x08
MAX_VALUES = 1 << 31
FILE_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SUMS_FILE = "SHA256SUMS.raw"


class DataError(ValueError):
    """A dataset file is missing, malformed or does not match its checksum."""


@dataclass
class Dataset:
    """Images as uint8 (N, 28, 28) and labels as uint8 (N,), for training and for testing."""

    train_images: NDArray[np.uint8]
    train_labels: NDArray[np.uint8]
    test_images: NDArray[np.uint8]
    test_labels: NDArray[np.uint8]


def bundled_data_dir() -> Path:
    """The folder of MNIST files that ships inside the package."""
    return Path(str(resources.files("digitnet") / "_data" / "mnist"))


def read_idx(path: str | Path, expected_magic: int | None = None) -> NDArray[np.uint8]:
    """Read an unsigned-byte IDX file, raw or gzipped, checking its header against its size."""
    path = Path(path)
    try:
        raw = read_bytes(path)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read: {describe_os_error(exc)}") from None
    return parse_idx(raw, str(path), expected_magic)


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when they start with the gzip signature."""
    with path.open("rb") as handle:
        is_gzip = handle.read(2) == b"\x1f\x8b"
    if not is_gzip:
        return path.read_bytes()
    with gzip.open(path, "rb") as stream:
        return stream.read()


def describe_os_error(exc: BaseException) -> str:
    """A short reason for a failed read, without the path the caller already names."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, EOFError):
        return "the gzip stream ends early (truncated file?)"
    return f"corrupt gzip data ({exc})"


def parse_idx(raw: bytes, name: str, expected_magic: int | None = None) -> NDArray[np.uint8]:
    """Decode IDX bytes into an array; name is used in error messages."""
    if len(raw) < 4:
        raise DataError(f"{name}: {len(raw)} bytes is too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{name}: magic number {magic} (0x{magic:08x}), expected {expected_magic} "
            f"(0x{expected_magic:08x}); is this the right IDX file?"
        )
    if raw[0] != 0 or raw[1] != 0 or raw[2] != UNSIGNED_BYTE:
        raise DataError(f"{name}: magic number 0x{magic:08x} is not an unsigned-byte IDX file")
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header_size:
        raise DataError(f"{name}: header declares {ndim} dimensions but is cut short")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(dims, dtype=np.int64)) if dims else 0
    if count > MAX_VALUES:
        raise DataError(f"{name}: dimensions {dims} are too large")
    if len(raw) - header_size != count:
        raise DataError(
            f"{name}: dimensions {dims} need {count} bytes of data, found "
            f"{len(raw) - header_size} (truncated or padded file?)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)


def read_images(path: str | Path) -> NDArray[np.uint8]:
    """Read an IDX image file: magic 2051, shape (N, rows, cols)."""
    images = read_idx(path, IMAGES_MAGIC)
    if images.ndim != 3:
        raise DataError(f"{path}: images must have 3 dimensions, found shape {images.shape}")
    return images


def read_labels(path: str | Path) -> NDArray[np.uint8]:
    """Read an IDX label file: magic 2049, shape (N,), every value a digit 0-9."""
    labels = read_idx(path, LABELS_MAGIC)
    if labels.ndim != 1:
        raise DataError(f"{path}: labels must have 1 dimension, found shape {labels.shape}")
    if labels.size and labels.max() > 9:
        raise DataError(f"{path}: label {int(labels.max())} is outside 0-9")
    return labels


def find_file(directory: Path, stem: str) -> Path:
    """The file stem or stem.gz in directory, whichever exists."""
    for name in (stem, f"{stem}.gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise DataError(f"{directory}: no {stem} or {stem}.gz found (expected the MNIST file layout)")


def load_dataset(directory: str | Path | None = None) -> Dataset:
    """Load the four IDX files of an MNIST-layout folder; the bundled MNIST when None.

    When the folder holds SHA256SUMS.raw (the bundled one does), every file is checked against
    it after decompression.
    """
    folder = bundled_data_dir() if directory is None else Path(directory)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    sums = read_checksums(folder / SUMS_FILE)
    arrays = {}
    for key, stem in FILE_STEMS.items():
        path = find_file(folder, stem)
        arrays[key] = read_images(path) if key.endswith("images") else read_labels(path)
        if stem in sums:
            verify_checksum(path, sums[stem])
    dataset = Dataset(**arrays)
    check_pairs(dataset, folder)
    return dataset


def read_checksums(path: Path) -> dict[str, str]:
    """Map file name to SHA-256 hex digest from a sha256sum-style file, if there is one."""
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def verify_checksum(path: Path, expected: str) -> None:
    """Raise DataError unless the decompressed bytes of path hash to expected."""
    actual = hashlib.sha256(read_bytes(path)).hexdigest()
    if actual != expected:
        raise DataError(f"{path}: SHA-256 {actual[:16]}... does not match {expected[:16]}...")


def check_pairs(dataset: Dataset, folder: Path) -> None:
    """Raise DataError when images and labels disagree in count, or images are not 28x28."""
    for split in ("train", "test"):
        images = getattr(dataset, f"{split}_images")
        labels = getattr(dataset, f"{split}_labels")
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{folder}: {images.shape[0]} {split} images but {labels.shape[0]} labels"
            )
        if images.shape[1:] != (28, 28):
            raise DataError(f"{folder}: {split} images are {images.shape[1:]}, expected (28, 28)")


def scale_pixels(
    images: NDArray[np.uint8], dtype: type[np.floating] = np.float32
) -> NDArray[np.floating]:
    """Rows of 784 values in [0, 1]: pixel / 255. Every entry point scales pixels this way."""
    flat = images.reshape(images.shape[0], int(np.prod(images.shape[1:])))
    scaled: NDArray[np.floating] = flat.astype(dtype)
    scaled /= dtype(255.0)
    return scaled


def split_validation(
    images: NDArray[np.uint8], labels: NDArray[np.uint8], size: int
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8]]:
    """Hold out the last size training images for validation; the split ignores the seed."""
    if not 0 <= size < images.shape[0]:
        raise ValueError(f"validation size must be between 0 and {images.shape[0] - 1}, got {size}")
    cut = images.shape[0] - size
    return images[:cut], labels[:cut], images[cut:], labels[cut:]
