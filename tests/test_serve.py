"""`digitnet serve` on the command line: address, warnings, --open and clear errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from digitnet.cli import main
from digitnet.commands import serve


class StoppedServer:
    """Stands in for the waitress server: it has a port and returns from run() at once."""

    effective_port = 8123

    def __init__(self) -> None:
        self.closed = False

    def run(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


@pytest.fixture()
def stopped_server(monkeypatch: pytest.MonkeyPatch) -> StoppedServer:
    server = StoppedServer()
    calls: list[tuple[Any, ...]] = []

    def fake_listen(app: object, host: str, port: int) -> StoppedServer:
        calls.append((host, port))
        return server

    monkeypatch.setattr(serve, "listen", fake_listen)
    return server


def test_serve_prints_the_loopback_address_without_warning(
    trained_model: Path, stopped_server: StoppedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--model", str(trained_model)]) == 0
    out, err = capsys.readouterr()
    assert out == "serving model.npz at http://127.0.0.1:8123/\n"
    assert "warning" not in err
    assert stopped_server.closed


def test_serve_warns_when_bound_beyond_loopback(
    trained_model: Path, stopped_server: StoppedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--model", str(trained_model), "--host", "0.0.0.0"]) == 0
    out, err = capsys.readouterr()
    assert "http://0.0.0.0:8123/" in out
    assert "digitnet: warning: listening on 0.0.0.0" in err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "LocalHost", "::1"])
def test_every_loopback_address_counts_as_this_computer(host: str) -> None:
    assert serve.is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.org"])
def test_addresses_beyond_this_computer_do_not_count_as_loopback(host: str) -> None:
    assert not serve.is_loopback(host)


def test_serve_on_another_loopback_address_does_not_warn(
    trained_model: Path, stopped_server: StoppedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--model", str(trained_model), "--host", "127.0.0.2"]) == 0
    out, err = capsys.readouterr()
    assert "http://127.0.0.2:8123/" in out and "warning" not in err


def test_the_command_line_does_not_import_the_web_stack() -> None:
    """Every command's parser, serve's too, is built without Flask or waitress: serve loads them."""
    web = ("flask", "werkzeug", "jinja2", "waitress")
    code = (
        "import sys, digitnet.cli; digitnet.cli.build_parser(); "
        f"print([m for m in {web!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_open_flag_opens_the_page_in_a_browser(
    trained_model: Path, stopped_server: StoppedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("digitnet.commands.serve.webbrowser.open", opened.append)
    assert main(["serve", "--model", str(trained_model), "--open"]) == 0
    assert opened == ["http://127.0.0.1:8123/"]


def test_ipv6_address_is_bracketed_in_the_url() -> None:
    assert serve.page_url("::1", 8000) == "http://[::1]:8000/"


def test_missing_model_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--model", str(tmp_path / "none.npz")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.npz: no such model file" in err


@pytest.mark.parametrize(
    ("port", "message"),
    [("70000", "70000 is not a port number (0 to 65535)"), ("http", "'http' is not a port")],
)
def test_bad_port_is_a_usage_error(
    port: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--port", port])
    assert exit_info.value.code == 2
    assert f"argument --port: {message}" in capsys.readouterr().err


def test_port_in_use_names_the_address(
    trained_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(trained_model), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"digitnet: error: 127.0.0.1:{port}: address already in use" in err


def test_port_of_a_server_on_several_sockets_is_the_first() -> None:
    server = SimpleNamespace(effective_listen=[("127.0.0.1", 8001), ("::1", 8002)])
    assert serve.bound_port(server) == 8001


def test_real_server_answers_on_the_printed_address(trained_model: Path) -> None:
    command = [sys.executable, "-m", "digitnet", "serve", "--model", str(trained_model)]
    process = subprocess.Popen(
        [*command, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" at ", 1)[1].strip()
        with urllib.request.urlopen(url + "api/health", timeout=10) as response:
            assert json.load(response)["status"] == "ok"
        request = urllib.request.Request(
            url + "api/predict", data=b"[]", headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 422
        assert "expected a JSON object" in json.load(refused.value)["error"]
    finally:
        process.terminate()
        process.wait(timeout=10)
