"""How many threads the BLAS library may use while training.

At the seed network's sizes one matrix product takes tens to hundreds of microseconds, and
at small batches handing half of it to a second thread costs more than it saves. The figures
behind the choice below come from `benchmarks/bench.py` on a machine with two cores (one
against two threads at each batch size, alternately in one run; docs/benchmarks.md).

The rule for machines with four or more cores is an extrapolation from those two-core
figures, not a measurement: no machine with more than two cores has been timed. On two or
three cores the rule always gives one thread, which is what was measured to be safe there.

The user overrides it with `digitnet train --threads N` or the environment variable
DIGITNET_THREADS; the flag wins over the variable. A resumed run keeps the count it was
trained with unless one of them asks for another.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_info, threadpool_limits

THREADS_ENV = "DIGITNET_THREADS"

# Measured on machines with two cores (docs/benchmarks.md). With the second core free, two
# threads took 0.98 times one thread's time per epoch at batch 32, 0.75 at 128 and 0.65 at 256;
# with other processes on it, two threads took 2 to 8 times as long at every batch size. So a
# second thread only from batch 128, and only where the machine has cores to spare; "four
# cores" is a guess at what "to spare" takes, not a measured threshold.
TWO_THREADS_FROM_BATCH = 128
TWO_THREADS_FROM_CORES = 4


def threads_for_batch(batch_size: int) -> int:
    """The BLAS thread count that trained fastest at this batch size in the measurements."""
    cores = os.cpu_count() or 1
    if batch_size < TWO_THREADS_FROM_BATCH or cores < TWO_THREADS_FROM_CORES:
        return 1
    return 2


def choose_threads(
    batch_size: int, requested: int | None = None, recorded: int | None = None
) -> int:
    """The thread count: requested, else DIGITNET_THREADS, else recorded, else by batch size.

    recorded is the count a resumed run trained with. It is kept unless the user asks for
    another, because the thread count changes how BLAS splits its sums, and so the last bits
    of the weights: a resumed run then ends with exactly the weights of an unbroken one.
    Raises ValueError for a count below 1 or a variable that is not a whole number.
    """
    if requested is None:
        requested = threads_from_environment()
    if requested is None:
        requested = recorded
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
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(
            f"{THREADS_ENV} must be a whole number of threads, 1 or more, got {text!r}"
        )
    return count


@contextmanager
def blas_threads(count: int) -> Iterator[None]:
    """Limit the BLAS library behind NumPy to count threads inside the with-block."""
    with threadpool_limits(limits=count, user_api="blas"):
        yield


def blas_description() -> str:
    """Which BLAS NumPy uses, e.g. 'openblas 0.3.27 (SkylakeX kernels, pool of 2 threads)'."""
    pools = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
    if not pools:
        return "unknown BLAS"
    pool = pools[0]
    kernels = pool.get("architecture") or "unknown"
    return (
        f"{pool.get('internal_api')} {pool.get('version')} "
        f"({kernels} kernels, pool of {pool.get('num_threads')} threads)"
    )
