"""Reading the body of a prediction request: JSON in, one checked input out.

A request is a JSON object with exactly one of two fields:

- "image": a picture as a base64 string, bare or as a data URL ("data:image/png;base64,...");
  any format Pillow reads. It goes through the same preprocessing as `digitnet predict`.
- "pixels": a 28x28 array of numbers in [0, 1], already MNIST-like (light digit on dark).

Every problem raises PayloadError with the HTTP status to answer and a message that says what
was wrong, so no input can reach the network unchecked. A message shows at most a short excerpt
of the value it refuses, whatever the size of the value sent.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import sys
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image

from digitnet.preprocess import ImageError, decode_image, open_supported
from digitnet.values import excerpt

MEBIBYTE = 1024 * 1024
MAX_BODY_BYTES = 16 * MEBIBYTE  # a 12 MB photo, base64-encoded
FIELDS = ("image", "pixels")
SIDE = 28
MAX_IMAGE_PIXELS = 40_000_000

# Values quoted in error messages are cut to a few dozen characters ('abc...xyz', [1, 2, ...]).


class PayloadError(ValueError):
    """A request the server refuses, with the 4xx status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ImageInput:
    """A decoded picture still to be preprocessed."""

    image: Image.Image


@dataclass(frozen=True)
class PixelInput:
    """A 28x28 grid of values in [0, 1], rows of floats."""

    rows: list[list[float]]


def parse_body(body: bytes) -> ImageInput | PixelInput:
    """Decode a request body into the one input it carries."""
    request = parse_json_object(body)

    unknown = sorted(set(request) - set(FIELDS))
    if unknown:
        fields = excerpt(unknown)
        raise PayloadError(422, f"unknown field(s) {fields}; send one of 'image' or 'pixels'")
    given = [name for name in FIELDS if name in request]
    if len(given) != 1:
        found = "both" if given else "neither"
        raise PayloadError(422, f"send exactly one of 'image' or 'pixels', got {found}")

    if given[0] == "image":
        return ImageInput(decode_image_field(request["image"]))
    return PixelInput(check_pixels(request["pixels"]))


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise PayloadError(400, "empty request body; send a JSON object")
    try:
        request = json.loads(body)
    except UnicodeDecodeError:
        raise PayloadError(400, "the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(400, f"malformed JSON: {exc}") from None
    except ValueError:
        # The one other ValueError json raises: an integer longer than Python converts.
        limit = sys.get_int_max_str_digits()
        raise PayloadError(400, f"unreadable JSON: a number has more than {limit} digits") from None
    except RecursionError:
        raise PayloadError(400, "unreadable JSON: arrays or objects nested too deeply") from None
    if not isinstance(request, dict):
        raise PayloadError(422, f"expected a JSON object, got {json_type(request)}")
    return request


def decode_image_field(value: object) -> Image.Image:
    """A decoded picture from a base64 string or a data URL."""
    if not isinstance(value, str):
        raise PayloadError(422, f"'image' must be a base64 string, got {json_type(value)}")
    encoded = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError(422, "'image' is not valid base64") from None
    if not data:
        raise PayloadError(422, "'image' is empty")
    return open_picture(data)


def open_picture(data: bytes) -> Image.Image:
    """Decode image bytes as `digitnet predict` decodes files, after a cheaper size check.

    The server takes bodies of many megabytes from anyone who can reach it, so a picture is
    refused by its header alone when it has more than MAX_IMAGE_PIXELS pixels, a tighter limit
    than Pillow's, before any memory goes into decoding it.
    """
    check_size(data)
    try:
        return decode_image(data, name="'image'")
    except ImageError as exc:
        raise PayloadError(422, str(exc)) from None


def check_size(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with open_supported(io.BytesIO(data)) as header:
                width, height = header.size
        except Exception:
            return  # decode_image names whatever is wrong with the data
    if width * height > MAX_IMAGE_PIXELS:
        raise PayloadError(422, f"'image' is {width}x{height} pixels, too large to process")


def check_pixels(value: object) -> list[list[float]]:
    """The 28x28 rows of a 'pixels' field, or a PayloadError naming the first fault."""
    if not isinstance(value, list) or len(value) != SIDE:
        raise PayloadError(422, f"'pixels' must be a list of {SIDE} rows, got {describe(value)}")
    for index, row in enumerate(value):
        if not isinstance(row, list) or len(row) != SIDE:
            raise PayloadError(
                422, f"'pixels' row {index} must be a list of {SIDE} numbers, got {describe(row)}"
            )
        for column, pixel in enumerate(row):
            if not is_unit_number(pixel):
                got = excerpt(pixel)
                raise PayloadError(
                    422, f"'pixels'[{index}][{column}] must be a number in [0, 1], got {got}"
                )
    return value


def is_unit_number(value: object) -> bool:
    """True for an int or float (not a bool) that is finite and in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and 0.0 <= value <= 1.0


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def describe(value: object) -> str:
    """A short description of a value for error messages: its type, and length for arrays."""
    if isinstance(value, list):
        return f"an array of {len(value)}" if value else "an empty array"
    return json_type(value)
