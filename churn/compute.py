"""Where the data work runs: a Dask cluster when `CHURN_DASK_SCHEDULER` is set, else local threads.

Tasks are plain functions over small arguments (paths, block ranges) that read and write the lake
themselves, so the same task list runs in this process or on remote workers. Local runs use Dask's
threaded scheduler: the heavy kernels (Arrow CSV parsing, Parquet I/O, sorting) release the GIL, and no
worker processes need to start or receive data.

Progress comes from Dask itself: each finished task is reported to the caller as it ends (a scheduler
callback locally, `as_completed` on a cluster), and a cluster's dashboard link is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import dask

from churn.settings import Settings

R = TypeVar("R")
log = logging.getLogger(__name__)
_dashboards_logged: set[str] = set()  # scheduler addresses whose dashboard link this process logged


def _guarded(function: Callable[..., R], *args: Any) -> tuple[bool, Any]:
    """Run a task, returning its exception instead of raising it (see `run_tasks`)."""
    try:
        return True, function(*args)
    except Exception as error:  # handed back to the caller, raised there
        return False, error


def _log_dashboard(client: Any, address: str) -> None:
    """Log the cluster's dashboard link, once per scheduler and process: where the tasks can be watched."""
    if address not in _dashboards_logged:
        _dashboards_logged.add(address)
        running = "dashboard" in client.scheduler_info().get("services", {})
        link = client.dashboard_link if running else ""  # the link is formatted even when none serves
        log.info("Dask cluster %s: %s", address, f"dashboard {link}" if link else "no dashboard")


def run_tasks(
    settings: Settings,
    function: Callable[..., R],
    arguments: Sequence[tuple[Any, ...]],
    on_done: Callable[[int, R], None] | None = None,
) -> list[R]:
    """Run `function(*args)` for each args tuple, in parallel, returning results in the same order.

    Every task runs to its end before the first error is raised: callers clean up after a failed run,
    and no task may still be writing while they do. `on_done(index, result)` is called in the caller's
    thread as each task succeeds, in the order they finish: callers count their progress there.
    """
    if not arguments:
        return []
    tasks = [dask.delayed(_guarded, pure=False)(function, *args) for args in arguments]
    index = {task.key: i for i, task in enumerate(tasks)}

    def finished(key: Any, outcome: tuple[bool, Any]) -> None:
        if on_done is not None and key in index and outcome[0]:
            on_done(index[key], outcome[1])

    if settings.dask_scheduler:
        from distributed import Client, as_completed

        with Client(settings.dask_scheduler, set_as_default=False) as client:
            _log_dashboard(client, settings.dask_scheduler)
            futures = client.compute(tasks)
            for future in as_completed(futures, loop=client.loop):
                finished(future.key, future.result())
            outcomes = list(client.gather(futures))
    else:
        workers = settings.dask_workers * settings.dask_threads_per_worker
        # The scheduler's (start, start_state, pretask, posttask, finish) callbacks: posttask runs in its
        # loop, in this thread, as each task's result arrives.
        callbacks = [(None, None, None, lambda key, outcome, *_: finished(key, outcome), None)]
        outcomes = list(dask.compute(*tasks, scheduler="threads", num_workers=workers, callbacks=callbacks))
    for ok, value in outcomes:
        if not ok:
            raise value
    return [value for _, value in outcomes]
