"""Preprocessing: any picture of a digit becomes an MNIST-like 28x28 input."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitnet.data import Dataset, scale_pixels
from digitnet.preprocess import (
    ImageError,
    NoDigitError,
    decode_image,
    load_image,
    preprocess_array,
    preprocess_batch,
    preprocess_image,
)
from photos import lighting, png_header_only, texture, write_bad_files


@pytest.fixture(scope="module")
def digit(mnist: Dataset) -> np.ndarray:
    """A 7 from the MNIST test set."""
    seven: np.ndarray = mnist.test_images[0]
    return seven


def on_paper(digit: np.ndarray, scale: int = 6, size: tuple[int, int] = (260, 200)) -> np.ndarray:
    """The digit enlarged as dark ink on white paper, off-centre on a non-square page."""
    big = np.kron(digit, np.ones((scale, scale), dtype=np.uint8))
    page = np.zeros(size, dtype=np.uint8)
    page[20 : 20 + big.shape[0], 10 : 10 + big.shape[1]] = big
    return 255 - page


ACCEPTED_SHAPES = re.escape(
    "expected the shape (H, W) or (H, W, 3|4) of one image, (784,) of one flattened 28x28 image,"
    " or (N, H, W) or (N, 784) of N images; got ("
)


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def test_mnist_digits_pass_through_with_the_loaders_exact_scaling(mnist: Dataset) -> None:
    digits = mnist.test_images[:50]
    expected = scale_pixels(digits).reshape(-1, 28, 28)
    for image, want in zip(digits, expected, strict=True):
        assert np.array_equal(preprocess_array(image), want)
        assert np.array_equal(preprocess_image(Image.fromarray(image)), want)


def test_every_mnist_test_digit_passes_through_a_batch_unchanged(mnist: Dataset) -> None:
    inputs, found = preprocess_batch(mnist.test_images)
    assert found.all()
    assert np.array_equal(inputs, scale_pixels(mnist.test_images).reshape(-1, 28, 28))


def in_corner(digit: np.ndarray, resample: Image.Resampling = Image.Resampling.BOX) -> np.ndarray:
    """The 28x28 digit shrunk to 14x14 (by area averaging), at the top left of a black 28x28."""
    corner = np.zeros((28, 28), dtype=np.uint8)
    corner[:14, :14] = np.asarray(Image.fromarray(digit).resize((14, 14), resample))
    return corner


def test_a_small_or_off_centre_digit_on_28x28_is_cropped_scaled_and_centred(
    digit: np.ndarray,
) -> None:
    moved = np.pad(digit, 5)[:28, :28]  # 5 pixels down and right
    for image in (in_corner(digit), moved):
        result = preprocess_array(image)
        rows, cols = np.flatnonzero(result.any(axis=1)), np.flatnonzero(result.any(axis=0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (19, 20, 21)
        mass = result / result.sum()
        assert abs(mass.sum(axis=1) @ np.arange(28) - 14) < 1
        assert abs(mass.sum(axis=0) @ np.arange(28) - 14) < 1


def test_preprocessing_an_input_again_gives_it_back(mnist: Dataset) -> None:
    """Lanczos shrinking leaves faint ringing, so the faint edges of these inputs are wide."""
    for digit in mnist.test_images[:20]:
        first = preprocess_array(in_corner(digit, Image.Resampling.LANCZOS))
        assert np.array_equal(preprocess_array(first), first)
        saved = np.round(first * 255).astype(np.uint8)  # as `predict --show-input` saves it
        assert np.array_equal(preprocess_array(saved), scale_pixels(saved[None])[0].reshape(28, 28))


def test_mnist_digit_on_a_larger_canvas_comes_back_nearly_unchanged(mnist: Dataset) -> None:
    for image in mnist.test_images[:30]:
        canvas = np.zeros((50, 70), dtype=np.uint8)
        canvas[7:35, 31:59] = image
        result = preprocess_array(canvas)
        assert mean_difference(result, image / 255.0) < 0.01
        assert np.abs(result - image / 255.0).max() < 0.1


def test_dark_ink_on_light_paper_is_inverted(digit: np.ndarray) -> None:
    assert np.allclose(preprocess_array(255 - digit), digit / 255.0, atol=1e-6)


def test_output_is_a_centred_20_pixel_digit_in_28x28(digit: np.ndarray) -> None:
    result = preprocess_array(on_paper(digit))
    assert result.shape == (28, 28) and result.dtype == np.float32
    assert result.min() >= 0.0 and result.max() <= 1.0 and result.max() > 0.9
    rows, cols = np.flatnonzero(result.any(axis=1)), np.flatnonzero(result.any(axis=0))
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (20, 21)
    mass = result / result.sum()
    assert abs(mass.sum(axis=1) @ np.arange(28) - 14) < 1
    assert abs(mass.sum(axis=0) @ np.arange(28) - 14) < 1


def test_a_tall_thin_stroke_keeps_its_aspect_ratio() -> None:
    page = np.full((300, 300), 250, dtype=np.uint8)
    page[50:250, 140:160] = 20  # a bar 200 high and 20 wide
    result = preprocess_array(page)
    rows, cols = np.flatnonzero(result.any(axis=1)), np.flatnonzero(result.any(axis=0))
    assert rows[-1] - rows[0] + 1 == 20
    assert cols[-1] - cols[0] + 1 <= 4


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "I", "F"])
def test_every_common_mode_gives_the_same_digit(digit: np.ndarray, mode: str) -> None:
    reference = preprocess_array(on_paper(digit))
    image = Image.fromarray(on_paper(digit)).convert(mode)
    if mode == "F":
        image = Image.fromarray(np.asarray(image) / np.float32(255))
    assert mean_difference(preprocess_image(image), reference) < 0.02


def test_16_bit_image_gives_the_same_digit(digit: np.ndarray) -> None:
    wide = Image.fromarray(on_paper(digit).astype(np.uint16) * 257)
    assert wide.mode.startswith("I;16")
    assert mean_difference(preprocess_image(wide), preprocess_array(on_paper(digit))) < 0.02


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_over_white(digit: np.ndarray, mode: str) -> None:
    ink = 255 - on_paper(digit)
    rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)  # black everywhere, shown only where inked
    rgba[..., 3] = ink
    image = Image.fromarray(rgba)
    if mode == "LA":
        image = image.convert("LA")
    if mode == "P":
        binary = (ink > 127).astype(np.uint8)
        image = Image.fromarray(binary, mode="L").convert("P")
        image.info["transparency"] = 0  # palette entry 0 (the paper) is transparent
    result = preprocess_image(image)
    assert mean_difference(result, preprocess_array(on_paper(digit))) < 0.05


def test_uneven_lighting_darker_than_the_ink_elsewhere(digit: np.ndarray) -> None:
    paper = on_paper(digit) / 255.0
    light = np.linspace(1.0, 0.25, paper.shape[1])[None, :]  # the right edge is in shadow
    photo = np.clip(paper * light + 0.05 * (1 - paper), 0, 1)
    ink_left = photo[paper < 0.5].min()
    assert photo[:, -5:].max() < photo[paper < 0.5].max() and ink_left < 0.3
    result = preprocess_array(photo)
    assert mean_difference(result, preprocess_array(on_paper(digit))) < 0.03


def test_textured_paper_gives_the_same_digit(digit: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    paper = on_paper(digit) / 255.0
    photo = np.clip(paper * 0.9 * lighting(paper.shape, rng) + texture(paper.shape, rng), 0, 1)
    result = preprocess_array(photo)
    assert mean_difference(result, preprocess_array(on_paper(digit))) < 0.03


def test_huge_image_is_shrunk_before_processing(digit: np.ndarray) -> None:
    page = on_paper(digit, scale=60, size=(2400, 1900))
    result = preprocess_image(Image.fromarray(page))
    assert mean_difference(result, preprocess_array(on_paper(digit))) < 0.03


def jpeg(pixels: np.ndarray) -> Image.Image:
    buffer = io.BytesIO()
    Image.fromarray((255 * pixels).round().astype(np.uint8)).save(buffer, "JPEG", quality=70)
    buffer.seek(0)
    return Image.open(buffer)


BLANK_PAGES: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "white": lambda rng: np.ones((300, 200)),
    "black": lambda rng: np.zeros((60, 40)),
    "grey": lambda rng: np.full((100, 100), 0.5),
    "mnist-sized black": lambda rng: np.zeros((28, 28)),
    "unevenly lit": lambda rng: 0.9 * lighting((300, 400), rng),
    "textured": lambda rng: np.clip(
        0.9 * lighting((300, 400), rng) + texture((300, 400), rng), 0, 1
    ),
    "white noise": lambda rng: rng.uniform(0, 1, (100, 100)),
}


@pytest.mark.parametrize("kind", list(BLANK_PAGES))
def test_blank_pages_have_no_digit(kind: str) -> None:
    pixels = BLANK_PAGES[kind](np.random.default_rng(3))
    with pytest.raises(NoDigitError, match="no digit found"):
        preprocess_array(pixels)
    with pytest.raises(NoDigitError, match="no digit found"):
        preprocess_image(jpeg(pixels))


def test_animated_gif_uses_its_first_frame(tmp_path: Path, digit: np.ndarray) -> None:
    first = Image.fromarray(on_paper(digit)).convert("P")
    blank = Image.new("P", first.size, 0)
    first.save(tmp_path / "a.gif", save_all=True, append_images=[blank])
    result = preprocess_image(load_image(tmp_path / "a.gif"))
    assert mean_difference(result, preprocess_array(on_paper(digit))) < 0.02


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("text", "not a supported image"),
        ("empty", "empty file"),
        ("truncated", "truncated"),
        ("directory", "is a directory"),
        ("bomb", "too large to decode safely (900000000 pixels"),
    ],
)
def test_unreadable_files_raise_one_line_naming_the_file(
    tmp_path: Path, digit: np.ndarray, kind: str, message: str
) -> None:
    path = write_bad_files(tmp_path, digit)[kind]
    with pytest.raises(ImageError) as error:
        load_image(path)
    text = str(error.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 28 28
%%EndComments
newpath 4 4 moveto 24 24 lineto stroke
showpage
%%EOF
"""


def test_an_eps_file_is_refused_as_not_a_supported_image(tmp_path: Path) -> None:
    path = tmp_path / "seven.eps"
    path.write_bytes(EPS)
    with Image.open(path) as unrestricted:  # Pillow alone would take it, to run Ghostscript on
        assert unrestricted.format == "EPS"
    readers: list[Callable[[], object]] = [
        lambda: load_image(path),
        lambda: decode_image(EPS, "upload"),
    ]
    for read in readers:
        with pytest.raises(ImageError) as error:
            read()
        assert "not a supported image (digitnet reads PNG, JPEG" in str(error.value)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("suffix", [".bmp", ".ppm", ".pgm", ".pbm"])
def test_bmp_and_netpbm_files_are_read(tmp_path: Path, digit: np.ndarray, suffix: str) -> None:
    image = Image.fromarray(on_paper(digit)).convert("1" if suffix == ".pbm" else "L")
    image.convert("RGB" if suffix == ".ppm" else image.mode).save(tmp_path / f"seven{suffix}")
    result = preprocess_image(load_image(tmp_path / f"seven{suffix}"))
    assert mean_difference(result, preprocess_array(on_paper(digit))) < 0.02


def test_image_just_above_the_pixel_limit_names_its_size(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(png_header_only(10_000, 10_000))
    with pytest.raises(ImageError, match=r"too large to decode safely \(10000 x 10000 pixels"):
        load_image(path)


def test_missing_file_is_an_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"nothing\.png: no such file"):
        load_image(tmp_path / "nothing.png")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((28, 28), 1.5), r"float pixels must be within \[0, 1\]"),
        (np.full((28, 28), -3), "integer pixels must be within 0-255"),
        (np.full((28, 28), np.nan), "got 784 NaN or infinite values"),
        (np.where(np.eye(28) > 0, np.inf, 0.0), "got 28 NaN or infinite values"),
        (np.zeros((2, 3, 28, 28)), ACCEPTED_SHAPES),
        (np.zeros(5), ACCEPTED_SHAPES),
        (np.zeros((0, 784)), r"holds no images \(its shape is \(0, 784\)\)"),
        (np.zeros((40, 0)), "holds no images"),
        (np.zeros((3, 783)), "rows hold 784 values, not 783"),
        (np.zeros((3, 785)), "rows hold 784 values, not 785"),
        (np.zeros((5, 28, 28)), r"expected one image .* got a batch of shape \(5, 28, 28\)"),
        (np.array(["a", "b"]).reshape(1, 2), "must be real numbers .* got dtype <U1"),
        (np.ones((28, 28), dtype=complex), "must be real numbers .* got dtype complex128"),
        (np.ones((28, 28), dtype="m8[s]"), "must be real numbers .* got dtype timedelta64"),
        (np.full((28, 28), None), "must be real numbers .* got dtype object"),
    ],
)
def test_bad_arrays_are_refused_with_the_reason(array: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        preprocess_array(array)


def test_batch_matches_one_by_one_and_marks_blank_images(mnist: Dataset) -> None:
    batch = mnist.test_images[:40].copy()
    batch[3] = 0  # blank
    batch[5] = 255 - batch[5]  # inverted, needs the per-image path
    inputs, found = preprocess_batch(batch)
    assert found.tolist() == [index != 3 for index in range(40)]
    for index in np.flatnonzero(found):
        assert np.array_equal(inputs[index], preprocess_array(batch[index]))
    assert not inputs[3].any()
    flat_inputs, _ = preprocess_batch(batch.reshape(40, 784))
    assert np.array_equal(flat_inputs, inputs)


def test_large_jpeg_is_decoded_at_reduced_scale_with_the_same_result(
    tmp_path: Path, digit: np.ndarray
) -> None:
    page = on_paper(digit, scale=40, size=(1500, 2000))
    Image.fromarray(page).save(tmp_path / "big.jpg", quality=95)
    image = load_image(tmp_path / "big.jpg")
    assert min(image.size) >= 512 and image.size[0] < 2000
    full = preprocess_image(Image.open(tmp_path / "big.jpg").convert("L"))
    assert mean_difference(preprocess_image(image), full) < 0.01


def test_decode_image_guards_uploaded_bytes_like_files(digit: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(on_paper(digit)).save(buffer, "PNG")
    image = decode_image(buffer.getvalue(), "upload")
    assert np.array_equal(preprocess_image(image), preprocess_array(on_paper(digit)))
    cases = {
        b"": "upload: empty file",
        b"hello": "upload: not a supported image",
        png_header_only(30_000, 30_000): "upload: too large to decode safely",
        buffer.getvalue()[:200]: "upload: truncated",
    }
    for data, message in cases.items():
        with pytest.raises(ImageError, match=message):
            decode_image(data, "upload")


def test_photo_is_turned_upright_by_its_exif_orientation(tmp_path: Path, digit: np.ndarray) -> None:
    sideways = Image.fromarray(on_paper(digit)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to view
    sideways.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = load_image(tmp_path / "phone.jpg")
    assert upright.size == (200, 260)
    assert mean_difference(preprocess_image(upright), preprocess_array(on_paper(digit))) < 0.02


def test_small_digit_on_a_large_unevenly_lit_page(digit: np.ndarray) -> None:
    ink = np.kron(digit, np.ones((2, 2), dtype=np.uint8)) / 255.0
    page = 0.9 * np.linspace(0.65, 1.0, 600)[:, None] * np.ones((600, 800))
    page[520:576, 20:76] *= 1.0 - 0.9 * ink  # 56 pixels high: under 1% of the page is ink
    photo = (255 * page).round().astype(np.uint8)
    result = preprocess_array(photo)
    assert mean_difference(result, preprocess_array(on_paper(digit))) < 0.05


THIN_IMAGES = {
    "1x1 black": np.zeros((1, 1), dtype=np.uint8),
    "1x1 white": np.full((1, 1), 255, dtype=np.uint8),
    "one dark pixel": np.pad(np.zeros((1, 1), dtype=np.uint8), 1, constant_values=255),
    "1x20000 dashes": np.where(np.arange(20_000) % 100 < 50, 0, 255).astype(np.uint8)[None],
    "20000x1 dashes": np.where(np.arange(20_000) % 100 < 50, 0, 255).astype(np.uint8)[:, None],
    "2x60000 stripes": np.tile(np.where(np.arange(60_000) % 7 < 3, 0, 255), (2, 1)),
}


@pytest.mark.parametrize("kind", list(THIN_IMAGES))
def test_tiny_and_absurdly_thin_images_give_an_input_or_no_digit(kind: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(THIN_IMAGES[kind].astype(np.uint8)).save(buffer, "PNG")
    try:
        result = preprocess_image(decode_image(buffer.getvalue(), kind))
    except NoDigitError:
        return
    assert result.shape == (28, 28) and 0.0 <= result.min() <= result.max() <= 1.0


def test_a_mode_pillow_cannot_convert_is_an_image_error() -> None:
    image = Image.new("RGBA", (40, 40), "white").convert("RGBa").convert("La")
    assert image.mode == "La"
    with pytest.raises(ImageError, match="images of mode La cannot be read"):
        preprocess_image(image)


def test_pipes_and_devices_are_refused_without_being_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(ImageError, match="not a regular file, expected an image file"):
            load_image(path)


# NOTE: the peak is read from VmHWM, which starts afresh with the new program; ru_maxrss would
# also count the memory of the forked test process itself.
BOMB_READER = """
import re, sys
from pathlib import Path
from digitnet.preprocess import NoDigitError, load_image, preprocess_image
try:
    preprocess_image(load_image(sys.argv[1]))
except NoDigitError:
    pass
status = Path("/proc/self/status").read_text()
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) // 1024)
"""


def test_a_bomb_just_under_the_pixel_limit_costs_its_decoded_size_once(tmp_path: Path) -> None:
    """9000 x 9000 blank 1-bit pixels in a 28 kB file: Pillow holds them in 81 MB; float32
    copies of them at full size would push the peak past 800 MB, so preprocessing shrinks the
    image on Pillow's pixels first."""
    path = tmp_path / "page.png"
    Image.new("1", (9000, 9000), 1).save(path)
    assert (
        path.stat().st_size < 50_000
        and Image.MAX_IMAGE_PIXELS is not None
        and Image.MAX_IMAGE_PIXELS > 9000 * 9000
    )
    run = subprocess.run(
        [sys.executable, "-c", BOMB_READER, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert int(run.stdout) < 400  # peak MiB: the interpreter and libraries, plus 2 x 81 MB


def test_a_batch_of_larger_pictures_matches_them_one_by_one(mnist: Dataset) -> None:
    pages = np.stack([on_paper(image, 3, (110, 100)) for image in mnist.test_images[:4]])
    pages[2] = 255  # a blank page
    inputs, found = preprocess_batch(pages)
    assert found.tolist() == [True, True, False, True]
    for index in (0, 1, 3):
        assert np.array_equal(inputs[index], preprocess_array(pages[index]))
    assert not inputs[2].any()


def test_boolean_and_float_arrays_read_as_their_8_bit_equivalents(digit: np.ndarray) -> None:
    mask = on_paper(digit) > 127
    assert np.array_equal(preprocess_array(mask), preprocess_array(mask.astype(np.uint8) * 255))
    colour = np.repeat(on_paper(digit)[..., None], 3, axis=2)
    from_floats = preprocess_array(colour / 255.0)
    assert np.array_equal(from_floats, preprocess_array(colour))
    assert np.array_equal(preprocess_array(colour.astype(np.int64)), from_floats)
