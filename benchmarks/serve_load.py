"""Load on `digitnet serve`: concurrent clients posting drawings for a fixed time.

Starts `digitnet serve` with the bundled model on a free loopback port, then runs CLIENTS
threads, each with its own keep-alive connection, posting the same request over and over. It
prints the request rate, the latency percentiles and the number of errors (any answer other
than 200, or a failed connection).

    python benchmarks/serve_load.py --clients 20 --seconds 10
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image, ImageDraw

# A hand-drawn 3 in canvas units, as the page sends it: black ink on white, drawn on the
# 280x280 pad and sent at SEND_SIZE pixels.
SEND_SIZE = 140
THREE = [(80, 70), (140, 45), (190, 80), (150, 135), (195, 185), (140, 235), (80, 215)]


@dataclass
class Tally:
    """Latencies in seconds and error messages, shared by the client threads."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def canvas_body(size: int) -> bytes:
    """The drawing as the page sends it, resized to size x size pixels."""
    image = Image.new("RGB", (280, 280), "white")
    ImageDraw.Draw(image).line(THREE, fill="black", width=26, joint="curve")
    image = image.resize((size, size), Image.Resampling.BOX)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return json.dumps({"image": "data:image/png;base64," + encoded}).encode()


def pixels_body() -> bytes:
    pixels = [[0.0] * 28 for _ in range(28)]
    for row in range(6, 22):
        pixels[row][14] = 1.0
    return json.dumps({"pixels": pixels}).encode()


BODIES = {
    f"image{SEND_SIZE}": lambda: canvas_body(SEND_SIZE),
    "image280": lambda: canvas_body(280),
    "pixels": pixels_body,
}


def start_server() -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "digitnet", "serve", "--port", "0"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if " at http://" not in line:
        process.kill()
        raise SystemExit(f"digitnet serve did not start (it printed {line!r})")
    return process, line.rsplit(" at ", 1)[1].strip()


def client(url: str, body: bytes, deadline: float, tally: Tally) -> None:
    """Post body to /api/predict until deadline, recording each latency or error."""
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            connection.request("POST", "/api/predict", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            error = None if response.status == 200 else f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
            connection.close()
        elapsed = time.perf_counter() - start
        with tally.lock:
            if error is None:
                tally.latencies.append(elapsed)
            else:
                tally.errors.append(error)
    connection.close()


def run_load(
    url: str, body: bytes | list[bytes], clients: int, seconds: float
) -> tuple[Tally, float]:
    """Run clients for seconds; given several bodies, client i sends body i modulo their count."""
    bodies = body if isinstance(body, list) else [body]
    tally = Tally()
    start = time.perf_counter()
    deadline = start + seconds
    threads = [
        threading.Thread(target=client, args=(url, bodies[i % len(bodies)], deadline, tally))
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally, time.perf_counter() - start


def resident_bytes(pid: int) -> int:
    """The resident set size of process pid (VmRSS in /proc/PID/status; Linux only)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS line for process {pid}")


def cpu_per_request(kinds: list[str], rounds: int = 60) -> list[str]:
    """Median CPU ms per request in this process (Flask test client, no HTTP, one thread),
    and of the preprocessing alone, alternating the kinds so that load affects all alike."""
    from digitnet.commands.common import bundled_model_path
    from digitnet.preprocess import preprocess_image
    from digitnet.web.app import create_app
    from digitnet.web.payload import ImageInput, parse_body

    client = create_app(bundled_model_path()).test_client()
    times: dict[str, dict[str, list[float]]] = {kind: {"all": [], "pre": []} for kind in kinds}
    for _ in range(rounds):
        for kind in kinds:
            body = BODIES[kind]()
            start = time.process_time()
            client.post("/api/predict", data=body, content_type="application/json")
            times[kind]["all"].append(time.process_time() - start)
            parsed = parse_body(body)
            if isinstance(parsed, ImageInput):
                start = time.process_time()
                preprocess_image(parsed.image)
                times[kind]["pre"].append(time.process_time() - start)
    lines = []
    for kind, measured in times.items():
        pre = measured["pre"]
        preprocessing = f"{1000 * statistics.median(pre):.1f} ms" if pre else "-"
        lines.append(
            f"{kind} | CPU per request {1000 * statistics.median(measured['all']):.1f} ms | "
            f"of which preprocessing {preprocessing}"
        )
    return lines


def report(tally: Tally, elapsed: float, clients: int, kind: str) -> str:
    ms = sorted(1000 * latency for latency in tally.latencies)
    if not ms:
        return f"{kind}: no successful requests, {len(tally.errors)} errors: {tally.errors[:3]}"
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return (
        f"{kind} | {clients} clients | {elapsed:.1f} s | {len(ms)} ok | "
        f"{len(tally.errors)} errors | {len(ms) / elapsed:.1f} req/s | "
        f"median {statistics.median(ms):.1f} ms | p95 {p95:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--body", choices=(*BODIES, "all"), default="all", help="request to send (default: all)"
    )
    args = parser.parse_args()

    kinds = list(BODIES) if args.body == "all" else [args.body]
    bodies = {kind: BODIES[kind]() for kind in kinds}
    process, url = start_server()
    try:
        for kind in kinds:
            tally, elapsed = run_load(url, bodies[kind], args.clients, args.seconds)
            rss = resident_bytes(process.pid) / 2**20
            print(
                f"{report(tally, elapsed, args.clients, kind)} | server RSS {rss:.1f} MiB",
                flush=True,
            )
    finally:
        process.terminate()
        process.wait(timeout=10)
    for line in cpu_per_request(kinds):
        print(line)


if __name__ == "__main__":
    main()
