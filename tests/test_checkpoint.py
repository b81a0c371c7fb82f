"""Model files: round trips, and refusal of broken or unsafe files."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from digitnet.checkpoint import ModelFileError, load_model, save_model
from digitnet.data import Dataset, scale_pixels
from digitnet.network import Network, init_network


@pytest.fixture
def network() -> Network:
    return init_network((784, 128, 10), np.random.default_rng(3))


def rewrite(path: Path, target: Path, change: Callable[[dict[str, np.ndarray]], object]) -> Path:
    """Copy the arrays of path into target after change(arrays) edits them."""
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    with target.open("wb") as handle:
        np.savez(handle, **arrays)
    return target


def test_saved_model_predicts_the_same_in_a_fresh_process(
    tmp_path: Path, network: Network, mnist: Dataset
) -> None:
    path = save_model(tmp_path / "model.npz", network, {"seed": 3})
    X = scale_pixels(mnist.test_images[:50])
    np.save(tmp_path / "x.npy", X)
    script = (
        "import sys, numpy as np; from digitnet.checkpoint import load_model;"
        "net, _ = load_model(sys.argv[1]);"
        "np.save(sys.argv[3], net.predict_proba(np.load(sys.argv[2])))"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "x.npy"), str(tmp_path / "p.npy")],
        check=True,
    )
    assert np.array_equal(np.load(tmp_path / "p.npy"), network.predict_proba(X))


def test_metadata_round_trips(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network, {"seed": 3, "history": [{"epoch": 1}]})
    _, metadata = load_model(path)
    assert metadata["seed"] == 3 and metadata["history"] == [{"epoch": 1}]
    assert metadata["sizes"] == [784, 128, 10] and metadata["format_version"] == 1


def test_save_leaves_no_temporary_files(tmp_path: Path, network: Network) -> None:
    save_model(tmp_path / "model.npz", network, {})
    save_model(tmp_path / "model.npz", network, {})
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_load_refuses_a_missing_array(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network, {})
    broken = rewrite(path, tmp_path / "broken.npz", lambda arrays: arrays.pop("b2"))
    with pytest.raises(ModelFileError, match=r"broken.npz: .*missing \['b2'\]"):
        load_model(broken)


def test_load_refuses_a_misshapen_array(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network, {})
    broken = rewrite(
        path, tmp_path / "broken.npz", lambda a: a.update(W1=np.zeros((128, 783), np.float32))
    )
    with pytest.raises(ModelFileError, match=r"W1 has shape \(128, 783\), expected \(128, 784\)"):
        load_model(broken)


def test_load_refuses_non_finite_values(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network, {})

    def poison(arrays: dict[str, np.ndarray]) -> None:
        arrays["b1"] = arrays["b1"].copy()
        arrays["b1"][5] = np.nan

    with pytest.raises(ModelFileError, match=r"b1 holds NaN"):
        load_model(rewrite(path, tmp_path / "nan.npz", poison))


def test_load_refuses_a_newer_format_version(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network, {})

    def bump(arrays: dict[str, np.ndarray]) -> None:
        meta = json.loads(arrays["metadata"].tobytes())
        meta["format_version"] = 99
        arrays["metadata"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    with pytest.raises(ModelFileError, match=r"format version 99"):
        load_model(rewrite(path, tmp_path / "new.npz", bump))


def test_load_refuses_pickled_objects_without_unpickling_them(
    tmp_path: Path, network: Network
) -> None:
    marker = tmp_path / "was-unpickled"
    path = save_model(tmp_path / "model.npz", network, {})
    payload = np.array([Exploit(str(marker))], dtype=object)
    evil = rewrite(path, tmp_path / "evil.npz", lambda arrays: arrays.update(W1=payload))

    unpickle_member(evil, "W1.npy")  # the control: pickle itself runs the payload
    assert marker.exists()
    marker.unlink()

    with pytest.raises(ModelFileError, match=r"W1 holds object arrays .* would run pickle"):
        load_model(evil)
    assert not marker.exists()


def unpickle_member(path: Path, member: str) -> object:
    """Unpickle the data of a .npy member directly with pickle, after its header."""
    with zipfile.ZipFile(path) as archive, archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        assert version == (1, 0)
        _, _, dtype = np.lib.format.read_array_header_1_0(handle)
        assert dtype.hasobject
        return pickle.load(handle)


def test_load_never_calls_pickle(
    tmp_path: Path, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle was called")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    path = save_model(tmp_path / "model.npz", network, {})
    payload = np.array([{"a": 1}], dtype=object)
    rewrite(path, tmp_path / "evil.npz", lambda arrays: arrays.update(b1=payload))
    assert load_model(path)[0].sizes == (784, 128, 10)
    with pytest.raises(ModelFileError, match=r"b1 holds object arrays"):
        load_model(tmp_path / "evil.npz")


def test_load_refuses_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "notes.npz"
    path.write_text("hello")
    with pytest.raises(ModelFileError, match=r"notes.npz: not a .npz model file"):
        load_model(path)


class Exploit:
    """Unpickling this object would create a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[Path], None], tuple[Path]]:
        return (Path.touch, (Path(self.marker),))


def edit_metadata(path: Path, target: Path, change: Callable[[dict[str, Any]], object]) -> Path:
    """Copy path to target with change(metadata) applied to its JSON metadata."""

    def edit(arrays: dict[str, np.ndarray]) -> None:
        meta = json.loads(arrays["metadata"].tobytes())
        change(meta)
        arrays["metadata"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    return rewrite(path, target, edit)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes], compress: bool = False) -> Path:
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def model_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_load_refuses_an_extra_array(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network, {})
    extra = rewrite(path, tmp_path / "x.npz", lambda a: a.update(W3=np.zeros((10, 10), np.float32)))
    with pytest.raises(ModelFileError, match=r"x.npz: .*missing \[\], extra \['W3'\]"):
        load_model(extra)


@pytest.mark.parametrize(
    ("dtype", "message"),
    [
        (np.int32, "has dtype int32, which a model never holds"),
        (np.float16, "has dtype float16, which a model never holds"),
        (np.uint8, "has dtype uint8, expected float32 or float64"),
        (np.complex64, "has dtype complex64, which a model never holds"),
    ],
    ids=["int32", "float16", "uint8", "complex64"],
)
def test_load_refuses_parameters_of_the_wrong_dtype(
    tmp_path: Path, network: Network, dtype: type, message: str
) -> None:
    path = save_model(tmp_path / "model.npz", network, {})
    retyped = rewrite(path, tmp_path / "t.npz", lambda a: a.update(b2=a["b2"].astype(dtype)))
    with pytest.raises(ModelFileError, match=rf"t.npz: array b2 {message}"):
        load_model(retyped)


def test_float64_parameters_load_as_float32(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network.astype(np.float64), {})
    loaded, _ = load_model(path)
    assert loaded.dtype == np.float32
    assert np.array_equal(loaded.params["W2"], network.params["W2"])


def test_float64_parameters_beyond_float32s_range_are_refused(
    tmp_path: Path, network: Network
) -> None:
    wide = network.astype(np.float64)
    wide.params["b1"][3] = -1e300  # finite in float64, infinite once cast to float32
    path = save_model(tmp_path / "model.npz", wide, {})
    with pytest.raises(ModelFileError, match=r"array b1 holds values beyond float32's range"):
        load_model(path)


def test_load_refuses_infinite_values(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network, {})
    poisoned = rewrite(path, tmp_path / "inf.npz", lambda a: a.update(W2=a["W2"] * np.inf))
    with pytest.raises(ModelFileError, match=r"W2 holds NaN or infinite values"):
        load_model(poisoned)


def test_a_newer_format_version_asks_for_a_newer_digitnet(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network, {})
    newer = edit_metadata(path, tmp_path / "v2.npz", lambda m: m.update(format_version=2))
    with pytest.raises(ModelFileError, match=r"format version 2 is newer .* upgrade digitnet"):
        load_model(newer)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": True}, r"format version True, this digitnet reads version 1"),
        ({"format_version": "1"}, r"format version '1', this digitnet reads version 1"),
        ({"sizes": None}, r"'sizes' must be a list of 2 to 17 positive integers, got None"),
        ({"sizes": [784, "128", 10]}, r"'sizes' must be .*, got \[784, '128', 10\]"),
        ({"sizes": [784, 128.0, 10]}, r"'sizes' must be .*, got \[784, 128.0, 10\]"),
        ({"sizes": [784, True, 10]}, r"'sizes' must be .*, got \[784, True, 10\]"),
        ({"sizes": [784, 10**12, 10]}, r"'sizes' must be .*, got \[784, 1000000000000, 10\]"),
        ({"sizes": [784]}, r"'sizes' must be a list of 2 to 17"),
        ({"sizes": [5, 3, 2]}, r"layer sizes \[5, 3, 2\] must start at 784 inputs and end at 10"),
        ({"history": {"epoch": 1}}, r"metadata 'history' must be list, got \{'epoch': 1\}"),
        ({"config": [1, 2]}, r"metadata 'config' must be dict, got \[1, 2\]"),
        ({"test_accuracy": "98%"}, r"'test_accuracy' must be int or float or null, got '98%'"),
        ({"val_accuracy": False}, r"'val_accuracy' must be int or float or null, got False"),
    ],
    ids=[
        "version-bool",
        "version-string",
        "sizes-null",
        "sizes-string",
        "sizes-float",
        "sizes-bool",
        "sizes-huge",
        "sizes-one-layer",
        "sizes-not-784-to-10",
        "history-object",
        "config-list",
        "accuracy-string",
        "accuracy-bool",
    ],
)
def test_load_refuses_metadata_of_the_wrong_types(
    tmp_path: Path, network: Network, change: dict[str, Any], message: str
) -> None:
    path = save_model(tmp_path / "model.npz", network, {})
    edited = edit_metadata(path, tmp_path / "meta.npz", lambda m: m.update(change))
    with pytest.raises(ModelFileError, match=rf"meta.npz: .*{message}"):
        load_model(edited)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"{not json", r"metadata is not valid JSON"),
        (b"\xff\xfe{}", r"metadata is not valid JSON \('utf-8' codec"),
        (b"[1, 2, 3]", r"metadata must be a JSON object, got a list"),
        (b"[" * 100_000 + b"]" * 100_000, r"metadata is JSON nested too deeply to read"),
        (b'{"seed": ' + b"9" * 5000 + b"}", r"metadata holds a number too long to read"),
    ],
    ids=["not-json", "not-utf8", "not-an-object", "nested-too-deeply", "integer-too-long"],
)
def test_load_refuses_malformed_metadata(
    tmp_path: Path, network: Network, blob: bytes, message: str
) -> None:
    path = save_model(tmp_path / "model.npz", network, {})
    replaced = np.frombuffer(blob, dtype=np.uint8)
    broken = rewrite(path, tmp_path / "meta.npz", lambda a: a.update(metadata=replaced))
    with pytest.raises(ModelFileError, match=message):
        load_model(broken)


def test_load_refuses_metadata_that_is_not_bytes(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network, {})
    broken = rewrite(path, tmp_path / "m.npz", lambda a: a.update(metadata=np.zeros(3)))
    with pytest.raises(ModelFileError, match=r"metadata must be a 1-D uint8 array, got float64"):
        load_model(broken)


def test_load_refuses_a_file_without_metadata(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network, {})
    broken = rewrite(path, tmp_path / "bare.npz", lambda a: a.pop("metadata"))
    with pytest.raises(ModelFileError, match=r"bare.npz: no 'metadata' array"):
        load_model(broken)


def test_load_refuses_a_member_that_is_not_an_array(tmp_path: Path, network: Network) -> None:
    members = model_members(save_model(tmp_path / "model.npz", network, {}))
    members["W1.pkl"] = pickle.dumps({"not": "read"})
    with pytest.raises(ModelFileError, match=r"member 'W1.pkl' is not a .npy array"):
        load_model(write_zip(tmp_path / "odd.npz", members))


def test_load_refuses_a_member_stored_twice(tmp_path: Path, network: Network) -> None:
    members = list(model_members(save_model(tmp_path / "model.npz", network, {})).items())
    path = tmp_path / "twice.npz"
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "w") as archive:
        for name, data in [*members, members[0]]:
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match=r"twice.npz: array \w+ appears twice"):
        load_model(path)


def test_a_truncated_model_file_is_refused(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network, {})
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match=r"cut.npz: not a readable .npz model file"):
        load_model(cut)


def test_a_corrupted_array_is_refused_by_its_crc(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network, {})
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01  # inside W1's values, stored uncompressed
    broken = tmp_path / "flip.npz"
    broken.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"flip.npz: not a readable .*Bad CRC-32"):
        load_model(broken)


def test_a_header_declaring_a_huge_array_is_refused_before_allocating(tmp_path: Path) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 10**9)}
    )
    path = write_zip(tmp_path / "liar.npz", {"W1.npy": header.getvalue() + bytes(64)})
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"array W1 declares shape .* but its member"):
            load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_a_negative_shape_is_refused(tmp_path: Path) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (-1, 4)}
    )
    path = write_zip(tmp_path / "neg.npz", {"W1.npy": header.getvalue() + bytes(64)})
    with pytest.raises(ModelFileError, match=r"array W1 declares a negative shape \(-1, 4\)"):
        load_model(path)


def test_a_malformed_npy_header_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "bad.npz", {"W1.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': 1"})
    with pytest.raises(ModelFileError, match=r"bad.npz: array W1 has a malformed header"):
        load_model(path)


def test_a_zip_declaring_huge_members_is_refused_unread(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network, {})
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")  # first central directory entry
    data[central + 24 : central + 28] = (0xFFFFFFF0).to_bytes(4, "little")
    bomb = tmp_path / "declared.npz"
    bomb.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"declared.npz: its arrays declare \d+ bytes"):
        load_model(bomb)


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    bomb_npy = npy_bytes(np.zeros(16 << 20, dtype=np.float32))  # 64 MiB of zeros
    path = write_zip(tmp_path / "bomb.npz", {"W1.npy": bomb_npy}, compress=True)
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"more than the 16777216 digitnet loads"):
            load_model(path, max_bytes=16 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_a_header_that_breaks_the_tokenizer_is_refused(tmp_path: Path) -> None:
    """An unclosed bracket makes numpy's header filter raise TokenError, not a SyntaxError."""
    text = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, \n"
    member = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text
    path = write_zip(tmp_path / "open.npz", {"W1.npy": member})
    with pytest.raises(ModelFileError, match=r"open.npz: array W1 has a malformed header"):
        load_model(path)


def test_a_device_is_not_mistaken_for_a_missing_file() -> None:
    with pytest.raises(ModelFileError, match=r"/dev/null: not a regular file, expected a .npz"):
        load_model("/dev/null")
