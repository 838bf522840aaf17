"""Publishing scores against real PostgreSQL (and the SQLite fallback): replace, atomic swap, a killed
run, concurrent readers, retention, one live run per date."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import Engine, text

from churn.db import make_engine
from churn.errors import ChurnError
from churn.migrations import upgrade
from churn.scores import scoredb

DAY = dt.date(2017, 4, 1)


def batches(rows: int, seed: int, size: int = 500) -> Iterator[pa.RecordBatch]:
    rng = np.random.default_rng(seed)
    for start in range(0, rows, size):
        n = min(size, rows - start)
        yield pa.record_batch(
            [
                pa.array([f"{i:043d}=" for i in range(start, start + n)]),
                pa.array(rng.random(n)),
                pa.array(["low"] * n),
            ],
            names=list(scoredb.SCORE_COLUMNS),
        )


def run_of(run_id: str, day: dt.date = DAY, version: int = 1) -> scoredb.ScoreRun:
    return scoredb.ScoreRun(run_id=run_id, score_date=day, model_name="kkbox-churn", model_version=version)


def publish(engine: Engine, run_id: str, rows: int, day: dt.date = DAY, retention: int = 90) -> list[dt.date]:
    run = run_of(run_id, day)
    with scoredb.date_lock(engine, day):
        scoredb.begin_run(engine, run)
        return scoredb.publish(engine, run, batches(rows, seed=len(run_id)), retention)[1]


def served(engine: Engine, day: dt.date = DAY) -> tuple[int, list[str]]:
    with engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM churn_scores WHERE score_date = :d"), {"d": day}
        )
        runs = connection.execute(
            text("SELECT DISTINCT run_id FROM churn_scores WHERE score_date = :d"), {"d": day}
        )
        return int(count.scalar_one()), sorted(r[0] for r in runs)


def statuses(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        return dict(connection.execute(text("SELECT run_id, status FROM score_runs")).all())


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_rerunning_a_date_replaces_its_rows(engine: Engine) -> None:
    publish(engine, "score-a", 1200)
    assert served(engine) == (1200, ["score-a"])
    publish(engine, "score-b", 900)
    assert served(engine) == (900, ["score-b"])
    assert statuses(engine) == {"score-a": "superseded", "score-b": "published"}
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT rows_scored FROM score_runs WHERE run_id = 'score-b'")
        ).scalar()
        latest = connection.execute(text("SELECT count(*), min(run_id) FROM latest_scores")).one()
    assert rows == 900
    assert tuple(latest) == (900, "score-b")


def test_a_failing_run_keeps_the_published_scores(engine: Engine) -> None:
    publish(engine, "score-good", 1000)

    def broken() -> Iterator[pa.RecordBatch]:
        yield from batches(600, seed=1)
        raise RuntimeError("model exploded at row 600")

    run = run_of("score-bad")
    with scoredb.date_lock(engine, DAY):
        scoredb.begin_run(engine, run)
        with pytest.raises(RuntimeError, match="exploded"):
            scoredb.publish(engine, run, broken(), 90)
        scoredb.fail_run(engine, run.run_id, "RuntimeError: model exploded at row 600")
    assert served(engine) == (1000, ["score-good"])
    assert statuses(engine) == {"score-good": "published", "score-bad": "failed"}


def test_retention_drops_dates_older_than_the_window(engine: Engine) -> None:
    dropped = []
    for offset in range(4):
        dropped += publish(engine, f"score-{offset}", 50, DAY + dt.timedelta(days=offset), retention=2)
    assert dropped == [DAY, DAY + dt.timedelta(days=1)]  # 04-03 keeps 04-02..03; 04-04 keeps 04-03..04
    with engine.connect() as connection:
        dates = (
            connection.execute(text("SELECT DISTINCT score_date FROM churn_scores ORDER BY 1"))
            .scalars()
            .all()
        )
    assert [str(d) for d in dates] == ["2017-04-03", "2017-04-04"]
    if scoredb.is_postgres(engine):
        with engine.connect() as connection:
            tables = connection.execute(
                text("SELECT relname FROM pg_class WHERE relname LIKE 'churn\\_scores\\_%' AND relkind = 'r'")
            ).scalars()
            assert sorted(tables) == ["churn_scores_p20170403", "churn_scores_p20170404"]


def published_dates(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        dates = connection.execute(text("SELECT DISTINCT score_date FROM churn_scores ORDER BY 1")).scalars()
        return [str(d) for d in dates]


def test_retention_counts_from_the_newest_published_date(engine: Engine) -> None:
    """A backfill inside the window is kept, and the cutoff is the newest published date minus the
    retention (never the backfilled date minus it), so 04-01 goes while 04-05 and 04-10 stay."""
    publish(engine, "score-0401", 50, dt.date(2017, 4, 1))
    publish(engine, "score-0410", 50, dt.date(2017, 4, 10))
    dropped = publish(engine, "score-0405", 50, dt.date(2017, 4, 5), retention=7)
    assert dropped == [dt.date(2017, 4, 1)]
    assert published_dates(engine) == ["2017-04-05", "2017-04-10"]
    assert publish(engine, "score-0410b", 50, dt.date(2017, 4, 10), retention=1) == [dt.date(2017, 4, 5)]
    assert published_dates(engine) == ["2017-04-10"]  # the newest published day itself always stays


def test_a_backfill_outside_the_retention_window_is_refused(engine: Engine) -> None:
    publish(engine, "score-new", 50, dt.date(2017, 4, 10))
    run = run_of("score-old", dt.date(2017, 4, 3))  # 04-10 - 7 days: it would be dropped at once
    with scoredb.date_lock(engine, run.score_date):
        scoredb.begin_run(engine, run)
        with pytest.raises(ChurnError) as refused:
            scoredb.publish(engine, run, batches(50, seed=4), 7)
        scoredb.fail_run(engine, run.run_id, "refused")
    message = str(refused.value)
    assert "2017-04-03" in message and "2017-04-10" in message and "CHURN_SCORE_RETENTION_DAYS" in message
    with pytest.raises(ChurnError, match="CHURN_SCORE_RETENTION_DAYS"):  # the check before any write
        scoredb.check_retention_window(engine, dt.date(2017, 4, 3), 7)
    scoredb.check_retention_window(engine, dt.date(2017, 4, 4), 7)  # inside the window: fine
    assert published_dates(engine) == ["2017-04-10"]
    assert served(engine, dt.date(2017, 4, 10)) == (50, ["score-new"])
    assert statuses(engine) == {"score-new": "published", "score-old": "failed"}
    if scoredb.is_postgres(engine):
        with engine.connect() as connection:
            tables = connection.execute(
                text("SELECT relname FROM pg_class WHERE relname LIKE 'churn\\_scores\\_%' AND relkind = 'r'")
            ).scalars()
            assert sorted(tables) == ["churn_scores_p20170410"]


def _stalled_publish(url: str, ready: str) -> None:
    """Child process: start a run and stall in the middle of its COPY until killed."""
    engine = make_engine(url)
    run = run_of("score-killed")

    def stalling() -> Iterator[pa.RecordBatch]:
        yield from batches(2000, seed=2)
        Path(ready).write_text("copying")
        time.sleep(600)
        yield from batches(10, seed=3)

    with scoredb.date_lock(engine, DAY):
        scoredb.begin_run(engine, run)
        scoredb.publish(engine, run, stalling(), 90)


@pytest.mark.postgres
def test_a_run_killed_during_copy_leaves_the_last_published_scores_served(
    pg_url: str, tmp_path: Path
) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    publish(engine, "score-before", 1500)
    ready = tmp_path / "ready"
    child = multiprocessing.get_context("spawn").Process(target=_stalled_publish, args=(pg_url, str(ready)))
    child.start()
    for _ in range(600):
        if ready.exists() or not child.is_alive():
            break
        time.sleep(0.05)
    assert ready.exists(), "the child never reached its COPY"
    with engine.connect() as connection:
        copying = connection.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %' AND state = 'active'")
        ).scalar()
    assert copying == 1
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)

    assert served(engine) == (1500, ["score-before"])
    assert statuses(engine)["score-killed"] == "running"  # detectably stale: its date lock is free
    for _ in range(100):  # the server notices the dead session and releases its lock
        try:
            with scoredb.date_lock(engine, DAY):
                break
        except scoredb.ScoringBusyError:
            time.sleep(0.1)
    publish(engine, "score-after", 700)
    assert served(engine) == (700, ["score-after"])
    assert statuses(engine) == {
        "score-before": "superseded",
        "score-killed": "failed",
        "score-after": "published",
    }
    with engine.connect() as connection:
        leftovers = connection.execute(
            text("SELECT to_regclass(:t)"), {"t": scoredb.stage_name("score-killed")}
        )
        assert leftovers.scalar() is None
    engine.dispose()


@pytest.mark.postgres
def test_readers_see_the_old_set_or_the_new_one_never_a_mix(pg_url: str) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    sizes = {"score-0": 3000, "score-1": 5000, "score-2": 3000, "score-3": 5000, "score-4": 3000}
    publish(engine, "score-0", sizes["score-0"])
    seen: list[tuple[int, list[str]]] = []
    stop = threading.Event()

    def read() -> None:
        reader = make_engine(pg_url)
        while not stop.is_set():
            seen.append(served(reader))
        reader.dispose()

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for run_id in list(sizes)[1:]:
            publish(engine, run_id, sizes[run_id])
    finally:
        stop.set()
        thread.join(30)
    assert len(seen) > 10
    for count, runs in seen:
        assert len(runs) == 1 and count == sizes[runs[0]], (count, runs)
    assert len({runs[0] for _, runs in seen}) >= 2  # the reader really saw publishes happen
    engine.dispose()


@pytest.mark.postgres
def test_one_live_run_per_date(pg_url: str) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    with scoredb.date_lock(engine, DAY):
        busy = pytest.raises(scoredb.ScoringBusyError, match="another scoring run for 2017-04-01")
        with busy, scoredb.date_lock(engine, DAY):
            pass
        with scoredb.date_lock(engine, DAY + dt.timedelta(days=1)):
            pass  # other dates are free
    engine.dispose()


def test_a_date_whose_publish_would_drop_every_published_date_is_refused(engine: Engine) -> None:
    """One bad Silver row can move Silver's newest day years ahead; a date past every published one by
    more than the retention would then wipe them all. It is refused before anything is written."""
    publish(engine, "score-0401", 50, dt.date(2017, 4, 1))
    publish(engine, "score-0410", 50, dt.date(2017, 4, 10))
    with pytest.raises(ChurnError) as refused:
        scoredb.check_retention_window(engine, dt.date(2030, 1, 1), 90)
    message = str(refused.value)
    assert "2030-01-01" in message and "2017-04-10" in message and "CHURN_SCORE_RETENTION_DAYS" in message
    run = run_of("score-2030", dt.date(2030, 1, 1))
    with scoredb.date_lock(engine, run.score_date):
        scoredb.begin_run(engine, run)
        with pytest.raises(ChurnError, match="every published date"):
            scoredb.publish(engine, run, batches(50, seed=5), 90)
        scoredb.fail_run(engine, run.run_id, "refused")
    assert published_dates(engine) == ["2017-04-01", "2017-04-10"]
    assert served(engine, dt.date(2017, 4, 10)) == (50, ["score-0410"])
    scoredb.check_retention_window(engine, dt.date(2017, 7, 8), 90)  # 89 days on: 04-10 would stay


def test_stage_names_of_long_run_ids_stay_distinct_and_leave_room_for_their_index_names() -> None:
    """Airflow's run ids are long (`scheduled__2017-04-01T02:00:00.123456+00:00`); PostgreSQL cuts
    identifiers at 63 characters, which made the stage's `_rank` and `_revenue` indexes one name."""
    ids = ["scheduled__2017-04-01T02:00:00.123456+00:00", "scheduled__2017-04-01T02:00:00.123457+00:00",
           "manual__2017-04-01T02:00:00.123456+00:00-and-a-long-suffix"]  # fmt: skip
    names = [scoredb.stage_name(run_id) for run_id in ids]
    assert len(set(names)) == len(ids)
    assert all(len(name) + len("_revenue") <= 63 for name in names)
    assert scoredb.stage_name("score-killed") == "churn_scores_stage_score_killed"


def test_a_run_with_an_airflow_length_id_publishes(engine: Engine) -> None:
    run_id = "scheduled__2017-04-01T02:00:00.123456+00:00"  # 61 characters once made an identifier
    publish(engine, run_id, 300)
    assert served(engine) == (300, [run_id])
