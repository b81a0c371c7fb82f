"""Model files: a .npz archive of named arrays plus JSON metadata, never unpickled.

The archive holds the parameters (W1, b1, W2, b2, ...) and one uint8 array, "metadata", with
UTF-8 JSON: the format version, the layer sizes and the architecture (hidden activation and
output units; files without them hold the seed's sigmoid network), the training settings, the
seed, the per-epoch history and the measured accuracies. Training checkpoints use the same
container with "kind": "checkpoint" and more arrays (see digitnet.state). Files are written to
a temporary file beside the target and renamed into place, so an interrupted save never leaves
a half-written model.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from digitnet.network import Network, check_params

FORMAT_VERSION = 1
METADATA_KEY = "metadata"
ZIP_SIGNATURE = b"PK\x03\x04"


class ModelFileError(ValueError):
    """A model file is missing, malformed, of an unknown version, or holds bad values."""


def save_model(path: str | Path, network: Network, metadata: dict[str, Any]) -> Path:
    """Write network and metadata to path atomically; return the path written."""
    meta = {**metadata, "sizes": list(network.sizes), **network.architecture()}
    return save_arrays(path, dict(network.params), meta)


def save_arrays(
    path: str | Path, arrays: dict[str, NDArray[Any]], metadata: dict[str, Any]
) -> Path:
    """Write named arrays and JSON metadata (plus the format version) to path atomically."""
    path = Path(path)
    meta = {**metadata, "format_version": FORMAT_VERSION}
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    contents = {**arrays, METADATA_KEY: blob}
    write_atomically(path, lambda handle: np.savez(handle, allow_pickle=False, **contents))
    return path


def write_atomically(path: Path, write: Any) -> None:
    """Call write(handle) on a temporary file in path's folder, then rename it over path."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"{path}: folder {folder} does not exist")
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def load_model(path: str | Path) -> tuple[Network, dict[str, Any]]:
    """Read a model file written by save_model; raise ModelFileError on anything unexpected."""
    path = Path(path)
    arrays, metadata = load_arrays(path)
    if metadata.get("kind") == "checkpoint":
        raise ModelFileError(
            f"{path}: is a training checkpoint, not a model; continue it with "
            f"'digitnet train --resume {path}'"
        )
    network = network_from_arrays(path, arrays, metadata)
    return network.astype(np.float32), metadata


def load_arrays(path: str | Path) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """The arrays and checked metadata of a file written by save_arrays."""
    path = Path(path)
    arrays = read_arrays(path)
    metadata = parse_metadata(path, arrays.pop(METADATA_KEY, None))
    for name, value in arrays.items():
        if value.dtype.kind != "f":
            raise ModelFileError(f"{path}: array {name} has dtype {value.dtype}, expected float")
        if not np.all(np.isfinite(value)):
            raise ModelFileError(f"{path}: array {name} holds NaN or infinite values")
    return arrays, metadata


def network_from_arrays(
    path: Path, params: dict[str, NDArray[Any]], metadata: dict[str, Any]
) -> Network:
    """The network that params and metadata describe; the seed architecture when unnamed."""
    try:
        return Network(
            tuple(metadata["sizes"]),
            params,
            activation=metadata.get("activation", "sigmoid"),
            output=metadata.get("output", "sigmoid"),
        )
    except ValueError as exc:
        raise ModelFileError(f"{path}: {exc}") from None


def read_arrays(path: Path) -> dict[str, NDArray[Any]]:
    """Every array of the archive, loaded with pickle disabled."""
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    with path.open("rb") as handle:
        if handle.read(4) != ZIP_SIGNATURE:
            raise ModelFileError(f"{path}: not a .npz model file (no zip signature)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as exc:
        if "object arrays" in str(exc).lower():
            raise ModelFileError(f"{path}: holds object arrays, which are refused") from None
        raise ModelFileError(f"{path}: not a digitnet model file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path}: not a readable .npz model file ({exc})") from None


def parse_metadata(path: Path, blob: NDArray[Any] | None) -> dict[str, Any]:
    """Decode and check the JSON metadata array."""
    if blob is None:
        raise ModelFileError(f"{path}: no '{METADATA_KEY}' array; not a digitnet model file")
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise ModelFileError(f"{path}: metadata must be a 1-D uint8 array, got {blob.dtype}")
    try:
        metadata = json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: metadata is not valid JSON ({exc})") from None
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: metadata must be a JSON object")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {version!r}, this digitnet reads version {FORMAT_VERSION}"
        )
    sizes = metadata.get("sizes")
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise ModelFileError(f"{path}: metadata 'sizes' must be a list of positive integers")
    return metadata


__all__ = [
    "FORMAT_VERSION",
    "ModelFileError",
    "check_params",
    "load_arrays",
    "load_model",
    "save_arrays",
    "save_model",
]
