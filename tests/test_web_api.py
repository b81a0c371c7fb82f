"""The JSON API of the draw-a-digit server, through Flask's test client."""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

import digitnet.api
import digitnet.web.app
from digitnet.checkpoint import load_model
from digitnet.data import Dataset
from digitnet.preprocess import load_image, preprocess_array, preprocess_image
from digitnet.web.app import create_app

SMALL_LIMIT = 4096


@pytest.fixture(scope="module")
def app(trained_model: Path) -> Flask:
    return create_app(trained_model)


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def mnist_pixels(mnist: Dataset, index: int) -> list[list[float]]:
    rows: list[list[float]] = (mnist.test_images[index] / 255.0).tolist()
    return rows


def paper_png(mnist: Dataset, index: int, size: int = 280) -> bytes:
    """An MNIST test digit as a user would draw it: dark ink on white, at canvas size."""
    ink = Image.fromarray(255 - mnist.test_images[index]).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    buffer = io.BytesIO()
    ink.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def post(client: FlaskClient, body: object) -> tuple[int, dict[str, Any]]:
    response = client.post("/api/predict", json=body)
    return response.status_code, response.get_json()


def test_health_names_the_model_and_its_layers(client: FlaskClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "model": "model.npz",
        "sizes": [784, 128, 10],
        "activation": "sigmoid",
    }


def test_page_and_its_files_are_served_from_the_package(client: FlaskClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in html
        assert client.get(asset).status_code == 200
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_pixels_answer_matches_the_network_on_the_preprocessed_input(
    client: FlaskClient, trained_model: Path, mnist: Dataset
) -> None:
    status, answer = post(client, {"pixels": mnist_pixels(mnist, 0)})
    assert status == 200

    network, _ = load_model(trained_model)
    X = preprocess_array(mnist.test_images[0] / 255.0)
    _, cache = network.forward(X.reshape(1, 784))
    outputs = cache.activations[2][0]
    np.testing.assert_allclose(answer["input"], X, atol=1e-4)
    np.testing.assert_allclose(answer["outputs"], outputs, atol=1e-4)
    np.testing.assert_allclose(answer["probabilities"], outputs / outputs.sum(), atol=1e-4)
    np.testing.assert_allclose(answer["hidden"], cache.activations[1][0], atol=1e-4)
    assert answer["digit"] == int(np.argmax(outputs)) == mnist.test_labels[0]


def test_image_gets_the_same_input_and_probabilities_as_predict(
    client: FlaskClient, trained_model: Path, mnist: Dataset, tmp_path: Path
) -> None:
    png = paper_png(mnist, 1)
    status, answer = post(client, {"image": data_url(png)})
    assert status == 200

    (tmp_path / "digit.png").write_bytes(png)
    model = digitnet.api.load_model(trained_model)
    expected = model.predict(tmp_path / "digit.png")
    np.testing.assert_allclose(
        answer["input"], preprocess_image(load_image(tmp_path / "digit.png")), atol=1e-4
    )
    np.testing.assert_allclose(answer["probabilities"], expected.probabilities[0], atol=1e-4)
    assert answer["digit"] == expected.labels[0] == mnist.test_labels[1]
    assert len(answer["probabilities"]) == 10 and len(answer["hidden"]) == 128


def test_image_may_be_bare_base64(client: FlaskClient, mnist: Dataset) -> None:
    png = paper_png(mnist, 2)
    with_prefix = post(client, {"image": data_url(png)})
    bare = post(client, {"image": base64.b64encode(png).decode("ascii")})
    assert bare == with_prefix and bare[0] == 200


def test_blank_canvas_answers_no_digit(client: FlaskClient) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (280, 280), "white").save(buffer, format="PNG")
    status, answer = post(client, {"image": data_url(buffer.getvalue())})
    assert status == 200
    assert answer["digit"] is None and answer["message"]


def pixels_with(row: int, column: int, value: object) -> list[list[object]]:
    grid: list[list[object]] = [[0.0] * 28 for _ in range(28)]
    grid[row][column] = value
    return grid


NOT_A_PICTURE = base64.b64encode(b"these bytes are no picture").decode("ascii")

BAD_BODIES = {
    "empty body": (b"", 400, "empty request body"),
    "malformed JSON": (b'{"pixels": [', 400, "malformed JSON"),
    "not UTF-8": (b'{"image": "\xff\xfe"}', 400, "not UTF-8"),
    "number of 5000 digits": (b'{"pixels": ' + b"7" * 5000 + b"}", 400, "more than 4300 digits"),
    "arrays nested 100000 deep": (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
    "array instead of object": (b"[1, 2]", 422, "expected a JSON object, got an array"),
    "no field": (b"{}", 422, "exactly one of 'image' or 'pixels', got neither"),
    "both fields": (b'{"image": "", "pixels": []}', 422, "got both"),
    "unknown field": (b'{"picture": "x"}', 422, "unknown field(s) ['picture']"),
    "image not a string": (b'{"image": 42}', 422, "'image' must be a base64 string, got a number"),
    "image not base64": (b'{"image": "data:image/png;base64,@@@"}', 422, "not valid base64"),
    "image empty": (b'{"image": ""}', 422, "'image' is empty"),
    "image not a picture": (
        json.dumps({"image": NOT_A_PICTURE}).encode(),
        422,
        "'image': not a supported image",
    ),
    "pixels not a list": (b'{"pixels": "zeros"}', 422, "list of 28 rows, got a string"),
    "pixels too few rows": (
        json.dumps({"pixels": [[0.0] * 28] * 27}).encode(),
        422,
        "list of 28 rows, got an array of 27",
    ),
    "pixels short row": (
        json.dumps({"pixels": [[0.0] * 28] * 3 + [[0.0] * 5] + [[0.0] * 28] * 24}).encode(),
        422,
        "row 3 must be a list of 28 numbers, got an array of 5",
    ),
    "pixel a string": (
        json.dumps({"pixels": pixels_with(4, 5, "dark")}).encode(),
        422,
        "'pixels'[4][5] must be a number in [0, 1], got 'dark'",
    ),
    "pixel out of range": (
        json.dumps({"pixels": pixels_with(0, 0, 255)}).encode(),
        422,
        "'pixels'[0][0] must be a number in [0, 1], got 255",
    ),
    "pixel a boolean": (
        json.dumps({"pixels": pixels_with(1, 1, True)}).encode(),
        422,
        "got True",
    ),
    "pixel a huge string": (
        json.dumps({"pixels": pixels_with(3, 3, "x" * 1_000_000)}).encode(),
        422,
        "got 'xxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxx'",
    ),
    "unknown field a huge name": (
        json.dumps({"y" * 1_000_000: 0}).encode(),
        422,
        "unknown field(s) ['yyyyyyyyyyyyyyyyy...yyyyyyyyyyyyyyyyyy']",
    ),
    "pixel NaN": (
        json.dumps({"pixels": pixels_with(2, 2, float("nan"))}).encode(),
        422,
        "got nan",
    ),
}


@pytest.mark.parametrize(("body", "status", "message"), BAD_BODIES.values(), ids=BAD_BODIES)
def test_bad_request_gets_a_4xx_json_error_saying_what_was_wrong(
    client: FlaskClient, body: bytes, status: int, message: str
) -> None:
    response = client.post("/api/predict", data=body, content_type="application/json")
    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert len(response.get_data()) < 300


def test_a_fault_in_the_server_is_logged_and_answered_as_json(
    trained_model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(network: object, parsed: object) -> None:
        raise ZeroDivisionError("a fault in the server")

    monkeypatch.setattr(digitnet.web.app, "answer", broken)
    client = create_app(trained_model).test_client()
    response = client.post("/api/predict", json={"pixels": [[0.0] * 28] * 28})
    assert response.status_code == 500 and response.mimetype == "application/json"
    assert response.get_json() == {"error": "internal server error; the server log has the details"}
    assert "ZeroDivisionError: a fault in the server" in caplog.text


def test_body_that_is_not_declared_json_is_refused(client: FlaskClient) -> None:
    response = client.post("/api/predict", data=b'{"pixels": []}', content_type="text/plain")
    assert response.status_code == 415
    assert "Content-Type: application/json" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("limit", "shown"), [(SMALL_LIMIT, f"{SMALL_LIMIT} bytes"), (1024 * 1024, "1 MiB")]
)
def test_body_over_the_size_limit_is_refused(trained_model: Path, limit: int, shown: str) -> None:
    client = create_app(trained_model, max_body_bytes=limit).test_client()
    body = json.dumps({"image": "A" * limit}).encode()
    response = client.post("/api/predict", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == f"request body too large; the limit is {shown}"


def test_picture_with_too_many_pixels_is_refused_before_decoding(client: FlaskClient) -> None:
    buffer = io.BytesIO()
    Image.new("1", (8000, 6000)).save(buffer, format="PNG")
    status, answer = post(client, {"image": data_url(buffer.getvalue())})
    assert status == 422 and "8000x6000 pixels, too large" in answer["error"]


def test_truncated_picture_is_refused(client: FlaskClient, mnist: Dataset) -> None:
    png = paper_png(mnist, 3)
    status, answer = post(client, {"image": data_url(png[: len(png) // 2])})
    assert (
        status == 422 and answer["error"] == "'image': truncated image file (the data ends early)"
    )


def test_unknown_route_and_wrong_method_answer_json(client: FlaskClient) -> None:
    missing = client.get("/api/nothing")
    assert missing.status_code == 404 and "Not Found" in missing.get_json()["error"]
    wrong = client.get("/api/predict")
    assert wrong.status_code == 405 and "Method Not Allowed" in wrong.get_json()["error"]


def test_concurrent_requests_get_the_same_answers_as_sequential_ones(
    app: Flask, mnist: Dataset
) -> None:
    bodies: list[dict[str, object]] = [{"pixels": mnist_pixels(mnist, i)} for i in range(8)]
    bodies += [{"image": data_url(paper_png(mnist, i))} for i in range(8)]
    expected = [post(app.test_client(), body) for body in bodies]

    def ask(index: int) -> tuple[int, dict[str, Any]]:
        return post(app.test_client(), bodies[index % len(bodies)])

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(ask, range(8 * len(bodies))))
    assert answers == [expected[i % len(bodies)] for i in range(len(answers))]


def random_value(rng: np.random.Generator, depth: int = 0) -> object:
    """A random JSON value, nested up to three levels."""
    kind = int(rng.integers(0, 7 if depth < 3 else 4))
    if kind == 0:
        return None
    if kind == 1:
        return float(rng.normal() * 10 ** int(rng.integers(0, 6)))
    if kind == 2:
        return "".join(chr(int(c)) for c in rng.integers(32, 0x2FF, int(rng.integers(0, 20))))
    if kind == 3:
        return bool(rng.integers(0, 2))
    if kind == 4:
        return [random_value(rng, depth + 1) for _ in range(int(rng.integers(0, 30)))]
    if kind == 5:
        return [[random_value(rng, depth + 2)] * 28 for _ in range(28)]
    return {"image" if rng.integers(0, 2) else "pixels": random_value(rng, depth + 1)}


def test_no_input_makes_the_server_fail(client: FlaskClient) -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        body = rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
        response = client.post("/api/predict", data=body, content_type="application/json")
        assert 400 <= response.status_code < 500, body
    for _ in range(300):
        value = random_value(rng)
        body = json.dumps(value).encode()
        response = client.post("/api/predict", data=body, content_type="application/json")
        assert response.status_code in (200, 422), value
        assert response.status_code == 200 or response.get_json()["error"]


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "CMYK", "I", "F", "LA", "I;16"])
def test_pictures_of_every_common_mode_are_answered(client: FlaskClient, mode: str) -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (40, 30), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF")
    status, answer = post(client, {"image": data_url(buffer.getvalue())})
    assert status in (200, 422) and ("digit" in answer or answer["error"])
