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
import math
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from digitnet.files import write_atomically
from digitnet.network import INPUT_SIZE, NUM_CLASSES, Network, check_params
from digitnet.values import excerpt

FORMAT_VERSION = 1
METADATA_KEY = "metadata"
ZIP_SIGNATURE = b"PK\x03\x04"
PARAMETER_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
MAX_MODEL_BYTES = 1 << 30  # unpacked; the 784-128-10 seed model takes about 400 kB
MAX_MEMBERS = 64
MAX_LAYERS = 16
MAX_WIDTH = 1 << 20
MAX_NPY_HEADER = 10_000
FLOAT32_MAX = float(np.finfo(np.float32).max)


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
    # NOTE: no allow_pickle keyword: older NumPy releases, whose savez lacks it, would store it
    # as one more array. No object array reaches this point, so nothing is pickled anyway.
    contents: dict[str, Any] = {**arrays, METADATA_KEY: blob}
    write_atomically(path, lambda handle: np.savez(handle, **contents))
    return path


def load_model(
    path: str | Path, max_bytes: int = MAX_MODEL_BYTES
) -> tuple[Network, dict[str, Any]]:
    """Read a model file written by save_model; raise ModelFileError on anything unexpected.

    Nothing larger than max_bytes, by the sizes the archive declares, is unpacked.
    """
    path = Path(path)
    arrays, metadata = load_arrays(path, max_bytes)
    if metadata.get("kind") == "checkpoint":
        raise ModelFileError(
            f"{path}: is a training checkpoint, not a model; continue it with "
            f"'digitnet train --resume {path}'"
        )
    network = network_from_arrays(path, arrays, metadata)
    return network.astype(np.float32), metadata


def load_arrays(
    path: str | Path, max_bytes: int = MAX_MODEL_BYTES
) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """The arrays and checked metadata of a file written by save_arrays.

    Every array is float32, or float64 with finite values that float32 can hold.
    """
    path = Path(path)
    arrays = read_arrays(path, max_bytes)
    metadata = parse_metadata(path, arrays.pop(METADATA_KEY, None))
    for name, value in arrays.items():
        if value.dtype not in PARAMETER_DTYPES:
            raise ModelFileError(
                f"{path}: array {name} has dtype {value.dtype}, expected float32 or float64"
            )
        if not np.all(np.isfinite(value)):
            raise ModelFileError(f"{path}: array {name} holds NaN or infinite values")
        if value.dtype == np.float64 and value.size and np.max(np.abs(value)) > FLOAT32_MAX:
            # NOTE: every array is used as float32, and a larger float64 would turn infinite.
            raise ModelFileError(
                f"{path}: array {name} holds values beyond float32's range "
                f"(above {FLOAT32_MAX:.3g})"
            )
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


def read_arrays(path: Path, max_bytes: int) -> dict[str, NDArray[Any]]:
    """Every array of the archive, each checked before it is read.

    NOTE: this reads the zip members with zipfile and their .npy headers with numpy's own
    parser instead of calling np.load, because np.load allocates whatever shape a header
    declares before reading the data, and could unpickle. Here sizes and dtypes are checked
    against the archive first, and the data is only ever interpreted as plain numbers.
    """
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a regular file, expected a .npz model file")
    try:
        with path.open("rb") as handle:
            signature = handle.read(4)
        if signature != ZIP_SIGNATURE:
            raise ModelFileError(f"{path}: not a .npz model file (no zip signature)")
        with zipfile.ZipFile(path) as archive:
            members = check_members(path, archive, max_bytes)
            return {name: read_member(path, archive, name, info) for name, info in members.items()}
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError) as exc:
        reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else exc
        raise ModelFileError(f"{path}: not a readable .npz model file ({reason})") from None
    except NotImplementedError as exc:
        raise ModelFileError(f"{path}: uses a zip feature digitnet does not read ({exc})") from None


def check_members(
    path: Path, archive: zipfile.ZipFile, max_bytes: int
) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name, refused when odd or larger than max_bytes unpacked."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(f"{path}: {len(infos)} arrays, expected at most {MAX_MEMBERS}")
    declared = sum(info.file_size for info in infos)
    if declared > max_bytes:
        raise ModelFileError(
            f"{path}: its arrays declare {declared} bytes unpacked, more than the {max_bytes} "
            "digitnet loads (corrupt file or zip bomb?)"
        )
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise ModelFileError(f"{path}: member {info.filename!r} is not a .npy array")
        name = info.filename.removesuffix(".npy")
        if name in members:
            raise ModelFileError(f"{path}: array {name} appears twice")
        members[name] = info
    return members


def read_member(
    path: Path, archive: zipfile.ZipFile, name: str, info: zipfile.ZipInfo
) -> NDArray[Any]:
    """One .npy member as an array, its dtype and size checked before the data is read."""
    with archive.open(info) as member:
        shape, fortran_order, dtype = read_npy_header(path, name, member)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > info.file_size:
            raise ModelFileError(
                f"{path}: array {name} declares shape {shape} ({nbytes} bytes) but its member "
                f"holds {info.file_size} bytes"
            )
        data = member.read(nbytes)
        if len(data) != nbytes or member.read(1):
            raise ModelFileError(f"{path}: array {name} does not match its declared shape {shape}")
    array: NDArray[Any] = np.frombuffer(bytearray(data), dtype=dtype)  # writable, no copy
    return array.reshape(shape, order="F" if fortran_order else "C")


def read_npy_header(
    path: Path, name: str, member: IO[bytes]
) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """Shape, Fortran order and dtype from a .npy header; refuse what a model never holds."""
    try:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise ModelFileError(f"{path}: array {name} uses .npy format {version}")
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read_header(member, max_header_size=MAX_NPY_HEADER)
    except ModelFileError:
        raise
    except (ValueError, SyntaxError, tokenize.TokenError, RecursionError) as exc:
        # NOTE: numpy tokenizes version 1 and 2 headers before it parses them, and a mangled
        # header can fail in the tokenizer (TokenError) as well as in the parser.
        raise ModelFileError(f"{path}: array {name} has a malformed header ({exc})") from None
    if dtype.hasobject:
        raise ModelFileError(
            f"{path}: array {name} holds object arrays (dtype {dtype}); they are refused "
            "because reading them would run pickle"
        )
    if dtype not in (*PARAMETER_DTYPES, np.dtype(np.uint8)):
        raise ModelFileError(f"{path}: array {name} has dtype {dtype}, which a model never holds")
    if any(size < 0 for size in shape):
        raise ModelFileError(f"{path}: array {name} declares a negative shape {shape}")
    return tuple(shape), bool(fortran_order), dtype


def parse_metadata(path: Path, blob: NDArray[Any] | None) -> dict[str, Any]:
    """Decode and check the JSON metadata array."""
    if blob is None:
        raise ModelFileError(f"{path}: no '{METADATA_KEY}' array; not a digitnet model file")
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise ModelFileError(
            f"{path}: metadata must be a 1-D uint8 array, got {blob.dtype} of shape {blob.shape}"
        )
    try:
        metadata = json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: metadata is not valid JSON ({exc})") from None
    except ValueError:  # json refuses integers of more digits than Python converts
        raise ModelFileError(f"{path}: metadata holds a number too long to read") from None
    except RecursionError:
        raise ModelFileError(f"{path}: metadata is JSON nested too deeply to read") from None
    if not isinstance(metadata, dict):
        raise ModelFileError(
            f"{path}: metadata must be a JSON object, got a {type(metadata).__name__}"
        )
    check_version(path, metadata.get("format_version"))
    check_sizes(path, metadata.get("sizes"))
    check_known_fields(path, metadata)
    return metadata


def check_version(path: Path, version: object) -> None:
    if type(version) is int and version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {version} is newer than this digitnet reads "
            f"({FORMAT_VERSION}); upgrade digitnet to load it"
        )
    if type(version) is not int or version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {version!r}, this digitnet reads version {FORMAT_VERSION}"
        )


def check_sizes(path: Path, sizes: object) -> None:
    """Layer widths: a list of positive integers from 784 inputs to 10 outputs."""
    if (
        not isinstance(sizes, list)
        or not 2 <= len(sizes) <= MAX_LAYERS + 1
        or not all(type(size) is int and 1 <= size <= MAX_WIDTH for size in sizes)
    ):
        raise ModelFileError(
            f"{path}: metadata 'sizes' must be a list of 2 to {MAX_LAYERS + 1} positive "
            f"integers, got {excerpt(sizes)}"
        )
    if sizes[0] != INPUT_SIZE or sizes[-1] != NUM_CLASSES:
        raise ModelFileError(
            f"{path}: layer sizes {sizes} must start at {INPUT_SIZE} inputs and end at "
            f"{NUM_CLASSES} outputs"
        )


def check_known_fields(path: Path, metadata: dict[str, Any]) -> None:
    """The fields commands read must have the types save_model's callers give them."""
    expected = {
        "config": (dict,),
        "history": (list,),
        "test_accuracy": (int, float, type(None)),
        "val_accuracy": (int, float, type(None)),
    }
    for key, types in expected.items():
        value = metadata.get(key)
        if key in metadata and (not isinstance(value, types) or isinstance(value, bool)):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ModelFileError(f"{path}: metadata '{key}' must be {names}, got {excerpt(value)}")


__all__ = [
    "FORMAT_VERSION",
    "ModelFileError",
    "check_params",
    "load_arrays",
    "load_model",
    "save_arrays",
    "save_model",
    "write_atomically",
]
