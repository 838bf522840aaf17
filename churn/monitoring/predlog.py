"""Append-only log of live prediction inputs and outputs in the lake, for drift monitoring.

Rows are buffered in memory and written as a new Parquet file per flush (never rewritten), partitioned
by the prediction's as-of date: `monitoring/predictions/as_of=YYYY-MM-DD/part-<pid>-<uuid>.parquet`.
Each row holds the request time, source (lake or events), msno, model version, probability and every
feature value, so the weekly drift job can compare live inputs with training data. The weekly run
prunes the days past `CHURN_PREDICTION_LOG_RETENTION_DAYS` (`prune`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
import uuid
from typing import Any

import pyarrow as pa

from churn.features.spec import FEATURE_NAMES
from churn.lake import Lake

log = logging.getLogger(__name__)

PREFIX = "monitoring/predictions"
_PARTITION = re.compile(r"/as_of=(\d{4}-\d{2}-\d{2})$")


def prune(lake: Lake, last_day: dt.date, retention_days: int) -> list[dt.date]:
    """Delete the log's days on or before `last_day - retention_days` (so the `retention_days` days ending
    on `last_day` stay, the score retention's rule); returns the days deleted. `last_day` comes from the
    caller's run (a week's end), never from the clock: what a run keeps depends on its week only."""
    if retention_days < 1:
        raise ValueError(f"retention_days must be at least 1 (got {retention_days})")
    cutoff = last_day - dt.timedelta(days=retention_days)
    removed = []
    for folder in lake.glob(f"{PREFIX}/as_of=*"):
        match = _PARTITION.search(folder)
        if match is None:
            continue  # not a day of the log: left alone
        try:
            day = dt.date.fromisoformat(match.group(1))
        except ValueError:
            continue
        if day <= cutoff:
            lake.remove(folder)
            removed.append(day)
    if removed:
        log.info("pruned %d days of the prediction log up to %s", len(removed), cutoff)
    return removed


class PredictionLog:
    """Thread-safe buffer of prediction records, flushed to the lake by size or on demand."""

    def __init__(self, lake: Lake, flush_rows: int = 1000) -> None:
        self._lake = lake
        self._flush_rows = flush_rows
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.dropped = 0

    def append(self, record: dict[str, Any]) -> None:
        """Buffer one record (keys: requested_at, source, msno, as_of, model_version, churn_probability,
        and the features); flush when the buffer is full. Never raises: a lake outage must not fail the
        prediction. While the lake refuses writes the buffer is capped (10x the flush size); records past
        the cap are dropped and counted in `dropped`."""
        with self._lock:
            if len(self._rows) >= 10 * self._flush_rows:
                self.dropped += 1
                return
            self._rows.append(record)
            full = len(self._rows) >= self._flush_rows
        if full:
            try:
                self.flush()
            except Exception as error:  # kept in the buffer; the background flush retries
                log.warning("cannot write the prediction log yet: %s", error)

    def flush(self) -> int:
        """Write the buffered rows, one file per as-of date; returns how many were written. If the lake
        refuses a write, the days not yet written go back to the buffer and the error is raised."""
        with self._lock:
            rows, self._rows = self._rows, []
        by_day: dict[dt.date, list[dict[str, Any]]] = {}
        for row in rows:
            by_day.setdefault(row["as_of"], []).append(row)
        written: set[dt.date] = set()
        for day, group in by_day.items():
            try:
                self._write(day, group)
            except BaseException:
                pending = [r for r in rows if r["as_of"] not in written]
                with self._lock:
                    self._rows = pending + self._rows
                raise
            written.add(day)
        if rows:
            log.info("logged %d live predictions to %s", len(rows), self._lake.uri(PREFIX))
        return len(rows)

    def _write(self, day: dt.date, group: list[dict[str, Any]]) -> None:
        table = pa.table({
            "requested_at": pa.array([r["requested_at"] for r in group], pa.timestamp("ms", tz="UTC")),
            "source": pa.array([r["source"] for r in group], pa.string()),
            "msno": pa.array([r.get("msno") for r in group], pa.string()),
            "as_of": pa.array([r["as_of"] for r in group], pa.date32()),
            "model_version": pa.array([r["model_version"] for r in group], pa.int32()),
            "churn_probability": pa.array([r["churn_probability"] for r in group], pa.float64()),
            **{n: pa.array([r.get(n) for r in group], pa.float64()) for n in FEATURE_NAMES},
        })  # fmt: skip
        path = f"{PREFIX}/as_of={day.isoformat()}/part-{os.getpid()}-{uuid.uuid4().hex[:12]}.parquet"
        self._lake.write_parquet(path, table, dictionary=False)
