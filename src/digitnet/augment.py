"""Random distortions of training digits, made on the fly for each mini-batch.

Every image of a batch gets its own small rotation, scaling and shift ("affine"), and, with
"elastic", also a smooth random displacement field as Simard, Steinkraus and Platt (2003) used
for MNIST: a field of uniform noise in [-1, 1] per pixel and axis, smoothed by a Gaussian of
width sigma and scaled by alpha. Simard et al. used sigma = 4; on top of the affine distortions
that bends digits so far that a small network trained on them for an epoch still misreads a
quarter of them, so the default here is the smoother sigma = 6 (docs/options.md).

All transforms of a batch are combined into one coordinate grid per image and resampled by a
single scipy.ndimage.map_coordinates call over the (N, 28, 28) stack, with bilinear
interpolation and black outside the image. All randomness comes from the Generator passed in,
so the same seed gives the same batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]

AUGMENTATIONS = ("none", "affine", "elastic")
SIDE = 28
CENTRE = (SIDE - 1) / 2.0


@dataclass(frozen=True)
class Distortion:
    """How strong the random distortions are."""

    max_degrees: float = 10.0  # rotation angle drawn uniformly from +-max_degrees
    max_scale: float = 0.1  # zoom factor drawn uniformly from 1 +- max_scale
    max_shift: float = 2.0  # shift in pixels along each axis, uniformly from +-max_shift
    elastic_alpha: float = 34.0  # scale of the smoothed displacement field, in pixels
    elastic_sigma: float = 6.0  # width of the Gaussian that smooths it, in pixels


def augment_batch(
    X: Array, rng: np.random.Generator, kind: str = "affine", distortion: Distortion | None = None
) -> Array:
    """Distorted copies of the scaled images X (N, 784), same shape and dtype.

    kind is "none" (X itself), "affine" (rotation, scaling and shift) or "elastic" (affine plus
    an elastic distortion).
    """
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; choose one of {', '.join(AUGMENTATIONS)}")
    if kind == "none" or X.shape[0] == 0:
        return X
    distortion = distortion or Distortion()
    n = X.shape[0]
    rows, cols = affine_coordinates(n, rng, distortion)  # (N, 28, 28) each
    if kind == "elastic":
        d_rows, d_cols = elastic_displacements(n, rng, distortion)  # (N, 28, 28) each
        rows += d_rows
        cols += d_cols
    index = np.broadcast_to(np.arange(n, dtype=rows.dtype)[:, None, None], rows.shape)
    images = X.reshape(n, SIDE, SIDE)  # (N, 28, 28)
    from scipy import ndimage  # imported here so that prediction does not pay for it

    warped = ndimage.map_coordinates(
        images, np.stack([index, rows, cols]), order=1, mode="constant", cval=0.0, prefilter=False
    )  # (N, 28, 28)
    return warped.reshape(n, SIDE * SIDE).astype(X.dtype, copy=False)


def affine_coordinates(
    n: int, rng: np.random.Generator, distortion: Distortion
) -> tuple[Array, Array]:
    """For each output pixel of each image, the source pixel under a random affine map.

    The output pixel at offset (r, c) from the centre samples the input at the offset rotated
    by the image's angle, divided by its zoom factor, and moved back by its shift.
    """
    angle = np.deg2rad(rng.uniform(-distortion.max_degrees, distortion.max_degrees, n))
    zoom = rng.uniform(1.0 - distortion.max_scale, 1.0 + distortion.max_scale, n)
    shift = rng.uniform(-distortion.max_shift, distortion.max_shift, (2, n))
    cos = (np.cos(angle) / zoom)[:, None, None]  # (N, 1, 1)
    sin = (np.sin(angle) / zoom)[:, None, None]  # (N, 1, 1)
    r, c = np.mgrid[0:SIDE, 0:SIDE] - CENTRE  # (28, 28) each
    rows = cos * r - sin * c + CENTRE - shift[0][:, None, None]  # (N, 28, 28)
    cols = sin * r + cos * c + CENTRE - shift[1][:, None, None]  # (N, 28, 28)
    return rows, cols


def elastic_displacements(
    n: int, rng: np.random.Generator, distortion: Distortion
) -> tuple[Array, Array]:
    """Smooth random displacement fields (rows, columns), each (N, 28, 28), in pixels."""
    noise = rng.uniform(-1.0, 1.0, (2, n, SIDE, SIDE))  # (2, N, 28, 28)
    sigma = (0.0, 0.0, distortion.elastic_sigma, distortion.elastic_sigma)
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(noise, sigma=sigma, mode="constant")  # (2, N, 28, 28)
    smooth *= distortion.elastic_alpha
    return smooth[0], smooth[1]
