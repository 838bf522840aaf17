"""The score tables: run bookkeeping, atomic per-date publishing, retention, recovery from dead runs.

PostgreSQL: rows are COPY'd into a fresh table of the run, which gets its indexes (unique msno for lookups,
probability-desc and revenue-desc for pages) and a CHECK on the date after the load; then one short
transaction detaches and drops the date's old partition, attaches the new one (the CHECK spares the scan) and
marks the run published. A score's context (revenue at risk, reasons, the plan it is on) is in the same rows,
so it is published with the scores or not at all. Readers of `churn_scores` see the old day or the new one,
never a mix, and never a half-loaded table. Retention counts back from the newest published date, never from
the requested one.

SQLite (fallback): the same contract with DELETE + INSERT of the date's rows in one transaction.

A session-level advisory lock per score date serialises runs of one date. It dies with its connection,
so a run whose process was killed leaves a `running` row whose lock is free: the next run of that date
marks it failed and drops its half-loaded table before starting.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Engine, text

from churn.db import is_postgres
from churn.errors import ChurnError

log = logging.getLogger(__name__)

_LOCK_BASE = 0x73636F7265 << 20  # "score" << 20: one advisory lock key per score date (+ day number)
_STAGE_PREFIX = "churn_scores_stage_"
_PARTITION = re.compile(r"^churn_scores_p(\d{8})$")
REVENUE_ORDER = "(COALESCE(revenue_at_risk, -1))"  # the revenue sort key: unknown (NULL) after every known
SCORE_COLUMNS = ("msno", "churn_probability", "risk_band")
"""The per-user columns every published batch has."""
CONTEXT_COLUMNS: dict[str, pa.DataType] = {
    "revenue_at_risk": pa.float64(), "price_per_30d": pa.float64(), "plan_days": pa.int32(),
    "payment_method": pa.int32(), "auto_renew": pa.bool_(), "city": pa.int32(), "reasons": pa.string(),
}  # fmt: skip
"""The per-user columns a batch may carry beside them (migration 005; NULL where a batch has none)."""
PUBLISHED_COLUMNS = (*SCORE_COLUMNS, *CONTEXT_COLUMNS)


def complete_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch with every published column in order: its context columns cast to their types, the ones
    it lacks as NULL (so a writer of the three score columns alone still publishes)."""
    missing = [name for name in SCORE_COLUMNS if name not in batch.schema.names]
    if missing:
        raise ChurnError(f"a scores batch lacks column(s) {', '.join(missing)}")
    arrays = [batch[name] for name in SCORE_COLUMNS]
    for name, kind in CONTEXT_COLUMNS.items():
        present = name in batch.schema.names
        arrays.append(batch[name].cast(kind) if present else pa.nulls(batch.num_rows, kind))
    return pa.record_batch(arrays, names=list(PUBLISHED_COLUMNS))


class ScoringBusyError(ChurnError):
    """Another live run holds the date."""


class RetentionWindowError(ChurnError):
    """A backfill date the retention would drop as soon as it is published."""


# What is published, asked one way by the writer and every reader (scores API, drift, performance).
NEWEST_PUBLISHED = "SELECT max(score_date) FROM score_runs WHERE status = 'published'"
PUBLISHED_RUN = "SELECT run_id FROM score_runs WHERE score_date = :d AND status = 'published'"
_PUBLISHED_BETWEEN = (
    "SELECT score_date, run_id, model_version FROM score_runs WHERE status = 'published' "
    "AND score_date >= :first AND score_date <= :last ORDER BY score_date"
)


class PublishedRun(NamedTuple):
    """A published scoring run: the date it scored, its id and the model version that scored it."""

    score_date: dt.date
    run_id: str
    model_version: int


def published_runs(engine: Engine, first: dt.date, last: dt.date) -> list[PublishedRun]:
    """The published runs of the dates from `first` to `last`, oldest first (one per date at most)."""
    with engine.connect() as connection:
        rows = connection.execute(text(_PUBLISHED_BETWEEN), {"first": first, "last": last}).all()
    return [
        PublishedRun(dt.date.fromisoformat(str(r.score_date)), r.run_id, int(r.model_version)) for r in rows
    ]


@dataclass(frozen=True)
class ScoreRun:
    """What a scoring run records about itself before it writes any score."""

    run_id: str
    score_date: dt.date
    model_name: str
    model_version: int
    data_version: str = ""
    feature_spec_hash: str = ""
    code_version: str = ""
    airflow_dag_id: str = ""
    airflow_run_id: str = ""


def partition_name(score_date: dt.date) -> str:
    """The partition table that holds one date's scores."""
    return f"churn_scores_p{score_date:%Y%m%d}"


def stage_name(run_id: str) -> str:
    """The table a run loads into before it is swapped in: a valid identifier made from the run id, at
    most 50 characters so that its index and constraint names (`_revenue`, `_date`...) stay within
    PostgreSQL's 63 and distinct; a long id keeps its start and gets a hash of the whole id."""
    base = re.sub(r"[^a-z0-9]+", "_", run_id.lower())
    if len(base) > 31:
        base = f"{base[:22]}_{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"
    return _STAGE_PREFIX + base


def _lock_key(score_date: dt.date) -> int:
    return _LOCK_BASE + (score_date - dt.date(1970, 1, 1)).days


@contextmanager
def date_lock(engine: Engine, score_date: dt.date) -> Iterator[None]:
    """Hold the date's advisory lock for the whole run (PostgreSQL); refuse when a live run holds it."""
    if not is_postgres(engine):
        yield
        return
    with engine.connect() as connection:
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:k)"), {"k": _lock_key(score_date)}
        ).scalar()
        connection.commit()
        if not got:
            raise ScoringBusyError(f"another scoring run for {score_date} is in progress; try again later")
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _lock_key(score_date)})
            connection.commit()


def begin_run(engine: Engine, run: ScoreRun) -> list[str]:
    """Record the run as running; first fail the date's abandoned runs (call under `date_lock`).

    Returns the ids of the runs found abandoned (their process died before publishing).
    """
    with engine.begin() as connection:
        abandoned = [
            row[0]
            for row in connection.execute(
                text("SELECT run_id FROM score_runs WHERE score_date = :d AND status = 'running'"),
                {"d": run.score_date},
            )
        ]
        if abandoned:
            connection.execute(
                text(
                    "UPDATE score_runs SET status = 'failed', finished_at = CURRENT_TIMESTAMP, "
                    "error = 'abandoned: its process ended before publishing' "
                    "WHERE score_date = :d AND status = 'running'"
                ),
                {"d": run.score_date},
            )
            if is_postgres(engine):
                for run_id in abandoned:
                    connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{stage_name(run_id)}"')
            log.warning(
                "marked abandoned scoring runs of %s failed: %s", run.score_date, ", ".join(abandoned)
            )
        if connection.execute(text("SELECT 1 FROM score_runs WHERE run_id = :r"), {"r": run.run_id}).first():
            raise ChurnError(f"scoring run id {run.run_id} was used before: every run needs a new id")
        connection.execute(
            text(
                "INSERT INTO score_runs (run_id, score_date, model_name, model_version, status, "
                "data_version, feature_spec_hash, code_version, airflow_dag_id, airflow_run_id) "
                "VALUES (:run_id, :score_date, :model_name, :model_version, 'running', :data_version, "
                ":feature_spec_hash, :code_version, :airflow_dag_id, :airflow_run_id)"
            ),
            run.__dict__,
        )
    return abandoned


def fail_run(engine: Engine, run_id: str, error: str) -> None:
    """Mark a run failed with its reason and drop whatever it loaded; published scores stay."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE score_runs SET status = 'failed', finished_at = CURRENT_TIMESTAMP, error = :e "
                "WHERE run_id = :r AND status = 'running'"
            ),
            {"e": error[:2000], "r": run_id},
        )
        if is_postgres(engine):
            connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{stage_name(run_id)}"')


def _as_date(value: Any) -> dt.date | None:
    """A date column value as a date (SQLite hands back text)."""
    return None if value is None else dt.date.fromisoformat(str(value))


def retention_cutoff(score_date: dt.date, newest: dt.date | None, retention_days: int) -> dt.date:
    """The date on or before which scores are dropped: `retention_days` before the newest published date
    (this one included), never counted from the requested date, so a backfill cannot widen the window
    and, with at least one day kept, the newest published day always stays. Refuses a date that would
    itself be dropped."""
    if retention_days < 1:
        raise ValueError(f"retention_days must be at least 1 (got {retention_days})")
    latest = score_date if newest is None else max(newest, score_date)
    cutoff = latest - dt.timedelta(days=retention_days)
    if score_date <= cutoff:
        raise RetentionWindowError(
            f"score date {score_date} is outside the retention window: the newest published date is "
            f"{latest} and CHURN_SCORE_RETENTION_DAYS={retention_days} keeps only dates after {cutoff}, so "
            "it would be dropped at once (raise CHURN_SCORE_RETENTION_DAYS to backfill it)"
        )
    return cutoff


def check_retention_window(engine: Engine, score_date: dt.date, retention_days: int) -> None:
    """Refuse, before a run writes anything, a date the retention would drop as soon as it is published,
    and a date so far past every published one that its publish would drop them all: one bad row can move
    Silver's newest day years ahead, and a mistake must not wipe the served history. (Resuming after a
    gap longer than the retention is done by raising CHURN_SCORE_RETENTION_DAYS for that run.)"""
    with engine.connect() as connection:
        newest = _as_date(connection.execute(text(NEWEST_PUBLISHED)).scalar())
    cutoff = retention_cutoff(score_date, newest, retention_days)
    if newest is not None and newest <= cutoff:
        raise RetentionWindowError(
            f"score date {score_date} is {(score_date - newest).days} days after the newest published date "
            f"{newest}: with CHURN_SCORE_RETENTION_DAYS={retention_days} its publish would drop every "
            "published date. A date this far ahead is more likely a mistake (a wrong date, or a bad row "
            "that moved Silver's newest day) than a resumed schedule; to resume after a gap that long, raise "
            "CHURN_SCORE_RETENTION_DAYS for that run"
        )


class _CsvStream(io.RawIOBase):
    """A read-only file over CSV bytes encoded batch by batch (COPY reads it without the whole table
    ever being text in memory)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self.error: BaseException | None = None  # what the producer raised (the driver hides it)

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                chunk = next(self._chunks, None)
            except BaseException as error:
                self.error = error
                raise
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def _csv_chunks(batches: Iterable[pa.RecordBatch], counter: list[int]) -> Iterator[bytes]:
    # Strings quoted (the reasons are JSON), NULL as an empty unquoted field: COPY's CSV reads it as NULL.
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    for batch in batches:
        counter[0] += batch.num_rows
        sink = io.BytesIO()
        pacsv.write_csv(complete_batch(batch), sink, options)
        yield sink.getvalue()


def _publish_postgres(
    engine: Engine, run: ScoreRun, batches: Iterable[pa.RecordBatch], retention_days: int
) -> tuple[int, list[dt.date]]:
    stage, partition = stage_name(run.run_id), partition_name(run.score_date)
    day = run.score_date.isoformat()
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        # The load: a plain logged table with the run's constants as column defaults, so COPY carries
        # only the per-user columns.
        cursor.execute(f'DROP TABLE IF EXISTS "{stage}"')
        cursor.execute(f'CREATE TABLE "{stage}" (LIKE churn_scores INCLUDING CONSTRAINTS)')
        cursor.execute(
            f'ALTER TABLE "{stage}" ALTER score_date SET DEFAULT %s, ALTER model_version SET DEFAULT %s, '
            "ALTER run_id SET DEFAULT %s",
            (day, run.model_version, run.run_id),
        )
        raw.commit()
        counter = [0]
        stream = _CsvStream(_csv_chunks(batches, counter))
        try:
            cursor.copy_expert(
                f'COPY "{stage}" ({", ".join(PUBLISHED_COLUMNS)}) FROM STDIN WITH (FORMAT csv)',
                stream,
                size=1 << 20,
            )
        except Exception:
            if (
                stream.error is not None
            ):  # the producer failed (model, features): raise that, not the driver's
                raise stream.error from None
            raise
        cursor.execute(
            f'ALTER TABLE "{stage}" ALTER score_date DROP DEFAULT, ALTER model_version DROP DEFAULT, '
            f'ALTER run_id DROP DEFAULT, ADD CONSTRAINT "{stage}_date" CHECK (score_date = %s)',
            (day,),
        )
        cursor.execute(f'CREATE UNIQUE INDEX "{stage}_msno" ON "{stage}" (msno)')
        cursor.execute(f'CREATE INDEX "{stage}_rank" ON "{stage}" (churn_probability DESC, msno)')
        cursor.execute(f'CREATE INDEX "{stage}_revenue" ON "{stage}" ({REVENUE_ORDER} DESC, msno)')
        raw.commit()

        # The swap: one transaction, a few catalog changes; readers block for its duration only.
        cursor.execute("SET LOCAL lock_timeout = '60s'")
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (partition,))
        exists = cursor.fetchone()
        assert exists is not None  # a SELECT without FROM returns exactly one row
        if exists[0]:
            cursor.execute(f'ALTER TABLE churn_scores DETACH PARTITION "{partition}"')
            cursor.execute(f'DROP TABLE "{partition}"')
        cursor.execute(f'ALTER TABLE "{stage}" RENAME TO "{partition}"')
        cursor.execute(f'ALTER INDEX "{stage}_msno" RENAME TO "{partition}_msno"')
        cursor.execute(f'ALTER INDEX "{stage}_rank" RENAME TO "{partition}_rank"')
        cursor.execute(f'ALTER INDEX "{stage}_revenue" RENAME TO "{partition}_revenue"')
        cursor.execute(f'ALTER TABLE churn_scores ATTACH PARTITION "{partition}" FOR VALUES IN (%s)', (day,))
        cursor.execute(f'ALTER TABLE "{partition}" DROP CONSTRAINT "{stage}_date"')
        _mark_published(cursor, run, counter[0])
        cursor.execute(NEWEST_PUBLISHED)
        newest = cursor.fetchone()
        assert newest is not None  # an aggregate without GROUP BY returns exactly one row
        dropped = _retention_postgres(
            cursor, retention_cutoff(run.score_date, _as_date(newest[0]), retention_days)
        )
        raw.commit()
        return counter[0], dropped
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


def _mark_published(cursor: Any, run: ScoreRun, rows: int) -> None:
    cursor.execute(
        "UPDATE score_runs SET status = 'superseded' WHERE score_date = %s AND status = 'published'",
        (run.score_date,),
    )
    cursor.execute(
        "UPDATE score_runs SET status = 'published', rows_scored = %s, finished_at = CURRENT_TIMESTAMP "
        "WHERE run_id = %s AND status = 'running'",
        (rows, run.run_id),
    )
    if cursor.rowcount != 1:
        raise ChurnError(f"scoring run {run.run_id} is no longer running (marked failed by another run?)")


def _retention_postgres(cursor: Any, cutoff: dt.date) -> list[dt.date]:
    """Detach and drop the partitions of dates on or before the cutoff."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'churn_scores'::regclass"
    )
    dropped = []
    for (name,) in cursor.fetchall():
        match = _PARTITION.match(name)
        if match and dt.datetime.strptime(match.group(1), "%Y%m%d").date() <= cutoff:
            cursor.execute(f'ALTER TABLE churn_scores DETACH PARTITION "{name}"')
            cursor.execute(f'DROP TABLE "{name}"')
            dropped.append(dt.datetime.strptime(match.group(1), "%Y%m%d").date())
    return sorted(dropped)


def _publish_sqlite(
    engine: Engine, run: ScoreRun, batches: Iterable[pa.RecordBatch], retention_days: int
) -> tuple[int, list[dt.date]]:
    rows = 0
    insert = text(
        f"INSERT INTO churn_scores (score_date, {', '.join(PUBLISHED_COLUMNS)}, model_version, run_id) "
        f"VALUES (:d, {', '.join(':' + name for name in PUBLISHED_COLUMNS)}, :v, :r)"
    )
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM churn_scores WHERE score_date = :d"), {"d": run.score_date})
        for batch in batches:
            records = complete_batch(batch).to_pylist()
            for record in records:
                record.update(d=run.score_date, v=run.model_version, r=run.run_id)
            if records:
                connection.execute(insert, records)
            rows += len(records)
        _mark_published_sqlite(connection, run, rows)
        newest = _as_date(connection.execute(text(NEWEST_PUBLISHED)).scalar())
        cutoff = retention_cutoff(run.score_date, newest, retention_days)
        dropped = [
            dt.date.fromisoformat(str(row[0]))
            for row in connection.execute(
                text("SELECT DISTINCT score_date FROM churn_scores WHERE score_date <= :c"), {"c": cutoff}
            )
        ]
        connection.execute(text("DELETE FROM churn_scores WHERE score_date <= :c"), {"c": cutoff})
    return rows, sorted(dropped)


def _mark_published_sqlite(connection: Connection, run: ScoreRun, rows: int) -> None:
    connection.execute(
        text("UPDATE score_runs SET status = 'superseded' WHERE score_date = :d AND status = 'published'"),
        {"d": run.score_date},
    )
    done = connection.execute(
        text(
            "UPDATE score_runs SET status = 'published', rows_scored = :n, finished_at = CURRENT_TIMESTAMP "
            "WHERE run_id = :r AND status = 'running'"
        ),
        {"n": rows, "r": run.run_id},
    )
    if done.rowcount != 1:
        raise ChurnError(f"scoring run {run.run_id} is no longer running (marked failed by another run?)")


def publish(
    engine: Engine, run: ScoreRun, batches: Iterable[pa.RecordBatch], retention_days: int
) -> tuple[int, list[dt.date]]:
    """Replace the date's scores with these rows (`SCORE_COLUMNS`, and any of `CONTEXT_COLUMNS`) and mark
    the run published, atomically; drop the dates `retention_days` or more before the newest published date
    (`retention_cutoff`). -> (rows, dates dropped). A date outside the window is refused before the load
    (and again in the swap, should a newer date have been published meanwhile)."""
    started = time.perf_counter()
    check_retention_window(engine, run.score_date, retention_days)
    if is_postgres(engine):
        rows, dropped = _publish_postgres(engine, run, batches, retention_days)
    else:
        rows, dropped = _publish_sqlite(engine, run, batches, retention_days)
    log.info("published %d scores for %s in %.1f s", rows, run.score_date, time.perf_counter() - started)
    return rows, dropped


def record_timings(engine: Engine, run_id: str, **figures: float | int) -> None:
    """Store a run's figures (seconds per phase, users with features) on its row."""
    allowed = {"seconds_features", "seconds_predict", "seconds_publish", "users_with_features"}
    unknown = set(figures) - allowed
    if unknown:
        raise ValueError(f"unknown score_runs figures: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = :{name}" for name in sorted(figures))
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE score_runs SET {assignments} WHERE run_id = :run_id"),
                           {**figures, "run_id": run_id})  # fmt: skip
