"""Reading datasets in the IDX format of MNIST, and preparing them for training.

An IDX file is a 4-byte magic number (two zero bytes, a data-type code and the number of
dimensions), one big-endian uint32 per dimension, then the values. digitnet reads unsigned-byte
files: images (magic 2051, three dimensions) and labels (magic 2049, one dimension), raw or
gzipped. The four MNIST files ship with the package and are checked against their SHA-256 sums.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
from numpy.typing import NDArray

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
UNSIGNED_BYTE = 0x08
IDX_TYPES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
MAX_DATA_BYTES = 1 << 30  # 1 GiB; all of MNIST's training images take 47 MB
READ_CHUNK = 1 << 20
GZIP_SIGNATURE = b"\x1f\x8b"
MAX_SUMS_BYTES = 1 << 16
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


def read_idx(
    path: str | Path, expected_magic: int | None = None, max_bytes: int = MAX_DATA_BYTES
) -> NDArray[np.uint8]:
    """Read an unsigned-byte IDX file, raw or gzipped, checking its header against its size.

    The header is read and checked first; then at most the declared number of bytes plus one
    is read, so neither a lying header nor a gzip bomb makes the reader allocate more than
    the header declares, and a header declaring more than max_bytes is refused outright.
    """
    path = Path(path)
    try:
        with open_idx(path) as stream:
            dims, size = read_header(stream, str(path), expected_magic, max_bytes)
            data = read_data(stream, str(path), dims, size)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read: {describe_os_error(exc)}") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def open_idx(path: Path) -> BinaryIO:
    """The file's byte stream, decompressed when it starts with the gzip signature."""
    with path.open("rb") as handle:
        is_gzip = handle.read(2) == GZIP_SIGNATURE
    if is_gzip:
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def read_header(
    stream: BinaryIO, name: str, expected_magic: int | None, max_bytes: int
) -> tuple[tuple[int, ...], int]:
    """Check the magic number and read the dimensions; return them and the data size."""
    first = stream.read(4)
    check_magic(first, name, expected_magic)
    ndim = first[3]
    if ndim == 0:
        raise DataError(f"{name}: header declares 0 dimensions, expected 1 or more")
    packed = stream.read(4 * ndim)
    if len(packed) < 4 * ndim:
        raise DataError(
            f"{name}: header declares {ndim} dimensions but ends after {len(packed) // 4}"
        )
    dims = tuple(int.from_bytes(packed[i : i + 4], "big") for i in range(0, 4 * ndim, 4))
    size = math.prod(dims)  # Python integers: a product of 255 uint32s cannot overflow
    if size > max_bytes:
        raise DataError(
            f"{name}: dimensions {dims} declare {size} bytes of data, more than the "
            f"{max_bytes} digitnet reads (corrupt header?)"
        )
    return dims, size


def check_magic(first: bytes, name: str, expected_magic: int | None) -> None:
    """Raise DataError unless the first 4 bytes start an unsigned-byte IDX file as expected."""
    if len(first) == 0:
        raise DataError(f"{name}: the file is empty, expected an IDX file")
    if len(first) < 4:
        raise DataError(f"{name}: {len(first)} bytes is too short for an IDX header")
    if first[0] != 0 or first[1] != 0:
        raise DataError(
            f"{name}: starts with bytes {first.hex(' ')}, expected an IDX file starting 00 00; "
            "is it an IDX file?"
        )
    code = first[2]
    if code != UNSIGNED_BYTE:
        known = f" ({IDX_TYPES[code]})" if code in IDX_TYPES else ", not an IDX type"
        support = " is not supported" if code in IDX_TYPES else ""
        raise DataError(
            f"{name}: data type 0x{code:02X}{known}{support}, expected 0x08 unsigned byte"
        )
    magic = int.from_bytes(first, "big")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{name}: magic number {magic} (0x{magic:08x}), expected {expected_magic} "
            f"(0x{expected_magic:08x}); is this the right IDX file?"
        )


def read_data(stream: BinaryIO, name: str, dims: tuple[int, ...], size: int) -> bytearray:
    """Read the size data bytes, reading at most one more to tell whether the file goes on."""
    data = bytearray()
    while len(data) <= size:
        chunk = stream.read(min(READ_CHUNK, size + 1 - len(data)))
        if not chunk:
            break
        data += chunk
    if len(data) != size:
        found = str(len(data)) if len(data) < size else "more"
        problem = "truncated file?" if len(data) < size else "padded file or wrong header?"
        raise DataError(
            f"{name}: dimensions {dims} need {size} bytes of data, found {found} ({problem})"
        )
    return data


def describe_os_error(exc: BaseException) -> str:
    """A short reason for a failed read, without the path the caller already names."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, EOFError):
        return "the gzip stream ends early (truncated file?)"
    return f"corrupt gzip data ({exc})"


def idx_header(magic: int, shape: tuple[int, ...]) -> bytes:
    """The IDX header bytes of an array of the given shape."""
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)


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
    outside = np.flatnonzero(labels > 9)
    if outside.size:
        first = int(outside[0])
        raise DataError(
            f"{path}: {outside.size} labels are outside 0-9, the first is {labels[first]} "
            f"at index {first}"
        )
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

    When the folder holds SHA256SUMS.raw, every file is checked against it after
    decompression. The bundled MNIST must have that list with all four files in it, so that
    it never loads unchecked.
    """
    folder = bundled_data_dir() if directory is None else Path(directory)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    sums = read_checksums(folder / SUMS_FILE)
    if directory is None:
        require_all_checksums(folder / SUMS_FILE, sums)
    arrays = {}
    for key, stem in FILE_STEMS.items():
        path = find_file(folder, stem)
        is_images = key.endswith("images")
        arrays[key] = read_images(path) if is_images else read_labels(path)
        if stem in sums:
            magic = IMAGES_MAGIC if is_images else LABELS_MAGIC
            verify_checksum(path, idx_header(magic, arrays[key].shape), arrays[key], sums[stem])
    dataset = Dataset(**arrays)
    check_pairs(dataset, folder)
    return dataset


def read_checksums(path: Path) -> dict[str, str]:
    """Map file name to SHA-256 hex digest from a sha256sum-style file, if there is one."""
    if not path.is_file():
        return {}
    try:
        if path.stat().st_size > MAX_SUMS_BYTES:
            raise DataError(f"{path}: larger than {MAX_SUMS_BYTES} bytes; not a checksum list")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the checksum list ({exc})") from None
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def require_all_checksums(path: Path, sums: dict[str, str]) -> None:
    """Raise DataError unless sums, read from path, has an entry for each of the four files."""
    if not path.is_file():
        raise DataError(f"{path}: missing; the bundled MNIST cannot be checked (broken install?)")
    missing = [stem for stem in FILE_STEMS.values() if stem not in sums]
    if missing:
        raise DataError(
            f"{path}: no SHA-256 sum for {', '.join(missing)}; the bundled MNIST cannot be "
            "checked (broken install?)"
        )


def verify_checksum(path: Path, header: bytes, values: NDArray[np.uint8], expected: str) -> None:
    """Raise DataError unless the decompressed file, header and values, hashes to expected.

    read_idx refuses any byte beyond the values, so header + values is the whole file and
    the file need not be read twice.
    """
    digest = hashlib.sha256(header)
    digest.update(np.ascontiguousarray(values).data)
    actual = digest.hexdigest()
    if actual != expected:
        raise DataError(f"{path}: SHA-256 {actual[:16]}... does not match {expected[:16]}...")


def check_pairs(dataset: Dataset, folder: Path) -> None:
    """Raise DataError when images and labels disagree in count, or images are not 28x28."""
    for split in ("train", "test"):
        images = getattr(dataset, f"{split}_images")
        labels = getattr(dataset, f"{split}_labels")
        if images.shape[0] == 0:
            raise DataError(f"{folder}: the {split} files hold no images")
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
