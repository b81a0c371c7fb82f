"""The Python API: load a model, then predict digits from files, Pillow images or arrays.

    >>> import digitnet
    >>> model = digitnet.load_model()          # the ready model bundled with digitnet
    >>> result = model.predict("seven.png")
    >>> int(result.labels[0]), float(result.probabilities[0].max())

Probabilities are the network's ten sigmoid outputs divided by their sum, so that each row sums
to 1; the raw outputs are independent yes/no scores and need not. The command line reports the
same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from digitnet import checkpoint
from digitnet.network import INPUT_SIZE, Network
from digitnet.preprocess import (
    NoDigitError,
    decode_image,
    is_array_batch,
    load_image,
    preprocess_array,
    preprocess_batch,
    preprocess_image,
)

ImageLike: TypeAlias = "str | PathLike[str] | bytes | Image.Image | NDArray[Any]"
Images: TypeAlias = "ImageLike | Iterable[ImageLike]"


@dataclass(frozen=True)
class Prediction:
    """Predicted digits (N,) and their probabilities (N, 10), each row summing to 1."""

    labels: NDArray[np.int64]
    probabilities: NDArray[np.float32]

    def ranked(self, count: int = 3) -> NDArray[np.int64]:
        """The count most probable digits of each image, most probable first, (N, count)."""
        order: NDArray[np.int64] = np.argsort(-self.probabilities, axis=1, kind="stable")
        return order[:, :count]


@dataclass
class Model:
    """A trained network with the preprocessing that turns users' images into its inputs."""

    network: Network
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def predict(self, images: Images) -> Prediction:
        """Predict the digit in one image or in each image of a batch.

        images is a file path, the bytes of an image file, a Pillow image, a NumPy array, or
        a list of those. An array is one image when it is (H, W), (784,) or (H, W, 3|4), and a
        batch when it is (N, H, W) or (N, 784); pictures of any size go through the steps of image
        files, and pixels are integers within 0-255, booleans, or floats in [0, 1]. Raises
        ImageError for unreadable files, NoDigitError for blank images and ValueError for other
        arrays, their message starting with the file's path or, for other items of a list,
        "item K" (counting from 0).
        """
        return self.predict_inputs(prepare_inputs(images))

    def predict_inputs(self, inputs: NDArray[np.floating]) -> Prediction:
        """Predict from inputs that are already MNIST-like, (N, 28, 28) or (N, 784) in [0, 1]."""
        outputs = self.network.predict_proba(inputs.reshape(-1, INPUT_SIZE))
        probabilities = normalize(outputs)
        labels: NDArray[np.int64] = np.argmax(probabilities, axis=1)
        return Prediction(labels=labels, probabilities=probabilities)


def load_model(path: str | PathLike[str] | None = None) -> Model:
    """The model saved at path, or the ready model bundled with digitnet when path is None."""
    from digitnet.commands.common import resolve_model_path

    model_path = resolve_model_path(None if path is None else str(path))
    network, metadata = checkpoint.load_model(model_path)
    return Model(network=network, metadata=metadata, path=model_path)


def normalize(outputs: NDArray[np.floating]) -> NDArray[np.float32]:
    """Rows of sigmoid outputs scaled to sum to 1; a row of zeros becomes uniform."""
    outputs = outputs.astype(np.float32)
    totals = outputs.sum(axis=1, keepdims=True)
    uniform = np.full_like(outputs, 1.0 / outputs.shape[1])
    safe = np.where(totals > 0, totals, 1.0)
    probabilities: NDArray[np.float32] = np.where(totals > 0, outputs / safe, uniform)
    return probabilities


def prepare_inputs(images: Images) -> NDArray[np.float32]:
    """The MNIST-like inputs (N, 28, 28) for anything Model.predict accepts."""
    if isinstance(images, (str, PathLike, bytes, Image.Image, np.ndarray)):
        return prepare_named(images, None)
    batch = [prepare_named(item, index) for index, item in enumerate(images)]
    if not batch:
        raise ValueError("no images to predict")
    return np.concatenate(batch)


def prepare_named(item: ImageLike, index: int | None) -> NDArray[np.float32]:
    """prepare_one(item), its errors prefixed with the item's path or, in a list, 'item K'."""
    name = str(item) if isinstance(item, (str, PathLike)) else None
    name = f"item {index}" if name is None and index is not None else name
    try:
        return prepare_one(item, name or "image")
    except ValueError as exc:  # also ImageError and NoDigitError, which keep their type
        if name is None or str(exc).startswith(f"{name}: "):
            raise
        raise type(exc)(f"{name}: {exc}") from None


def prepare_one(item: ImageLike, name: str = "image") -> NDArray[np.float32]:
    """Inputs (N, 28, 28) for one path, file content, image or array (an array may be a batch).

    name stands for file content in errors.
    """
    if isinstance(item, Image.Image):
        return preprocess_image(item)[np.newaxis]
    if isinstance(item, (str, PathLike)):
        return preprocess_image(load_image(item))[np.newaxis]
    if isinstance(item, bytes):
        return preprocess_image(decode_image(item, name))[np.newaxis]
    array = np.asarray(item)
    if is_array_batch(array):
        inputs, found = preprocess_batch(array)
        if not found.all():
            index = int(np.flatnonzero(~found)[0])
            raise NoDigitError(f"image {index} of the batch: no digit found")
        return inputs
    return preprocess_array(array)[np.newaxis]
