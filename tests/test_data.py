"""The IDX reader on the real MNIST files and on broken ones."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from conftest import idx_bytes, small_dataset, write_dataset, write_idx
from digitnet.data import (
    DataError,
    Dataset,
    bundled_data_dir,
    load_dataset,
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
    with pytest.raises(DataError, match=r"label 12 is outside 0-9"):
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


def test_validation_split_holds_out_the_last_images(mnist: Dataset) -> None:
    train_x, _, val_x, val_y = split_validation(mnist.train_images, mnist.train_labels, 5000)
    assert train_x.shape[0] == 55000 and val_x.shape[0] == 5000
    assert np.array_equal(val_y, mnist.train_labels[55000:])
    with pytest.raises(ValueError, match=r"validation size must be between 0 and 59999"):
        split_validation(mnist.train_images, mnist.train_labels, 60000)
