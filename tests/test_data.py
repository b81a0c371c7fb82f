"""The IDX reader on the real MNIST files and on broken ones."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import idx_bytes, small_dataset, write_dataset, write_idx
from digitnet import data
from digitnet.data import (
    FILE_STEMS,
    DataError,
    Dataset,
    bundled_data_dir,
    load_dataset,
    read_idx,
    read_images,
    read_labels,
    scale_pixels,
    split_validation,
)

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_bundled_mnist_has_the_documented_shapes_and_class_counts(mnist: Dataset) -> None:
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.train_images.dtype == np.uint8 and mnist.train_labels.dtype == np.uint8
    assert np.bincount(mnist.train_labels).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.test_labels).tolist() == TEST_COUNTS
    assert mnist.train_images.min() == 0 and mnist.train_images.max() == 255


def test_pixels_are_scaled_to_the_unit_interval_in_float32(mnist: Dataset) -> None:
    X = scale_pixels(mnist.test_images[:100])
    assert X.shape == (100, 784) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() == 1.0
    assert X[0, 0] == mnist.test_images[0, 0, 0] / 255


def test_raw_and_gzipped_files_read_the_same(tmp_path: Path) -> None:
    labels = np.arange(10, dtype=np.uint8)
    raw = write_idx(tmp_path / "raw", labels, 2049)
    packed = write_idx(tmp_path / "packed.gz", labels, 2049, compress=True)
    assert np.array_equal(read_labels(raw), read_labels(packed))


def test_reader_rejects_a_wrong_magic_number(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels", np.zeros(5, dtype=np.uint8), 2049)
    with pytest.raises(DataError, match=r"labels: magic number 2049 .* expected 2051"):
        read_images(path)


def test_reader_rejects_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "images"
    path.write_bytes(idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8), 2051)[:-10])
    with pytest.raises(DataError, match=r"images: dimensions \(3, 28, 28\) need 2352 bytes"):
        read_images(path)


def test_reader_rejects_a_corrupt_gzip_file(tmp_path: Path) -> None:
    data = gzip.compress(idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8), 2051))
    path = tmp_path / "images.gz"
    path.write_bytes(data[:20] + bytes(len(data) - 20))
    with pytest.raises(DataError, match=r"images.gz: cannot read"):
        read_images(path)


def test_reader_rejects_a_truncated_gzip_stream(tmp_path: Path) -> None:
    data = gzip.compress(idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8), 2051))
    path = tmp_path / "images.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"images.gz: cannot read: the gzip stream ends early"):
        read_images(path)


def test_reader_rejects_labels_outside_0_to_9(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels", np.array([1, 2, 12], dtype=np.uint8), 2049)
    with pytest.raises(DataError, match=r"labels: 1 labels are outside 0-9, the first is 12 at"):
        read_labels(path)


def test_reader_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothing-here: cannot read"):
        read_labels(tmp_path / "nothing-here")


def test_any_folder_in_mnist_layout_loads(tmp_path: Path, mnist: Dataset) -> None:
    small = small_dataset(mnist, 50, 20)
    loaded = load_dataset(write_dataset(tmp_path / "small", small, compress=False))
    assert np.array_equal(loaded.train_images, small.train_images)
    assert np.array_equal(loaded.test_labels, small.test_labels)


def test_loader_rejects_images_and_labels_of_different_counts(
    tmp_path: Path, mnist: Dataset
) -> None:
    small = small_dataset(mnist, 50, 20)
    small.test_labels = small.test_labels[:19]
    with pytest.raises(DataError, match=r"20 test images but 19 labels"):
        load_dataset(write_dataset(tmp_path / "bad", small))


def test_loader_checks_the_sha256_sums(tmp_path: Path, mnist: Dataset) -> None:
    folder = write_dataset(tmp_path / "summed", small_dataset(mnist, 50, 20))
    sums = (bundled_data_dir() / "SHA256SUMS.raw").read_text()
    (folder / "SHA256SUMS.raw").write_text(sums)
    with pytest.raises(DataError, match=r"SHA-256 .* does not match"):
        load_dataset(folder)


def test_the_bundled_folder_holds_the_four_files_and_a_sum_for_each() -> None:
    folder = bundled_data_dir()
    lines = (folder / "SHA256SUMS.raw").read_text(encoding="utf-8").splitlines()
    names = sorted(line.split()[1] for line in lines)
    assert names == sorted(FILE_STEMS.values())
    assert all(len(line.split()[0]) == 64 for line in lines)
    assert all((folder / f"{name}.gz").is_file() for name in names)


def bundled_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sums: str | None) -> None:
    """Make a copy of the bundled MNIST, with the checksum list sums, the bundled folder."""
    folder = tmp_path / "bundled"
    folder.mkdir()
    for name in FILE_STEMS.values():
        (folder / f"{name}.gz").symlink_to(bundled_data_dir() / f"{name}.gz")
    if sums is not None:
        (folder / "SHA256SUMS.raw").write_text(sums, encoding="utf-8")
    monkeypatch.setattr(data, "bundled_data_dir", lambda: folder)


def test_the_bundled_mnist_does_not_load_without_its_checksum_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled_copy(tmp_path, monkeypatch, None)
    with pytest.raises(DataError, match=r"SHA256SUMS.raw: missing; the bundled MNIST cannot"):
        load_dataset()


def test_the_bundled_mnist_does_not_load_with_a_checksum_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = (bundled_data_dir() / "SHA256SUMS.raw").read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if "t10k-labels" not in line]
    bundled_copy(tmp_path, monkeypatch, "\n".join(kept) + "\n")
    with pytest.raises(DataError, match=r"no SHA-256 sum for t10k-labels-idx1-ubyte; the"):
        load_dataset()


def test_validation_split_holds_out_the_last_images(mnist: Dataset) -> None:
    train_x, _, val_x, val_y = split_validation(mnist.train_images, mnist.train_labels, 5000)
    assert train_x.shape[0] == 55000 and val_x.shape[0] == 5000
    assert np.array_equal(val_y, mnist.train_labels[55000:])
    with pytest.raises(ValueError, match=r"validation size must be between 0 and 59999"):
        split_validation(mnist.train_images, mnist.train_labels, 60000)


def header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def test_reader_rejects_a_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty: the file is empty, expected an IDX file"):
        read_images(path)


def test_reader_rejects_a_gzip_file_of_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.gz"
    path.write_bytes(gzip.compress(b""))
    with pytest.raises(DataError, match=r"empty.gz: the file is empty"):
        read_labels(path)


def test_reader_rejects_a_file_that_is_not_idx(tmp_path: Path) -> None:
    path = tmp_path / "digit.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DataError, match=r"digit.png: starts with bytes 89 50 4e 47, expected an"):
        read_images(path)


def test_reader_names_an_unsupported_data_type(tmp_path: Path) -> None:
    path = tmp_path / "shorts"
    path.write_bytes(header(0x0B, (2, 28, 28)) + bytes(2 * 28 * 28 * 2))
    expected = r"shorts: data type 0x0B \(int16\) is not supported, expected 0x08 unsigned byte"
    with pytest.raises(DataError, match=expected):
        read_images(path)


def test_reader_names_an_unknown_data_type(tmp_path: Path) -> None:
    path = tmp_path / "odd"
    path.write_bytes(header(0x0A, (3,)) + bytes(3))
    with pytest.raises(DataError, match=r"data type 0x0A, not an IDX type, expected 0x08"):
        read_labels(path)


def test_reader_rejects_a_header_cut_inside_its_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "cut"
    path.write_bytes(header(0x08, (3, 28, 28))[:9])
    with pytest.raises(DataError, match=r"cut: header declares 3 dimensions but ends after 1"):
        read_images(path)


def test_reader_rejects_a_header_with_no_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "flat"
    path.write_bytes(bytes([0, 0, 8, 0]))
    with pytest.raises(DataError, match=r"flat: header declares 0 dimensions"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_reader_rejects_bytes_after_the_declared_data(tmp_path: Path, compress: bool) -> None:
    data = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8), 2051) + b"extra"
    path = tmp_path / "padded"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(DataError, match=r"need 2352 bytes of data, found more \(padded file"):
        read_images(path)


@pytest.mark.parametrize(
    "dims",
    [(2**32 - 1, 2**32 - 1, 2**32 - 1), (65536, 65536, 65536, 65536), (1 << 16, 1 << 15)],
    ids=["huge", "overflows-int64-to-zero", "just-over-1-GiB"],
)
def test_reader_refuses_absurd_dimensions_before_allocating(
    tmp_path: Path, dims: tuple[int, ...]
) -> None:
    path = tmp_path / "absurd"
    path.write_bytes(header(0x08, dims))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"absurd: dimensions .* more than the 1073741824"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_the_size_limit_can_be_lowered(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "images", np.zeros((3, 28, 28), dtype=np.uint8), 2051)
    with pytest.raises(DataError, match=r"declare 2352 bytes of data, more than the 1000"):
        read_idx(path, max_bytes=1000)


def test_a_gzip_bomb_is_read_only_as_far_as_its_header_declares(tmp_path: Path) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    chunks = [packer.compress(idx_bytes(np.zeros((1, 28, 28), dtype=np.uint8), 2051))]
    chunks += [packer.compress(bytes(1 << 20)) for _ in range(64)]
    path = tmp_path / "bomb.gz"
    path.write_bytes(b"".join(chunks) + packer.flush())
    assert path.stat().st_size < 100_000

    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"need 784 bytes of data, found more"):
            read_images(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_reader_rejects_a_gzip_file_with_a_wrong_checksum(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(idx_bytes(np.ones((2, 28, 28), dtype=np.uint8), 2051)))
    data[-8] ^= 0xFF  # the CRC-32 of the trailer
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"crc.gz: cannot read: corrupt gzip data \(CRC check"):
        read_images(path)


def test_reader_names_a_folder_given_as_a_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cannot read: is a directory"):
        read_images(tmp_path)


def test_loader_rejects_more_labels_than_images(tmp_path: Path, mnist: Dataset) -> None:
    small = small_dataset(mnist, 50, 20)
    small.train_labels = mnist.train_labels[:51]
    with pytest.raises(DataError, match=r"50 train images but 51 labels"):
        load_dataset(write_dataset(tmp_path / "bad", small))


def test_loader_rejects_a_split_without_images(tmp_path: Path, mnist: Dataset) -> None:
    small = small_dataset(mnist, 50, 0)
    with pytest.raises(DataError, match=r"bad: the test files hold no images"):
        load_dataset(write_dataset(tmp_path / "bad", small))


def test_loader_rejects_images_that_are_not_28_by_28(tmp_path: Path, mnist: Dataset) -> None:
    small = small_dataset(mnist, 50, 20)
    small.train_images = np.zeros((50, 14, 56), dtype=np.uint8)
    with pytest.raises(DataError, match=r"train images are \(14, 56\), expected \(28, 28\)"):
        load_dataset(write_dataset(tmp_path / "bad", small))


def test_loader_names_an_unreadable_checksum_list(tmp_path: Path, mnist: Dataset) -> None:
    folder = write_dataset(tmp_path / "summed", small_dataset(mnist, 50, 20))
    (folder / "SHA256SUMS.raw").write_bytes(b"\xff\xfe" * 100)
    with pytest.raises(DataError, match=r"SHA256SUMS.raw: cannot read the checksum list"):
        load_dataset(folder)
