"""Property-based fuzzing of the file readers: only their documented errors may escape.

The IDX reader may raise DataError, the model loader ModelFileError, and image reading with
preprocessing ImageError or NoDigitError, and nothing else, for any bytes at all. Inputs are
random bytes and, more usefully, real files with mutated bytes.

The normal suite runs a bounded, derandomized number of examples per test (the "fuzz" profile).
For a long run that explores new inputs each time:

    DIGITNET_FUZZ=long .venv/bin/python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageDraw

from conftest import idx_bytes, small_dataset
from digitnet.checkpoint import ModelFileError, load_model, save_model
from digitnet.config import TrainConfig
from digitnet.data import DataError, Dataset, read_idx, read_images, read_labels, scale_pixels
from digitnet.network import init_network
from digitnet.preprocess import (
    ImageError,
    NoDigitError,
    decode_image,
    load_image,
    preprocess_image,
)
from digitnet.state import EpochStats, load_checkpoint, save_checkpoint
from digitnet.train import (
    TrainingDivergedError,
    TrainingInterrupted,
    fit,
    make_schedule,
    train_epoch,
)

QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile(
    "fuzz", max_examples=200, deadline=None, derandomize=True, suppress_health_check=QUIET
)
settings.register_profile(
    "fuzz-long", max_examples=20_000, deadline=None, suppress_health_check=QUIET
)
PROFILES = {"": "fuzz", "normal": "fuzz", "long": "fuzz-long"}
FUZZ_LEVEL = os.environ.get("DIGITNET_FUZZ", "")
if FUZZ_LEVEL not in PROFILES:
    raise ValueError(f"DIGITNET_FUZZ must be 'normal' or 'long', got {FUZZ_LEVEL!r}")
fuzz = settings(settings.get_profile(PROFILES[FUZZ_LEVEL]))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One file, rewritten by every example (function-scoped tmp_path does not mix with given)."""
    yield tmp_path_factory.mktemp("fuzz") / "input"


@st.composite
def mutated(draw: st.DrawFn, original: bytes, hot_spots: tuple[int, ...] = ()) -> bytes:
    """original with a few bytes flipped, overwritten, inserted or cut; hot spots favoured."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        anywhere = st.integers(0, len(data) - 1)
        spots = [p for p in hot_spots if p < len(data)]
        at = draw(st.one_of(anywhere, st.sampled_from(spots)) if spots else anywhere)
        action = draw(st.sampled_from(["flip", "set", "insert", "cut", "word"]))
        if action == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "set":
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "cut":
            del data[at:]
        else:
            data[at : at + 4] = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big")
    return bytes(data)


def small_idx(draw: st.DrawFn) -> tuple[bytes, int]:
    """The bytes of a small valid IDX images or labels file, and its magic number."""
    if draw(st.booleans()):
        shape: tuple[int, ...] = (
            draw(st.integers(0, 4)),
            draw(st.integers(0, 6)),
            draw(st.integers(0, 6)),
        )
        magic = 2051
    else:
        shape, magic = (draw(st.integers(0, 30)),), 2049
    values = draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, 12)))
    return idx_bytes(values, magic), magic


@st.composite
def broken_idx(draw: st.DrawFn) -> bytes:
    """A mutated IDX file, gzipped before or after the mutation, or not at all."""
    raw, _ = small_idx(draw)
    header_spots = tuple(range(16))
    wrapping = draw(st.sampled_from(["raw", "gzip-then-mutate", "mutate-then-gzip"]))
    if wrapping == "raw":
        return draw(mutated(raw, header_spots))
    if wrapping == "mutate-then-gzip":
        return gzip.compress(draw(mutated(raw, header_spots)), mtime=0)
    packed = gzip.compress(raw, mtime=0)
    return draw(mutated(packed, (*range(10), *range(len(packed) - 8, len(packed)))))


def read_with_every_reader(path: Path) -> None:
    """Each reader either returns a consistent array or raises DataError."""
    for reader in (read_idx, read_images, read_labels):
        try:
            values = reader(path)
        except DataError:
            continue
        assert values.dtype == np.uint8
        assert len(path.read_bytes()) > 0
        if reader is read_labels:
            assert values.ndim == 1 and (values.size == 0 or values.max() <= 9)
        if reader is read_images:
            assert values.ndim == 3


@fuzz
@given(data=st.binary(max_size=600))
def test_idx_reader_raises_only_data_error_on_random_bytes(scratch: Path, data: bytes) -> None:
    scratch.write_bytes(data)
    read_with_every_reader(scratch)


@fuzz
@given(data=broken_idx())
def test_idx_reader_raises_only_data_error_on_mutated_files(scratch: Path, data: bytes) -> None:
    scratch.write_bytes(data)
    read_with_every_reader(scratch)


@fuzz
@given(
    values=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)),
    compress=st.booleans(),
)
def test_any_valid_idx_file_reads_back_exactly(
    scratch: Path, values: np.ndarray, compress: bool
) -> None:
    magic = 0x0800 + values.ndim
    raw = idx_bytes(values, magic)
    scratch.write_bytes(gzip.compress(raw, mtime=0) if compress else raw)
    assert np.array_equal(read_idx(scratch, magic), values)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    network = init_network((784, 3, 10), np.random.default_rng(0))
    path = tmp_path_factory.mktemp("model") / "model.npz"
    save_model(path, network, {"history": [], "test_accuracy": 0.5, "config": {"seed": 0}})
    return path.read_bytes()


def structure_spots(data: bytes) -> tuple[int, ...]:
    """Offsets in and just after each zip record signature and .npy header: the parsed parts."""
    spots: list[int] = []
    for marker in (b"PK\x01\x02", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY"):
        start = data.find(marker)
        while start != -1:
            spots.extend(range(start, min(start + 90, len(data))))
            start = data.find(marker, start + 1)
    return tuple(spots)


def load_or_refuse(path: Path) -> None:
    """load_model either returns a usable network or raises ModelFileError."""
    try:
        network, metadata = load_model(path)
    except ModelFileError:
        return
    assert isinstance(metadata, dict) and network.sizes[0] == 784 and network.sizes[-1] == 10
    for value in network.params.values():
        assert value.dtype == np.float32 and np.all(np.isfinite(value))


@fuzz
@given(data=st.binary(max_size=600))
def test_model_loader_raises_only_model_file_error_on_random_bytes(
    scratch: Path, data: bytes
) -> None:
    scratch.write_bytes(b"PK\x03\x04" + data)
    load_or_refuse(scratch)


@fuzz
@given(data=st.data())
def test_model_loader_raises_only_model_file_error_on_mutated_files(
    scratch: Path, model_file: bytes, data: st.DataObject
) -> None:
    scratch.write_bytes(data.draw(mutated(model_file, structure_spots(model_file))))
    load_or_refuse(scratch)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["format_version", "sizes", "history", "config", "test_accuracy", "val_accuracy"]
)
ARRAYS = hnp.arrays(
    st.sampled_from(["<f4", "<f8", ">f4", "<f2", "<i4", "|u1", "|b1", "<c8", "|S3", "<U2"]),
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12),
)


@pytest.fixture(scope="module")
def model_arrays(model_file: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(model_file)) as archive:
        return {name: archive[name] for name in archive.files}


@st.composite
def edited_model(draw: st.DrawFn, original: dict[str, np.ndarray]) -> dict[str, Any]:
    """The arrays of a real model with some dropped, replaced or added, and metadata edited."""
    arrays: dict[str, Any] = dict(original)
    metadata = json.loads(arrays["metadata"].tobytes())
    for name in draw(st.lists(st.sampled_from(sorted(arrays)), max_size=3, unique=True)):
        if draw(st.booleans()):
            del arrays[name]
        else:
            arrays[name] = draw(ARRAYS)
    for name in draw(st.lists(st.sampled_from(["W3", "b3", "x"]), max_size=2, unique=True)):
        arrays[name] = draw(ARRAYS)
    for field in draw(st.lists(FIELDS, max_size=2, unique=True)):
        metadata[field] = draw(JSON)
    if "metadata" in arrays and draw(st.booleans()):
        text = json.dumps(metadata, allow_nan=True).encode()
        arrays["metadata"] = np.frombuffer(text, dtype=np.uint8)
    return arrays


@fuzz
@given(data=st.data())
def test_model_loader_raises_only_model_file_error_on_edited_models(
    scratch: Path, model_arrays: dict[str, np.ndarray], data: st.DataObject
) -> None:
    arrays = data.draw(edited_model(model_arrays))
    with scratch.open("wb") as handle:
        np.savez(handle, **arrays)
    load_or_refuse(scratch)


# ---- training checkpoints -------------------------------------------------------------------

# Every kind of state a checkpoint carries: Adam's two slots, best weights, the generator.
CHECKPOINT_RUN = TrainConfig(
    epochs=3, batch_size=16, learning_rate=0.01, hidden=(3,), optimizer="adam", dropout=0.1,
    augment="affine", patience=2, validation_size=16, seed=1,
)  # fmt: skip
CHECKPOINT_FIELDS = [
    "epoch", "stale_epochs", "optimizer_steps", "best_accuracy", "rng", "history", "config",
    "source", "threads", "kind", "sizes", "activation", "output",
]  # fmt: skip
NEAR = JSON | st.integers(-3, 12) | st.floats(-1.0, 2.0) | st.integers(2**127, 2**129)
FLOATS = st.sampled_from(["<f4", "<f8", ">f8", "<f2"])


@pytest.fixture(scope="module")
def checkpoint_images(mnist: Dataset) -> Dataset:
    return small_dataset(mnist, 48, 4)


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory: pytest.TempPathFactory, checkpoint_images: Dataset) -> bytes:
    """The bytes of CHECKPOINT_RUN's checkpoint after its first epoch."""
    path = tmp_path_factory.mktemp("checkpoint") / "run.checkpoint.npz"

    def stop(stats: EpochStats) -> None:
        raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        fit(CHECKPOINT_RUN, checkpoint_images, on_epoch=stop, checkpoint=path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def checkpoint_arrays(checkpoint_file: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(checkpoint_file)) as archive:
        return {name: archive[name] for name in archive.files}


@st.composite
def edited_array(draw: st.DrawFn, original: np.ndarray | None) -> np.ndarray:
    """A random array, or one shaped like original with any values, or original reshaped."""
    if original is None or draw(st.booleans()):
        return draw(ARRAYS)
    if draw(st.booleans()):
        return draw(hnp.arrays(draw(FLOATS), original.shape))
    return original.T if original.ndim == 2 else original.reshape(1, -1)


@st.composite
def edited_checkpoint(draw: st.DrawFn, original: dict[str, np.ndarray]) -> dict[str, Any]:
    """A real checkpoint with arrays dropped, replaced or added, and metadata fields (or the
    fields inside its settings, generator state and history) replaced or removed."""
    arrays: dict[str, Any] = dict(original)
    metadata = json.loads(arrays.pop("metadata").tobytes())
    extra = ["optimizer/velocity/W1", "optimizer/m/W3", "best/W3", "params/W3", "junk"]
    for name in draw(st.lists(st.sampled_from(sorted(arrays) + extra), max_size=3, unique=True)):
        if name in arrays and draw(st.booleans()):
            del arrays[name]
        else:
            arrays[name] = draw(edited_array(arrays.get(name)))
    for _ in range(draw(st.integers(0, 3))):
        place = draw(st.sampled_from(edit_places(metadata)))
        keys = CHECKPOINT_FIELDS if place is metadata else sorted(place)
        key = draw(st.sampled_from(keys))
        if draw(st.integers(0, 4)) == 0:
            place.pop(key, None)
        else:
            place[key] = draw(NEAR)
    text = json.dumps(metadata, allow_nan=True).encode()
    return {**arrays, "metadata": np.frombuffer(text, dtype=np.uint8)}


def edit_places(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The metadata and the non-empty dictionaries inside it: settings, generator, history."""
    rng = metadata.get("rng")
    history = metadata.get("history")
    places = [metadata, metadata.get("config"), rng]
    places += [rng.get("state") if isinstance(rng, dict) else None]
    places += history if isinstance(history, list) else []
    return [place for place in places if isinstance(place, dict) and place]


def resume_or_refuse(path: Path, images: Dataset) -> None:
    """load_checkpoint either raises ModelFileError or gives a state that trains on and saves."""
    try:
        state = load_checkpoint(path)
    except ModelFileError:
        event("refused")
        return
    event("resumed")
    config = state.config
    assert 0 <= state.stale_epochs <= state.epoch == len(state.history.epochs) <= config.epochs
    arrays = {**state.network.params, **state.optimizer.state, **(state.best_params or {})}
    for name, value in arrays.items():
        assert value.dtype == np.float32 and np.all(np.isfinite(value)), name
        assert value.flags.f_contiguous or not name.rsplit("/", 1)[-1].startswith("W"), name

    X = scale_pixels(images.train_images)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            train_epoch(state, X, images.train_labels, make_schedule(config, 3))
    except TrainingDivergedError:
        event("diverged")  # well-formed but absurd weights: training's own documented error
        return
    state.record_validation(0.5)
    save_checkpoint(path, state)
    again = load_checkpoint(path)
    assert all(np.array_equal(again.network.params[k], v) for k, v in state.network.params.items())


@fuzz
@given(data=st.data())
def test_checkpoint_loader_raises_only_model_file_error_on_mutated_files(
    scratch: Path, checkpoint_file: bytes, checkpoint_images: Dataset, data: st.DataObject
) -> None:
    scratch.write_bytes(data.draw(mutated(checkpoint_file, structure_spots(checkpoint_file))))
    resume_or_refuse(scratch, checkpoint_images)


@fuzz
@given(data=st.data())
def test_checkpoint_loader_raises_only_model_file_error_on_edited_checkpoints(
    scratch: Path,
    checkpoint_arrays: dict[str, np.ndarray],
    checkpoint_images: Dataset,
    data: st.DataObject,
) -> None:
    arrays = data.draw(edited_checkpoint(checkpoint_arrays))
    with scratch.open("wb") as handle:
        np.savez(handle, **arrays)
    resume_or_refuse(scratch, checkpoint_images)


# ---- images ---------------------------------------------------------------------------------

FUZZ_PIXEL_LIMIT = 4_000_000  # keeps mutated size fields from costing seconds per example


def digit_drawing() -> Image.Image:
    """A 7 in dark ink on light paper, 48x40 pixels, with a little noise for the codecs."""
    image = Image.new("L", (40, 48), 235)
    ImageDraw.Draw(image).line([(8, 8), (32, 8), (18, 42)], fill=20, width=5)
    noise = np.random.default_rng(0).integers(0, 12, (48, 40), dtype=np.uint8)
    return Image.fromarray(np.asarray(image) - noise)


def encoded(image: Image.Image, mode: str, file_format: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, format=file_format, **options)
    return buffer.getvalue()


def sixteen_bit(image: Image.Image) -> Image.Image:
    """The 8-bit image spread over the 16-bit range, as a 16-bit scan would be."""
    return Image.fromarray(np.asarray(image).astype(np.uint16) * 257)


def image_files() -> dict[str, bytes]:
    """Real image files of a digit in the formats and modes people send."""
    digit = digit_drawing()
    return {
        "png-L": encoded(digit, "L", "PNG"),
        "png-RGBA": encoded(digit, "RGBA", "PNG"),
        "png-P": encoded(digit, "P", "PNG"),
        "png-1": encoded(digit, "1", "PNG"),
        "png-I;16": encoded(sixteen_bit(digit), "I;16", "PNG"),
        "jpeg-RGB": encoded(digit, "RGB", "JPEG", quality=80),
        "jpeg-CMYK": encoded(digit, "CMYK", "JPEG"),
        "jpeg-progressive": encoded(digit, "L", "JPEG", progressive=True),
        "gif": encoded(digit, "P", "GIF"),
        "bmp": encoded(digit, "RGB", "BMP"),
        "tiff": encoded(digit, "RGB", "TIFF"),
        "tiff-lzw": encoded(digit, "L", "TIFF", compression="tiff_lzw"),
        "webp": encoded(digit, "RGB", "WEBP"),
    }


IMAGE_FILES = image_files()


@st.composite
def broken_image(draw: st.DrawFn) -> bytes:
    """A real image file with a few bytes mutated, headers (the first 64 bytes) favoured."""
    original = IMAGE_FILES[draw(st.sampled_from(sorted(IMAGE_FILES)))]
    return draw(mutated(original, tuple(range(64))))


def preprocess_or_refuse(read: Any) -> None:
    """read() then preprocess either gives an MNIST-like input or raises a documented error."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = FUZZ_PIXEL_LIMIT
    try:
        pixels = preprocess_image(read())
    except (ImageError, NoDigitError) as exc:
        event(f"refused: {type(exc).__name__}")
        return
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    event("read as a digit")
    assert pixels.shape == (28, 28) and pixels.dtype == np.float32
    assert np.all(np.isfinite(pixels)) and pixels.min() >= 0.0 and pixels.max() <= 1.0


def test_every_seed_image_is_read_as_a_digit() -> None:
    for name, data in IMAGE_FILES.items():
        pixels = preprocess_image(decode_image(data, name))
        assert pixels.max() > 0.5, name


# Nothing, or the signatures of PNG, JPEG, GIF, BMP, little-endian TIFF and WebP.
SIGNATURES = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\x00", b"RIFF"]


@fuzz
@given(signature=st.sampled_from(SIGNATURES), data=st.binary(max_size=600))
def test_image_reading_raises_only_image_errors_on_random_bytes(
    signature: bytes, data: bytes
) -> None:
    preprocess_or_refuse(lambda: decode_image(signature + data, "upload"))


@fuzz
@given(data=broken_image())
def test_image_reading_raises_only_image_errors_on_mutated_uploads(data: bytes) -> None:
    preprocess_or_refuse(lambda: decode_image(data, "upload"))


@fuzz
@given(data=broken_image())
def test_image_reading_raises_only_image_errors_on_mutated_files(
    scratch: Path, data: bytes
) -> None:
    scratch.write_bytes(data)
    preprocess_or_refuse(lambda: load_image(scratch))
