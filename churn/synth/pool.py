"""Run a function over items in worker processes, taking the results back in the items' order.

The generator's chunks are independent, so they parallelise over cores; their output must still be
written in chunk order (the files' bytes may not depend on the number of workers), and only a few
results may wait in memory at a time (a chunk of the full profile is tens of MB of CSV).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_MMAP_THRESHOLD = 32 << 20  # glibc's largest
_TRIM_THRESHOLD = 1 << 30


def tune_allocator() -> None:
    """Keep freed memory for the next chunk instead of returning it to the system.

    Every chunk allocates the same few-MB arrays again; glibc serves those with fresh mmaps, so each
    chunk pays the kernel to zero its pages again (a third of the generator's CPU time went to the
    system). Raising the mmap and trim thresholds reuses the heap. A no-op without glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    except (OSError, AttributeError):
        return


def ordered_map(function: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """`function(item)` for each item, in order: in this process when `workers` <= 1, else in that many
    worker processes with at most two items per worker under way or waiting to be taken (either way with
    the allocator tuned for repeated chunks, see `tune_allocator`).

    Workers are spawned, not forked: a fork of a process whose Arrow threads are running can hang. The
    function and items must therefore be picklable (a module-level function and plain values).
    """
    if workers <= 1:
        tune_allocator()
        yield from map(function, items)
        return
    pending: deque[Future[R]] = deque()
    remaining = iter(items)
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=tune_allocator)
    try:
        for item in remaining:
            pending.append(pool.submit(function, item))
            if len(pending) >= 2 * workers:
                break
        while pending:
            result = pending.popleft().result()
            for item in remaining:
                pending.append(pool.submit(function, item))
                break
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
