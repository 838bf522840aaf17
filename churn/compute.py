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


def run_tasks(
    settings: Settings, function: Callable[..., R], arguments: Sequence[tuple[Any, ...]]
) -> list[R]:
    """Run `function(*args)` for each args tuple, in parallel, returning results in the same order."""
    if not arguments:
        return []
    tasks = [dask.delayed(function, pure=False)(*args) for args in arguments]
    if settings.dask_scheduler:
        from distributed import Client

        with Client(settings.dask_scheduler, set_as_default=False) as client:
            return list(client.gather(client.compute(tasks)))
    workers = settings.dask_workers * settings.dask_threads_per_worker
    return list(dask.compute(*tasks, scheduler="threads", num_workers=workers))
