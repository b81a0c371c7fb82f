"""Model files: round trips, and refusal of broken or unsafe files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitnet.checkpoint import ModelFileError, load_model, save_model
from digitnet.data import Dataset, scale_pixels
from digitnet.network import Network, init_network


@pytest.fixture
def network() -> Network:
    return init_network((784, 128, 10), np.random.default_rng(3))


def rewrite(path: Path, target: Path, change) -> Path:
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

    def poison(arrays: dict) -> None:
        arrays["b1"] = arrays["b1"].copy()
        arrays["b1"][5] = np.nan

    with pytest.raises(ModelFileError, match=r"b1 holds NaN"):
        load_model(rewrite(path, tmp_path / "nan.npz", poison))


def test_load_refuses_a_newer_format_version(tmp_path: Path, network: Network) -> None:
    path = save_model(tmp_path / "model.npz", network, {})

    def bump(arrays: dict) -> None:
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
    rewrite(path, tmp_path / "evil.npz", lambda arrays: arrays.update(W1=payload))
    with pytest.raises(ModelFileError, match=r"object arrays"):
        load_model(tmp_path / "evil.npz")
    assert not marker.exists()


def test_load_refuses_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "notes.npz"
    path.write_text("hello")
    with pytest.raises(ModelFileError, match=r"notes.npz: not a .npz model file"):
        load_model(path)


class Exploit:
    """Unpickling this object would create a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))
