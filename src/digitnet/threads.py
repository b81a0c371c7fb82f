"""How many threads the BLAS library may use while training.

At the seed network's sizes one matrix product takes tens to hundreds of microseconds, and
at small batches handing half of it to a second thread costs more than it saves. The choice
below was measured by `benchmarks/bench.py` (one against two threads at each batch size,
alternately in one run; the figures are in docs/benchmarks.md).

The user overrides it with `digitnet train --threads N` or the environment variable
DIGITNET_THREADS; the flag wins over the variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_info, threadpool_limits

THREADS_ENV = "DIGITNET_THREADS"

# Measured on two cores with the second one free (docs/benchmarks.md): two threads took 1.10
# times one thread's time per epoch at batch 32, 0.91 at 128, 0.75 at 256 and 0.67 at 1024.
TWO_THREADS_FROM_BATCH = 128


def threads_for_batch(batch_size: int) -> int:
    """The BLAS thread count that trained fastest at this batch size on the measured machine.

    NOTE: this assumes the cores are free. When other processes keep them busy, two threads
    were up to ten times slower than one in the same measurement; set DIGITNET_THREADS=1 there.
    """
    if batch_size < TWO_THREADS_FROM_BATCH:
        return 1
    return min(2, os.cpu_count() or 1)


def choose_threads(batch_size: int, requested: int | None = None) -> int:
    """The thread count to use: requested if given, else DIGITNET_THREADS, else by batch size.

    Raises ValueError for a count below 1 or a variable that is not a whole number.
    """
    if requested is None:
        requested = threads_from_environment()
    if requested is None:
        return threads_for_batch(batch_size)
    if requested < 1:
        raise ValueError(f"the number of threads must be at least 1, got {requested}")
    return requested


def threads_from_environment() -> int | None:
    """The count in DIGITNET_THREADS, or None when it is unset or empty."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{THREADS_ENV} must be a whole number of threads, got {text!r}") from None


@contextmanager
def blas_threads(count: int) -> Iterator[None]:
    """Limit the BLAS library behind NumPy to count threads inside the with-block."""
    with threadpool_limits(limits=count, user_api="blas"):
        yield


def blas_description() -> str:
    """Which BLAS NumPy uses, e.g. 'openblas 0.3.27 (SkylakeX kernels, 2 threads)'."""
    pools = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
    if not pools:
        return "unknown BLAS"
    pool = pools[0]
    kernels = pool.get("architecture") or "unknown"
    return (
        f"{pool.get('internal_api')} {pool.get('version')} "
        f"({kernels} kernels, {pool.get('num_threads')} threads)"
    )
