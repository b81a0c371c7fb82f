"""`digitnet serve`: the draw-a-digit page on a local web server (waitress).

waitress and the Flask application are imported only when the server starts, so that
`digitnet --help`, which builds every command's parser, does not pay for a web stack.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import os
import sys
import webbrowser
from typing import Any

from digitnet.commands.common import resolve_model_path
from digitnet.web.payload import MAX_BODY_BYTES

THREADS = 8

# Limits that keep a misbehaving or hostile client from tying the server up. waitress's own
# defaults suit a public site behind a proxy (a 1 GiB body, 256 KiB of headers, two minutes of
# silence); a drawing page needs far less.
SERVER_LIMITS: dict[str, Any] = {
    "channel_timeout": 30,  # seconds a connection may stay silent before it is closed
    "cleanup_interval": 10,  # how often, in seconds, silent connections are looked for
    "connection_limit": 100,  # open connections; more wait in the listen backlog
    "max_request_header_size": 64 * 1024,
    # waitress refuses a body beyond this and buffers no more of it; under it the app's own
    # limit (MAX_BODY_BYTES) answers 413 in JSON.
    "max_request_body_size": MAX_BODY_BYTES + 64 * 1024,
    "asyncore_use_poll": True,  # poll() has no 1024-descriptor ceiling, select() does
    "ident": "digitnet",
}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="draw digits in a browser and watch the network answer",
        description="Serve a local web page where you draw a digit and see the prediction, "
        "the 28x28 image the network sees and its hidden activations.",
    )
    parser.add_argument(
        "--model", metavar="M", help="model file (default: the ready model bundled with digitnet)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=8000,
        help="port to listen on; 0 picks a free one (default: 8000)",
    )
    parser.add_argument("--open", action="store_true", help="open the page in a web browser")
    parser.set_defaults(run=run)


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535)")
    return port


def run(args: argparse.Namespace) -> int:
    from digitnet.web.app import create_app

    model = resolve_model_path(args.model)
    app = create_app(model)
    # waitress logs a warning for every request that waits for a free thread; under load that
    # floods the terminal without telling the user anything they can act on.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    server = listen(app, args.host, args.port)
    url = page_url(args.host, bound_port(server))

    if not is_loopback(args.host):
        print(
            f"digitnet: warning: listening on {args.host}, not only on this computer: "
            "anyone who can reach this address can use the page",
            file=sys.stderr,
        )
    print(f"serving {model.name} at {url}", flush=True)
    print("press Ctrl-C to stop", file=sys.stderr, flush=True)
    if args.open:
        webbrowser.open(url)

    try:
        server.run()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.close()
    return 0


def listen(app: Any, host: str, port: int, **limits: Any) -> Any:
    """A waitress server bound to host:port, or an OSError naming the address.

    limits override SERVER_LIMITS (the tests shorten the timeouts).
    """
    from waitress.server import create_server

    settings = {**SERVER_LIMITS, **limits}
    try:
        return create_server(app, host=host, port=port, threads=THREADS, **settings)
    except OSError as exc:
        reason = exc.strerror or os.strerror(exc.errno or errno.EADDRNOTAVAIL)
        raise OSError(exc.errno, reason, f"{host}:{port}") from None


def is_loopback(host: str) -> bool:
    """True when host reaches this computer only: localhost, 127.0.0.0/8, ::1.

    Host names other than localhost count as reachable from outside, since they may resolve to
    any address.
    """
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def bound_port(server: Any) -> int:
    """The port the server listens on; a host name with several addresses gives several."""
    if hasattr(server, "effective_port"):
        return int(server.effective_port)
    return int(server.effective_listen[0][1])


def page_url(host: str, port: int) -> str:
    """The address to print and open; IPv6 hosts are bracketed."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"
