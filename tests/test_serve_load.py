"""Load on a real `digitnet serve` process: 50 concurrent clients on loopback, every request
answered, and the server's memory flat once warmed up.

The normal suite runs a short burst (50 clients for 3 seconds). The full run, 30 seconds, is
one variable away and prints its figures:

    DIGITNET_LOAD=1 .venv/bin/python -m pytest tests/test_serve_load.py -s

"No growth" means the server's resident set size (VmRSS) at the end is at most GROWTH_ALLOWED
above its size after the warm-up. The warm-up fills what a server allocates once: the waitress
threads' stacks and malloc arenas, numpy's and Pillow's buffers, Flask's lazily built objects.
What is left is allocator noise, about 1 MiB either way in the measured runs
(docs/reliability.md). The full run serves some 7000 requests, and a server that keeps every
request body (1.6 to 4 KB here) grows by 22 MiB in it, over GROWTH_ALLOWED, so this test fails.
The short burst serves about 700 requests and catches only leaks of some 25 KB per request or
more.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

import serve_load

CLIENTS = 50
FULL_RUN = os.environ.get("DIGITNET_LOAD", "") == "1"
SECONDS = 30.0 if FULL_RUN else 3.0
WARM_UP_SECONDS = 5.0 if FULL_RUN else 2.0
GROWTH_ALLOWED = 16 * 2**20
MIB = 2**20


def test_fifty_clients_get_every_answer_and_the_server_does_not_grow() -> None:
    bodies = [
        serve_load.canvas_body(serve_load.SEND_SIZE),
        serve_load.canvas_body(280),
        serve_load.pixels_body(),
    ]
    process, url = serve_load.start_server()
    try:
        assert url.startswith("http://127.0.0.1:")
        warm_up, _ = serve_load.run_load(url, bodies, CLIENTS, WARM_UP_SECONDS)
        warm = serve_load.resident_bytes(process.pid)
        tally, elapsed = serve_load.run_load(url, bodies, CLIENTS, SECONDS)
        end = serve_load.resident_bytes(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)

    print(
        f"\n{serve_load.report(tally, elapsed, CLIENTS, 'mixed')} | "
        f"RSS after warm-up {warm / MIB:.1f} MiB, at the end {end / MIB:.1f} MiB, "
        f"growth {(end - warm) / MIB:+.1f} MiB"
    )
    assert warm_up.errors == [] and tally.errors == []
    assert len(tally.latencies) >= CLIENTS
    assert end - warm <= GROWTH_ALLOWED
