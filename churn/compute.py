"""Where the data work runs: a Dask cluster when `CHURN_DASK_SCHEDULER` is set, else local threads.

Tasks are plain functions over small arguments (paths, block ranges) that read and write the lake
themselves, so the same task list runs in this process or on remote workers. Local runs use Dask's
threaded scheduler: the heavy kernels (Arrow CSV parsing, Parquet I/O, sorting) release the GIL, and no
worker processes need to start or receive data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import dask

from churn.settings import Settings

R = TypeVar("R")


def _guarded(function: Callable[..., R], *args: Any) -> tuple[bool, Any]:
    """Run a task, returning its exception instead of raising it (see `run_tasks`)."""
    try:
        return True, function(*args)
    except Exception as error:  # handed back to the caller, raised there
        return False, error


def run_tasks(
    settings: Settings, function: Callable[..., R], arguments: Sequence[tuple[Any, ...]]
) -> list[R]:
    """Run `function(*args)` for each args tuple, in parallel, returning results in the same order.

    Every task runs to its end before the first error is raised: callers clean up after a failed run,
    and no task may still be writing while they do.
    """
    if not arguments:
        return []
    tasks = [dask.delayed(_guarded, pure=False)(function, *args) for args in arguments]
    if settings.dask_scheduler:
        from distributed import Client

        with Client(settings.dask_scheduler, set_as_default=False) as client:
            outcomes = list(client.gather(client.compute(tasks)))
    else:
        workers = settings.dask_workers * settings.dask_threads_per_worker
        outcomes = list(dask.compute(*tasks, scheduler="threads", num_workers=workers))
    for ok, value in outcomes:
        if not ok:
            raise value
    return [value for _, value in outcomes]
