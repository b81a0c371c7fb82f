"""The real server (waitress) under abuse: paths outside the static files, slow and oversized
requests. The JSON API's answers to malformed bodies are in test_web_api.py."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from digitnet.commands import serve
from digitnet.web.app import create_app
from digitnet.web.payload import MAX_BODY_BYTES

SOURCE = (Path(serve.__file__).parents[1] / "web" / "app.py").read_text()
PIECE = 64 * 1024
SHORT_TIMEOUT = 2  # seconds of silence before the test server closes a connection


@pytest.fixture(scope="module")
def address(trained_model: Path) -> Iterator[tuple[str, int]]:
    """A waitress server configured as `digitnet serve` is, with shorter timeouts, in a thread."""
    server = serve.listen(
        create_app(trained_model), "127.0.0.1", 0, channel_timeout=SHORT_TIMEOUT, cleanup_interval=1
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield "127.0.0.1", serve.bound_port(server)
    server.close()


def exchange(address: tuple[str, int], request: bytes, timeout: float = 10) -> bytes:
    """Send raw request bytes, exactly as given, and read the answer until the server closes.

    The bytes go in 64 KiB pieces and sending stops once the server has answered, as a real
    client would: a server that refuses a request early closes the connection on the rest.
    """
    with socket.create_connection(address, timeout=timeout) as connection:
        for start in range(0, len(request), PIECE):
            if select.select([connection], [], [], 0)[0]:
                break
            connection.sendall(request[start : start + PIECE])
        return read_until_closed(connection)


def read_until_closed(connection: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        if not chunks:
            raise
    return b"".join(chunks)


def get(address: tuple[str, int], target: str) -> tuple[int, dict[str, str], bytes]:
    request = f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    head, _, body = exchange(address, request.encode()).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_the_static_files_themselves_are_served(address: tuple[str, int]) -> None:
    status, _, body = get(address, "/static/app.js")
    assert status == 200 and b"/api/predict" in body


TRAVERSALS = [
    "/static/../app.py",
    "/static/%2e%2e/app.py",
    "/static/.%2e/app.py",
    "/static/%2E%2E%2Fapp.py",
    "/static/..%2fapp.py",
    "/static/..%5capp.py",
    "/static/..\\app.py",
    "/static/%252e%252e/app.py",
    "/static/app.js/../../app.py",
    "/static/./../app.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/static/../../../../../../etc/passwd",
    "//etc/passwd",
    "/../../../../etc/passwd",
    "/static/app.js%00.py",
    f"/static/{Path(serve.__file__).parents[1] / 'web' / 'app.py'}",
    "http://localhost/static/../app.py",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_no_path_reaches_outside_the_static_files(address: tuple[str, int], target: str) -> None:
    status, headers, body = get(address, target)
    if status == 308:  # "//" is merged into "/" by a redirect; follow it once
        location = headers["Location"]
        assert location.startswith(("/static/", "http://localhost/static/", "/etc"))
        status, _, body = get(address, location.removeprefix("http://localhost"))
    assert 400 <= status < 500
    assert b"def create_app" not in body and b"root:" not in body
    assert SOURCE.encode()[:200] not in body


def test_a_silent_client_is_disconnected(address: tuple[str, int]) -> None:
    start = time.monotonic()
    answer = exchange(address, b"GET / HTTP/1.1\r\nHost: localhost\r\n", timeout=30)
    waited = time.monotonic() - start
    assert answer == b""
    assert SHORT_TIMEOUT - 0.5 <= waited < SHORT_TIMEOUT + 10


def test_serve_hands_its_limits_to_waitress(trained_model: Path) -> None:
    server = serve.listen(create_app(trained_model), "127.0.0.1", 0)
    try:
        assert server.adj.channel_timeout == 30
        assert server.adj.max_request_body_size == MAX_BODY_BYTES + 64 * 1024
        assert server.adj.max_request_header_size == 64 * 1024
        assert server.adj.connection_limit == 100
    finally:
        server.close()


def test_oversized_headers_are_refused(address: tuple[str, int]) -> None:
    padding = "x" * (serve.SERVER_LIMITS["max_request_header_size"] + 1)
    request = f"GET / HTTP/1.1\r\nHost: localhost\r\nX-Padding: {padding}"
    answer = exchange(address, request.encode())
    assert answer.split()[1] == b"431"


def test_a_declared_huge_body_is_refused_before_it_is_sent(address: tuple[str, int]) -> None:
    request = (
        "POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {2**30}\r\n\r\n"
    )
    start = time.monotonic()
    answer = exchange(address, request.encode())
    assert answer.split()[1] == b"413" and time.monotonic() - start < 5


def test_a_chunked_body_over_the_limit_is_refused(address: tuple[str, int]) -> None:
    chunk = b"A" * PIECE
    count = serve.SERVER_LIMITS["max_request_body_size"] // PIECE + 1
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    request = (
        b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + framed * count
    )
    answer = exchange(address, request)
    assert answer.split()[1] == b"413"


def test_a_body_just_over_the_app_limit_gets_a_json_413(address: tuple[str, int]) -> None:
    length = MAX_BODY_BYTES + 1
    request = (
        "POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode() + b" " * length
    answer = exchange(address, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split()[1] == b"413" and b'"request body too large' in body
