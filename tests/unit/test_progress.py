"""Progress of long work: log lines at most every interval with the rate so far and the time left, a bar
on a terminal instead, one final line; Dask reports each finished task to the caller as it ends."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from churn.compute import run_tasks
from churn.logs import Progress, progress
from churn.settings import Settings


class Clock:
    """A clock the test moves by hand: no sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    """The progress lines logged (at INFO, on the `churn` logger), whatever handlers `churn` has."""
    with _captured("churn.progress", caplog):
        yield lambda: [r.getMessage() for r in caplog.records if r.name == "churn.progress"]


@contextmanager
def _captured(name: str, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """caplog's handler on the logger itself (once: no propagation), at INFO."""
    logger = logging.getLogger(name)
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def test_a_line_at_most_every_interval_with_the_rate_so_far_and_the_time_left(
    lines: Callable[[], list[str]],
) -> None:
    clock = Clock()
    counter = Progress("ingest user_logs.csv", 30_000_000, clock=clock, terminal=False)
    clock.now = 5.0
    counter.advance(6_000_000)
    assert lines() == []  # the interval (30 s) has not passed
    clock.now = 10.0
    counter.advance(6_345_678)
    assert lines() == []
    clock.now = 30.0
    counter.advance(0)
    clock.now = 31.0
    counter.advance(1)  # 1 s after the last line: none
    assert lines() == ["ingest user_logs.csv: 12,345,678 of 30,000,000 rows (41%), 412K rows/s, eta 43 s"]
    clock.now = 61.0
    counter.advance(17_654_321)
    assert lines()[-1] == "ingest user_logs.csv: 30,000,000 of 30,000,000 rows (100%), 492K rows/s, eta 0 s"


def test_the_example_line_of_the_issue() -> None:
    clock = Clock()
    counter = Progress("ingest user_logs.csv", 30_000_000, clock=clock, terminal=False)
    clock.now = 10.0
    counter.done = 12_345_678
    line = "ingest user_logs.csv: 12,345,678 of 30,000,000 rows (41%), 1.2M rows/s, eta 14 s"
    assert counter.state() == line


def test_close_logs_one_final_line_with_units_seconds_and_rate(lines: Callable[[], list[str]]) -> None:
    clock = Clock()
    with Progress("features as of 2017-03-31", 8, "buckets", clock=clock, terminal=False) as counter:
        for _ in range(8):
            clock.now += 2.5
            counter.advance(rows=1_000)
    counter.close()  # a second close logs nothing more
    assert lines() == [
        "features as of 2017-03-31: 8 of 8 buckets in 20.0 s, 0.4 buckets/s; 8,000 rows, 400 rows/s"
    ]


def test_an_error_ends_the_work_with_a_line_saying_so(lines: Callable[[], list[str]]) -> None:
    clock = Clock()
    with (
        pytest.raises(RuntimeError, match="disk full"),
        Progress("score 2017-03-31", None, clock=clock, terminal=False) as counter,
    ):
        clock.now = 4.0
        counter.advance(1_000)
        raise RuntimeError("disk full")
    assert lines() == ["score 2017-03-31: 1,000 rows in 4.0 s, 250 rows/s, stopped by an error"]


def test_unknown_total_gives_counts_and_rate_only() -> None:
    clock = Clock()
    counter = Progress("ingest", clock=clock, terminal=False)
    clock.now = 100.0
    counter.advance(2_500_000_000)
    assert counter.state() == "ingest: 2,500,000,000 rows, 25M rows/s"


def test_long_remaining_times_read_in_minutes_and_hours() -> None:
    clock = Clock()
    counter = Progress("synth", 1_000, "chunks", clock=clock, terminal=False)
    clock.now = 60.0
    counter.advance(5)
    assert counter.state().endswith("eta 3.3 h")
    counter.advance(195)
    assert counter.state().endswith("eta 4 min")
    counter.advance(200)
    assert counter.state().endswith("eta 90 s")


def test_on_a_terminal_a_bar_replaces_the_interval_lines(
    lines: Callable[[], list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    clock = Clock()
    with Progress("train candidates", 3, "candidates", interval_seconds=0, clock=clock, terminal=True) as bar:
        for _ in range(3):
            clock.now += 10
            bar.advance()
    assert "train candidates" in capsys.readouterr().err  # tqdm draws on stderr
    assert lines() == ["train candidates: 3 of 3 candidates in 30.0 s, 0.1 candidates/s"]


def test_the_iterable_helper_yields_every_item_and_counts_them(lines: Callable[[], list[str]]) -> None:
    assert list(progress(range(5), total=5, desc="synth", interval_seconds=0)) == [0, 1, 2, 3, 4]
    assert lines()[-1].startswith("synth: 5 of 5 it in ")
    assert len(lines()) == 6  # one per item (interval 0), then the final line


def test_advance_from_many_threads_loses_no_count() -> None:
    counter = Progress("threads", terminal=False)
    workers = [threading.Thread(target=lambda: [counter.advance() for _ in range(10_000)]) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert counter.done == 40_000


def square(x: int) -> int:
    return x * x


def failing_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def test_local_tasks_report_each_success_in_the_callers_thread() -> None:
    seen: list[tuple[int, int, str]] = []
    results = run_tasks(Settings(dask_workers=2), square, [(i,) for i in range(8)],
                        lambda i, r: seen.append((i, r, threading.current_thread().name)))  # fmt: skip
    assert results == [i * i for i in range(8)]
    assert sorted(seen) == [(i, i * i, threading.current_thread().name) for i in range(8)]


def test_a_failed_task_is_not_reported_done_and_raises_after_the_others() -> None:
    seen: list[int] = []
    with pytest.raises(ValueError, match="three"):
        run_tasks(Settings(dask_workers=1), failing_on_three, [(i,) for i in range(6)],
                  lambda i, _: seen.append(i))  # fmt: skip
    assert sorted(seen) == [0, 1, 2, 4, 5]


def test_a_cluster_reports_each_task_and_its_dashboard_once(caplog: pytest.LogCaptureFixture) -> None:
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0")
    settings = Settings(dask_scheduler=cluster.scheduler_address)
    seen: list[list[int]] = [[], []]
    try:
        with _captured("churn.compute", caplog):
            for run in seen:
                results = run_tasks(
                    settings, square, [(i,) for i in range(5)], lambda i, _, run=run: run.append(i)
                )
                assert results == [0, 1, 4, 9, 16]
    finally:
        cluster.close()
    assert [sorted(run) for run in seen] == [[0, 1, 2, 3, 4]] * 2
    told = [r.getMessage() for r in caplog.records if r.name == "churn.compute"]
    assert len(told) == 1 and told[0].startswith(f"Dask cluster {cluster.scheduler_address}: dashboard http")
