"""Segmenting the images of a batch side by side, one per thread.

After the model's forward pass (which already uses every core), each image's own work (clustering,
saliency, the mask; or a whole classical method such as GrabCut) runs in one thread and mostly
in numpy, OpenCV and compiled scikit-image code that release the GIL, so a batch's images run
at once on the available cores. The results are the same, in the same order, whatever the number
of workers.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# More threads than this gain little over a batch of 8-32 images and cost memory on large photos.
MAX_DEFAULT_WORKERS = 8


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, as a container or `taskset` sets it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    return min(available_cores(), MAX_DEFAULT_WORKERS)


def map_in_order(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """fn over items, `workers` at a time in threads, each result yielded in the items' order as
    soon as it and those before it are ready. One worker (or one item) runs in the caller's thread.

    While the threads run, numpy's BLAS is held to one thread each: its products here are small
    (a grid of about 1,000 cells), where BLAS's own threads cost more than they save, and a
    thread per image on top of them would oversubscribe the cores."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="segtool-image")
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            futures = [pool.submit(fn, item) for item in items]
            for future in futures:
                yield future.result()
    finally:
        # A caller that stops early (an error, Ctrl-C) does not wait for images nobody will read.
        pool.shutdown(wait=True, cancel_futures=True)
