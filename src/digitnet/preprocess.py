"""Turning a user's image into the 28x28 input the network was trained on.

MNIST digits are light strokes on a black background: NIST's black-and-white digits were scaled
with anti-aliasing so that the longest side fits 20 pixels, then placed in a 28x28 field with
their centre of mass at the centre. preprocess_image() repeats those steps on any picture:

1. composite transparency over white paper and convert to grayscale in [0, 1];
2. detect the polarity from the border and invert dark ink on light paper;
3. separate ink from background: subtract a background estimated by a grey opening wider than
   any stroke and divide by the paper's brightness (uneven lighting), threshold with Otsu's
   method, drop small specks (paper texture);
4. crop to the ink, scale its longest side to 20 pixels, centre it by mass in 28x28.

An image that is already MNIST-normalised is passed through with exactly the scaling of
digitnet.data.scale_pixels, so the same pixels give the same network input through every entry
point: 28x28, light ink on a black border, the ink's longest side 20 pixels give or take
BOX_TOLERANCE and its centre of mass within CENTRE_TOLERANCE of the centre. Every MNIST test
and training digit meets this (longest side 19 or 20, centre of mass at most 0.52 pixels off);
a small or off-centre digit on a 28x28 canvas does not, and is cropped, scaled and centred.

Limits: one digit per image; a dark frame or a table edge around the paper counts as ink.
"""

from __future__ import annotations

import importlib
import io
import re
import stat
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from digitnet.data import scale_pixels

if TYPE_CHECKING:
    from os import PathLike

Gray = NDArray[np.float32]

CANVAS = 28
DIGIT_BOX = 20
CENTRE = 14.0  # mean centre of mass of the MNIST test digits, in pixel indices
WORK_SIZE = 512  # larger images are shrunk to this longest side before ink separation
MNIST_BORDER_LEVEL = 0.05  # a 28x28 image whose border median is below this is MNIST-like
MNIST_INK_LEVEL = 0.5 / 255  # pixels above this (non-zero as 8-bit) are ink in that test
BOX_TOLERANCE = 2  # pixels the ink's longest side may differ from DIGIT_BOX and pass through
CENTRE_TOLERANCE = 1.5  # pixels the centre of mass may be off CENTRE (per axis) and pass through
MIN_CONTRAST = 0.12  # weaker ink than this, on a [0, 1] scale, is taken for a blank page
MIN_SEPARATION = 6.0  # ink must stand this many noise deviations above the paper
BACKGROUND_SIZE = 64  # the background is estimated on a copy at most this long
SAMPLE_SIZE = 16384  # statistics of larger images are taken on evenly spaced pixels
OTSU_ROUNDS = 3  # Otsu's threshold is taken again among the brighter pixels at most this often
SPECK_FRACTION = 0.05  # ink blobs lighter than this share of the largest blob are dropped
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# The raster formats digitnet reads, with the Pillow plugin of each. PPM covers PGM and PBM too.
FORMAT_PLUGINS = {
    "PNG": "PngImagePlugin",
    "JPEG": "JpegImagePlugin",
    "BMP": "BmpImagePlugin",
    "GIF": "GifImagePlugin",
    "TIFF": "TiffImagePlugin",
    "WEBP": "WebPImagePlugin",
    "PPM": "PpmImagePlugin",
}
SUPPORTED = "PNG, JPEG, BMP, GIF, TIFF, WebP and PPM/PGM/PBM"
ROW_LENGTH = CANVAS * CANVAS
# A 2-D array this close to ROW_LENGTH wide, but not that wide, is refused rather than taken for
# a picture: it is far likelier to be flattened images that lost or kept a column (a label).
NEAR_ROW = 8
ARRAY_SHAPES = (
    "(H, W) or (H, W, 3|4) of one image, (784,) of one flattened 28x28 image, "
    "or (N, H, W) or (N, 784) of N images"
)


class ImageError(ValueError):
    """A file cannot be read as an image: missing, empty, not an image, truncated, too large."""


class NoDigitError(ValueError):
    """An image holds no ink that could be a digit."""


# ---- reading files -------------------------------------------------------------------------


def load_image(path: str | PathLike[str]) -> Image.Image:
    """Open and decode an image of a supported format (the first frame of an animation), upright.

    Pillow's decompression-bomb guard becomes an error: an image of more than
    Image.MAX_IMAGE_PIXELS pixels raises ImageError instead of filling the memory. A large JPEG
    is decoded at a reduced scale that keeps both sides at least WORK_SIZE pixels long, which
    is all preprocess_image uses.
    """
    path = Path(path)
    check_file(path)
    return decode_guarded(path, str(path))


def decode_image(data: bytes, name: str = "image") -> Image.Image:
    """Like load_image, for the bytes of an image file (an upload, say); name is for errors."""
    if not data:
        raise ImageError(f"{name}: empty file, not an image")
    return decode_guarded(io.BytesIO(data), name)


def decode_guarded(source: Path | io.BytesIO, name: str) -> Image.Image:
    """Open and fully decode source, turning every failure into a one-line ImageError."""
    # Pillow warns about corrupt metadata it skips; the image either decodes or raises below.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open_supported(source) as opened:
                check_pixel_count(name, opened.size)
                opened.draft(None, (WORK_SIZE, WORK_SIZE))
                opened.load()
        except ImageError:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageError(f"{name}: too large to decode safely ({bomb_size(exc)})") from None
        except UnidentifiedImageError:
            raise ImageError(
                f"{name}: not a supported image (digitnet reads {SUPPORTED})"
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"{name}: {describe_decode_error(exc)}") from None
    # Phone cameras store pixels as the sensor saw them plus an EXIF note on how to turn them.
    ImageOps.exif_transpose(opened, in_place=True)
    image: Image.Image = opened
    return image


def open_supported(source: Path | io.BytesIO) -> Image.Image:
    """Image.open limited to the formats of FORMAT_PLUGINS.

    NOTE: left to itself, Pillow also opens EPS files, decoding them by running Ghostscript (a
    PostScript interpreter) on whatever a stranger sent, and some thirty rarely used formats.
    Importing just these plugins also spares Pillow importing all the others to identify a file.
    """
    for plugin in FORMAT_PLUGINS.values():
        importlib.import_module(f"PIL.{plugin}")
    return Image.open(source, formats=list(FORMAT_PLUGINS))


def check_file(path: Path) -> None:
    """Raise ImageError unless path is a non-empty regular file."""
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    try:
        status = path.stat()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({(exc.strerror or str(exc)).lower()})") from None
    if not stat.S_ISREG(status.st_mode):
        # A pipe or a device may never end (/dev/zero) or block forever (a FIFO).
        raise ImageError(f"{path}: not a regular file, expected an image file")
    if status.st_size == 0:
        raise ImageError(f"{path}: empty file, not an image")


def check_pixel_count(name: str, size: tuple[int, int]) -> None:
    """Refuse images between Pillow's warning and error limits, which Pillow only warns about."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit:
        raise ImageError(
            f"{name}: too large to decode safely ({size[0]} x {size[1]} pixels, limit {limit})"
        )


def bomb_size(exc: Exception) -> str:
    """The pixel count Pillow names in its decompression-bomb error."""
    counts = re.findall(r"\d+", str(exc))
    return f"{counts[0]} pixels, limit {Image.MAX_IMAGE_PIXELS}" if counts else "too many pixels"


def describe_decode_error(exc: Exception) -> str:
    message = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read ({exc.strerror.lower()})"
    if isinstance(exc, EOFError) or "truncated" in message.lower():
        return "truncated image file (the data ends early)"
    if message.startswith("decoder error"):
        return f"corrupt image data ({message})"
    return f"cannot decode the image ({message or type(exc).__name__})"


# ---- public entry points ---------------------------------------------------------------------


def preprocess_image(image: Image.Image) -> Gray:
    """The MNIST-like (28, 28) float32 input in [0, 1] for a Pillow image of a digit.

    Raises NoDigitError when no ink is found.
    """
    return to_mnist_like(grayscale(image))


def preprocess_array(array: NDArray[np.generic]) -> Gray:
    """The MNIST-like (28, 28) float32 input for one image given as a NumPy array.

    Accepts (H, W) grayscale, (784,) as 28x28, or (H, W, 3|4) RGB or RGBA colour, with pixels
    as scale_array reads them. A grayscale picture of any size goes through the steps of an
    image file except the shrinking to WORK_SIZE: arrays are read at full resolution. Raises
    ValueError for a batch or any other shape (see is_array_batch).
    """
    pixels = np.asarray(array)
    if is_array_batch(pixels):
        raise ValueError(
            f"expected one image of shape (H, W), (H, W, 3|4) or (784,), got a batch of shape "
            f"{pixels.shape} (preprocess_batch reads batches)"
        )
    if pixels.ndim == 3:
        return preprocess_image(Image.fromarray(colour_bytes(pixels)))
    if pixels.ndim == 1:
        pixels = pixels.reshape(CANVAS, CANVAS)
    return to_mnist_like(scale_array(pixels))


def preprocess_batch(images: NDArray[np.generic]) -> tuple[Gray, NDArray[np.bool_]]:
    """MNIST-like inputs (N, 28, 28) for a batch (N, H, W) or (N, 784), and where digits were found.

    The rows of images without a digit are left black and marked False. 28x28 images that are
    already MNIST-like are recognised all at once, with the same tests as preprocess_array, so a
    batch of MNIST digits costs no more than scaling it; the others, and pictures of any other
    size, go through the steps of preprocess_array one by one.
    """
    pixels = np.asarray(images)
    if not is_array_batch(pixels):
        raise ValueError(f"expected a batch of shape (N, H, W) or (N, 784), got {pixels.shape}")
    if pixels.ndim == 2:
        pixels = pixels.reshape(-1, CANVAS, CANVAS)
    gray = scale_array(pixels)

    inputs = np.zeros((gray.shape[0], CANVAS, CANVAS), dtype=np.float32)
    found = np.ones(gray.shape[0], dtype=bool)
    ready = already_mnist_like(gray)
    if ready.any():
        inputs[ready] = gray[ready]

    for index in np.flatnonzero(~ready):
        try:
            inputs[index] = to_mnist_like(gray[index])
        except NoDigitError:
            found[index] = False
    return inputs, found


def is_array_batch(array: NDArray[np.generic]) -> bool:
    """Whether an array of pixels is a batch of images, after checking its dtype and shape.

    (N, 784) and (N, H, W) are batches; (H, W), (H, W, 3|4) and (784,) are one image. A last
    axis of 3 or 4 means colour, so (N, H, 3) is one colour image, not N pictures 3 pixels wide.
    Raises ValueError for an array of no pixels, for a dtype scale_array refuses, and for any
    other shape: 1-D but not (784,), 4-D or more, and 2-D within NEAR_ROW of 784 wide.
    """
    shape = array.shape
    check_pixel_dtype(array.dtype)
    if array.size == 0:
        raise ValueError(f"holds no images (its shape is {shape})")
    if len(shape) == 2 and 0 < abs(shape[1] - ROW_LENGTH) <= NEAR_ROW:
        raise ValueError(
            f"shape {shape} looks like rows of flattened 28x28 images, but those rows hold "
            f"{ROW_LENGTH} values, not {shape[1]}"
        )
    if len(shape) == 3:
        return bool(shape[2] not in (3, 4))
    if len(shape) == 2:
        return bool(shape[1] == ROW_LENGTH)
    if shape == (ROW_LENGTH,):
        return False
    raise ValueError(f"expected the shape {ARRAY_SHAPES}; got {shape}")


def check_pixel_dtype(dtype: np.dtype[np.generic]) -> None:
    """Raise ValueError unless dtype holds booleans, integers or real floating-point numbers."""
    if dtype.kind not in "biuf":
        raise ValueError(
            f"pixels must be real numbers (booleans, integers or floats), got dtype {dtype}"
        )


def colour_bytes(pixels: NDArray[np.generic]) -> NDArray[np.uint8]:
    """(H, W, 3|4) colour pixels as the 8-bit values a colour image file holds."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.uint8, copy=False)
    scaled = np.round(scale_array(pixels) * np.float32(255.0))
    as_bytes: NDArray[np.uint8] = scaled.astype(np.uint8)
    return as_bytes


def already_mnist_like(gray: Gray) -> NDArray[np.bool_]:
    """For a batch (N, H, W): which images to_mnist_like() would return unchanged.

    NOTE: a black border (median <= 0.05) and a brightest pixel of at least MIN_CONTRAST (0.12)
    mean that is_light_paper() is False, so these images need no per-image work.
    """
    if gray.shape[1:] != (CANVAS, CANVAS) or gray.shape[0] == 0:
        return np.zeros(gray.shape[0], dtype=bool)
    bright = gray.reshape(gray.shape[0], -1).max(axis=1) >= MIN_CONTRAST
    ready: NDArray[np.bool_] = mnist_normalised(gray) & bright
    return ready


def mnist_normalised(ink: Gray) -> NDArray[np.bool_]:
    """For a batch of 28x28 images (N, 28, 28), light on dark: which are already as MNIST's.

    That is a black border, the ink's longest side DIGIT_BOX +- BOX_TOLERANCE pixels and its
    centre of mass within CENTRE_TOLERANCE of CENTRE on both axes.
    """
    frame = border_mask((CANVAS, CANVAS))
    dark_border = np.median(ink[:, frame], axis=1) <= MNIST_BORDER_LEVEL  # (N,)

    inked = ink > MNIST_INK_LEVEL  # (N, 28, 28)
    longest = np.maximum(extent(np.any(inked, axis=2)), extent(np.any(inked, axis=1)))  # (N,)
    boxed = np.abs(longest - DIGIT_BOX) <= BOX_TOLERANCE

    positions = np.arange(CANVAS, dtype=np.float32)
    total = np.maximum(ink.sum(axis=(1, 2)), np.float32(1e-6))  # (N,)
    row = ink.sum(axis=2) @ positions / total  # (N,)
    col = ink.sum(axis=1) @ positions / total  # (N,)
    centred = np.maximum(np.abs(row - CENTRE), np.abs(col - CENTRE)) <= CENTRE_TOLERANCE

    normalised: NDArray[np.bool_] = dark_border & boxed & centred
    return normalised


def extent(present: NDArray[np.bool_]) -> NDArray[np.intp]:
    """For rows (N, L) of flags: the span from the first True to the last, 0 when none is."""
    length = present.shape[1]
    first = np.argmax(present, axis=1)  # (N,)
    last = length - 1 - np.argmax(present[:, ::-1], axis=1)  # (N,)
    span: NDArray[np.intp] = np.where(present.any(axis=1), last - first + 1, 0)
    return span


# ---- grayscale -------------------------------------------------------------------------------


def grayscale(image: Image.Image) -> Gray:
    """Luminance in [0, 1] (0 is black), transparency composited over white, shrunk if huge."""
    wide_mode = image.mode if image.mode in WIDE_MODES else None
    image = reduce_huge(image)
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        rgba = converted(image, "RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), rgba)
        wide_mode = None
    if wide_mode is not None:
        gray = scale_wide(np.asarray(image), wide_mode)
    else:
        luma = image if image.mode == "L" else converted(image, "RGB").convert("L")
        gray = scale_array(np.asarray(luma))
    return shrink(gray, WORK_SIZE)


def converted(image: Image.Image, mode: str) -> Image.Image:
    """image in mode, or an ImageError for the few modes Pillow cannot convert."""
    try:
        return image.convert(mode)
    except ValueError:
        raise ImageError(f"images of mode {image.mode} cannot be read") from None


def reduce_huge(image: Image.Image) -> Image.Image:
    """Image shrunk by a whole factor to a longest side under 2 * WORK_SIZE, if it is longer.

    NOTE: this runs on Pillow's own pixels, before any float32 copy, so that a large image
    (a decompression bomb just under Pillow's limit, say) costs its decoded size once rather
    than five times over. Modes Pillow cannot reduce are first widened to one it can.
    """
    factor = max(image.size) // WORK_SIZE
    if factor < 2:
        return image
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    try:
        return image.reduce(factor)
    except ValueError:
        raise ImageError(f"images of mode {image.mode} cannot be read") from None


def scale_array(pixels: NDArray[np.generic]) -> Gray:
    """Float32 pixels in [0, 1] from booleans, integers within 0-255 or floats within [0, 1].

    uint8 is scaled exactly as the training data is; True is 1.0. Floats are not rescaled, so
    0-255 values in a float array are refused rather than guessed at.
    """
    check_pixel_dtype(pixels.dtype)
    if pixels.dtype.kind == "b":
        return pixels.astype(np.float32)
    if pixels.dtype.kind in "iu":
        return scale_integers(pixels)
    finite = np.isfinite(pixels)
    if not finite.all():
        count = finite.size - int(np.count_nonzero(finite))
        raise ValueError(f"pixels must be finite, got {count} NaN or infinite values")
    low, high = float(pixels.min()), float(pixels.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"float pixels must be within [0, 1] (divide 0-255 values by 255), "
            f"got {low:.4g} to {high:.4g}"
        )
    return pixels.astype(np.float32)


def scale_integers(pixels: NDArray[np.generic]) -> Gray:
    """Integer pixels within 0-255, scaled by digitnet.data.scale_pixels."""
    low, high = int(pixels.min()), int(pixels.max())
    if low < 0 or high > 255:
        raise ValueError(f"integer pixels must be within 0-255, got {low} to {high}")
    as_bytes = pixels.astype(np.uint8, copy=False)
    scaled: Gray = scale_pixels(as_bytes[np.newaxis]).reshape(pixels.shape)
    return scaled


def scale_wide(pixels: NDArray[np.generic], mode: str) -> Gray:
    """Pixels of 16-bit, 32-bit integer or float images mapped onto [0, 1].

    I;16 images span 0-65535. Modes I and F carry no fixed range, so the range is guessed from
    the largest value: [0, 1], then 0-255, then 0-65535, then the largest value itself.
    """
    values = pixels.astype(np.float32)
    high = float(values.max())
    full_scale = 65535.0
    if not mode.startswith("I;16"):
        full_scale = next(s for s in (1.0, 255.0, 65535.0, high) if high <= s)
        full_scale = max(full_scale, 255.0) if mode == "I" else full_scale
    scaled: Gray = np.clip(values / np.float32(full_scale), 0.0, 1.0)
    return scaled


def shrink(gray: Gray, longest: int) -> Gray:
    """Gray with its longest side reduced to at most longest pixels by area averaging."""
    height, width = gray.shape
    if max(height, width) <= longest:
        return gray
    scale = longest / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(gray).resize(size, Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float32)


# ---- ink ----------------------------------------------------------------------------------


def to_mnist_like(gray: Gray) -> Gray:
    """Steps 2-4 of the module docstring on a grayscale image."""
    light_paper = is_light_paper(gray)
    ink: Gray = np.float32(1.0) - gray if light_paper else gray
    if is_mnist_like(ink):
        if float(ink.max()) < MIN_CONTRAST:
            raise NoDigitError("no digit found (the image is blank)")
        return ink
    strokes = separate_ink(ink, light_paper)
    return centre_by_mass(scale_to_box(strokes))


def border_mask(shape: tuple[int, ...]) -> NDArray[np.bool_]:
    """True on a frame a tenth of the shorter side wide (at least one pixel)."""
    width = max(1, min(shape) // 10)
    frame = np.ones(shape, dtype=bool)
    frame[width:-width, width:-width] = False
    return frame


def border_pixels(gray: Gray) -> Gray:
    border: Gray = gray[border_mask(gray.shape)]
    return border


def is_light_paper(gray: Gray) -> bool:
    """Whether the border (the paper) is nearer the lightest pixels than the darkest ones.

    The extremes are taken on a copy averaged over 2x2 pixels, which keeps strokes but not
    single noisy pixels; extremes rather than percentiles, because a small digit on a large
    page may cover far less than one percent of it.
    """
    background = float(np.median(sample(border_pixels(gray))))
    smooth = shrink(gray, max(gray.shape) // 2) if min(gray.shape) >= 2 * CANVAS else gray
    low, high = float(smooth.min()), float(smooth.max())
    return background - low > high - background


def is_mnist_like(ink: Gray) -> bool:
    """28x28 and MNIST-normalised (see mnist_normalised): already what the network expects."""
    return ink.shape == (CANVAS, CANVAS) and bool(mnist_normalised(ink[np.newaxis])[0])


def separate_ink(ink: Gray, light_paper: bool) -> Gray:
    """The digit's ink strength in [0, 1], cropped to the digit; NoDigitError when none.

    On light paper the ink's contrast scales with the light falling on it, so the difference
    from the background is divided by the paper's brightness (a flat-field correction).
    """
    background = estimate_background(ink)
    foreground = np.clip(ink - background, 0.0, None)
    if light_paper:
        foreground = np.clip(foreground / np.maximum(1.0 - background, 0.05), 0.0, 1.0)
    strong = find_strong_ink(foreground)

    paper = sample(foreground[~strong])
    median = float(np.median(paper))
    floor = median + 3.0 * 1.4826 * float(np.median(np.abs(paper - median)))
    level = float(np.percentile(sample(foreground[strong]), 90.0))
    strength: Gray = np.clip((foreground - floor) / max(level - floor, 1e-6), 0.0, 1.0)
    return digit_strokes(strong, strength)


def estimate_background(ink: Gray) -> Gray:
    """The paper's level everywhere, from a grey opening of a small copy of the image.

    NOTE: a grey opening removes every light structure narrower than its window, so with a
    window a quarter of the image wide it removes the strokes and keeps the paper: lighting
    gradients and stains that vary more slowly than that are subtracted. Working on a copy at
    most BACKGROUND_SIZE pixels long makes this cheap; the result is smooth, so scaling it back
    up loses nothing.
    """
    from scipy import ndimage

    small = shrink(ink, BACKGROUND_SIZE)
    window = max(3, max(small.shape) // 4)
    background = ndimage.uniform_filter(ndimage.grey_opening(small, size=window), window)
    if background.shape == ink.shape:
        return background
    size = (ink.shape[1], ink.shape[0])
    return np.asarray(Image.fromarray(background).resize(size, Image.Resampling.BILINEAR))


def sample(values: Gray) -> Gray:
    """At most about SAMPLE_SIZE evenly spaced values, enough for medians and percentiles."""
    step = max(1, values.size // SAMPLE_SIZE)
    sampled: Gray = values.reshape(-1)[::step]
    return sampled


def otsu_threshold(values: Gray) -> float:
    """The threshold that maximises the between-class variance of a 256-bin histogram."""
    high = float(values.max())
    if high <= 0.0:
        return 0.0
    bins = np.minimum((values * np.float32(256 / high)).astype(np.intp), 255)
    counts = np.bincount(bins.reshape(-1), minlength=256)
    edges = np.linspace(0.0, high, 257)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def find_strong_ink(foreground: Gray) -> NDArray[np.bool_]:
    """Where the ink clearly stands above the paper, by Otsu's threshold; NoDigitError if nowhere.

    NOTE: when the ink covers a tiny part of the image (a small digit on a large page), Otsu's
    method first splits the paper's own noise. Taking Otsu's threshold again among the pixels
    above it then finds the ink; on a blank page the contrast test keeps failing.
    """
    values = foreground
    failure = NoDigitError("no digit found (the image is blank)")
    for _ in range(OTSU_ROUNDS):
        strong = foreground > otsu_threshold(values)
        if not strong.any():
            break
        try:
            check_contrast(foreground, strong)
        except NoDigitError as exc:
            failure = exc
            values = foreground[strong]
            continue
        return strong
    raise failure


def check_contrast(foreground: Gray, strong: NDArray[np.bool_]) -> None:
    """Raise NoDigitError when the ink is too faint or not distinct from paper noise."""
    if not strong.any() or strong.all():
        raise NoDigitError("no digit found (the image is blank)")
    ink, paper = sample(foreground[strong]), sample(foreground[~strong])
    contrast = float(np.median(ink)) - float(np.median(paper))
    noise = max(float(paper.std()), 1e-3)
    if contrast < MIN_CONTRAST:
        raise NoDigitError(
            f"no digit found (the marks differ from the paper by only {contrast:.0%} "
            "of the grey range)"
        )
    if contrast < MIN_SEPARATION * noise:
        raise NoDigitError("no digit found (no marks stand out from the paper's noise)")


def digit_strokes(strong: NDArray[np.bool_], strength: Gray) -> Gray:
    """Strength cropped to the digit: blobs of strong ink with their soft edges, no specks."""
    from scipy import ndimage

    labels, count = ndimage.label(strong, structure=np.ones((3, 3), dtype=bool))
    masses = np.bincount(labels.reshape(-1), weights=strength.reshape(-1), minlength=count + 1)
    masses[0] = 0.0  # label 0 is the paper
    keep = masses >= SPECK_FRACTION * masses.max()
    keep[0] = False
    if masses.max() <= 0.0:
        raise NoDigitError("no digit found (no ink stands above the paper's noise)")
    kept = keep[labels]
    rows, cols = np.flatnonzero(kept.any(axis=1)), np.flatnonzero(kept.any(axis=0))
    margin = 2  # room for the soft edges that the dilation below lets in
    box = (
        slice(max(rows[0] - margin, 0), rows[-1] + margin + 1),
        slice(max(cols[0] - margin, 0), cols[-1] + margin + 1),
    )
    region = ndimage.binary_dilation(kept[box], iterations=margin)
    return crop_to_ink(strength[box] * region)


# ---- geometry ----------------------------------------------------------------------------


def crop_to_ink(strength: Gray) -> Gray:
    """The smallest rectangle holding every non-zero pixel."""
    rows = np.flatnonzero(strength.any(axis=1))
    cols = np.flatnonzero(strength.any(axis=0))
    if rows.size == 0:
        raise NoDigitError("no digit found (no ink left after removing the background)")
    cropped: Gray = strength[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return cropped


def scale_to_box(digit: Gray) -> Gray:
    """Digit resized, keeping its aspect ratio, so that its longest side is DIGIT_BOX pixels.

    Pillow's resampling widens its filter when shrinking, which anti-aliases the strokes.
    """
    height, width = digit.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(digit).resize(size, Image.Resampling.LANCZOS)
    scaled: Gray = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    return scaled


def centre_by_mass(digit: Gray) -> Gray:
    """Digit pasted into a black 28x28 canvas with its centre of mass near CENTRE."""
    height, width = digit.shape
    total = float(digit.sum())
    if total <= 0.0:
        raise NoDigitError("no digit found (the ink vanished when scaled)")
    row = float(digit.sum(axis=1) @ np.arange(height)) / total
    col = float(digit.sum(axis=0) @ np.arange(width)) / total
    top = int(np.clip(round(CENTRE - row), 0, CANVAS - height))
    left = int(np.clip(round(CENTRE - col), 0, CANVAS - width))
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.float32)
    canvas[top : top + height, left : left + width] = digit
    return canvas
