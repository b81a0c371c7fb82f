"""The web application behind `digitnet serve`: the draw-a-digit page and its JSON API.

Routes:
    GET  /              the page (static HTML, CSS and JavaScript shipped in the package)
    GET  /api/health    {"status": "ok", "model": ..., "sizes": [...], "activation": ...}
    POST /api/predict   a JSON body read by digitnet.web.payload; answers the network's outputs,
                        the 28x28 input it saw and the hidden activations

Every error, including unknown routes and oversized bodies, is answered as JSON
{"error": message} with a 4xx status; a fault in the server itself is logged with its traceback
and answered as JSON with status 500, never as an HTML page. The network is only read after
loading, and its forward pass allocates fresh arrays, so one instance serves concurrent requests
safely.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask, Response, jsonify, request
from numpy.typing import NDArray
from werkzeug.exceptions import HTTPException

from digitnet.api import load_model, normalize
from digitnet.network import Network
from digitnet.preprocess import NoDigitError, preprocess_array, preprocess_image
from digitnet.web.payload import (
    MAX_BODY_BYTES,
    MEBIBYTE,
    ImageInput,
    PayloadError,
    PixelInput,
    parse_body,
)

DECIMALS = 4
STATIC_FOLDER = Path(__file__).parent / "static"

# The page loads nothing from other origins and runs no inline script.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
        "script-src 'self'; object-src 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(model_path: str | Path, max_body_bytes: int = MAX_BODY_BYTES) -> Flask:
    """The WSGI application serving the model in model_path.

    Raises ModelFileError (a ValueError) when the model cannot be loaded, before anything is
    served.
    """
    network = load_model(model_path).network
    app = Flask(__name__, static_folder=str(STATIC_FOLDER), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    model_name = Path(model_path).name

    @app.get("/")
    def index() -> Response:
        return app.send_static_file("index.html")

    @app.get("/api/health")
    def health() -> Response:
        return jsonify(
            status="ok", model=model_name, sizes=list(network.sizes), activation=network.activation
        )

    @app.post("/api/predict")
    def predict() -> tuple[Response, int]:
        if not request.is_json:
            raise PayloadError(415, "send the body as JSON with Content-Type: application/json")
        parsed = parse_body(request.get_data(cache=False))
        return jsonify(answer(network, parsed)), 200

    register_error_handlers(app, max_body_bytes)
    return app


def register_error_handlers(app: Flask, max_body_bytes: int) -> None:
    """Answer every refused request, and every HTTP error, as JSON {"error": message}."""

    @app.errorhandler(PayloadError)
    def payload_error(error: PayloadError) -> tuple[Response, int]:
        return jsonify(error=error.message), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        return jsonify(error=http_error_message(error, max_body_bytes)), status

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> tuple[Response, int]:
        app.logger.exception("unexpected error while answering %s %s", request.method, request.path)
        return jsonify(error="internal server error; the server log has the details"), 500

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response


def http_error_message(error: HTTPException, max_body_bytes: int) -> str:
    if error.code == 413:
        limit = (
            f"{max_body_bytes // MEBIBYTE} MiB"
            if max_body_bytes % MEBIBYTE == 0
            else f"{max_body_bytes} bytes"
        )
        return f"request body too large; the limit is {limit}"
    return f"{error.name}: {error.description}"


def answer(network: Network, parsed: ImageInput | PixelInput) -> dict[str, Any]:
    """The JSON answer for one input: outputs, input and hidden activations, or no digit."""
    try:
        X = network_input(parsed)
    except NoDigitError as exc:
        return {"digit": None, "message": str(exc)}
    except ValueError as exc:
        raise PayloadError(422, f"the input cannot be preprocessed: {exc}") from None
    return describe_forward_pass(network, X)


def network_input(parsed: ImageInput | PixelInput) -> NDArray[np.float32]:
    """The (28, 28) float32 image the network sees, by the same preprocessing as predict."""
    if isinstance(parsed, ImageInput):
        return preprocess_image(parsed.image)
    return preprocess_array(np.asarray(parsed.rows, dtype=np.float32))


def describe_forward_pass(network: Network, X: NDArray[np.float32]) -> dict[str, Any]:
    """Run X (28, 28) through the network and report what each layer produced.

    "outputs" are the ten sigmoid output units; "probabilities" are those divided by their sum,
    as `digitnet predict` reports them. "hidden" is the first hidden layer's activations.
    """
    _, cache = network.forward(X.reshape(1, -1).astype(network.dtype))
    outputs = cache.activations[-1]  # (1, 10)
    hidden = cache.activations[1][0]  # (128,)
    probabilities = normalize(outputs)[0]  # (10,)
    return {
        "digit": int(np.argmax(probabilities)),
        "probabilities": rounded(probabilities),
        "outputs": rounded(outputs[0]),
        "input": rounded(X),
        "hidden": rounded(hidden),
    }


def rounded(array: NDArray[Any]) -> Any:
    """Nested lists of floats rounded to DECIMALS places, short enough to send often."""
    return np.round(array.astype(np.float64), DECIMALS).tolist()
