"""Read queries over the published scores: one user, a filtered page, a user's history, a whole day.

Every query binds its values as parameters; the only SQL text assembled here is the choice among fixed filter
fragments. Pages are keyset-paginated on (probability desc, msno asc), or on (revenue at risk desc, msno asc)
with unknown revenue last: a page costs the same at the millionth row as at the first. A cursor carries the
run its first page read: later pages read that run's rows only, and once the day is re-published the cursor is
refused (`CursorExpiredError`) rather than continue on another run's rows.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from churn.data.events import MSNO_PATTERN
from churn.errors import ChurnError
from churn.model.reasons import parse_reasons
from churn.scores.scoredb import NEWEST_PUBLISHED, PUBLISHED_RUN, REVENUE_ORDER

CONTRACT_VERSION = "2"
"""The version of the scores' JSON fields and CSV columns (header `Churn-Scores-Contract`). Changes are
additive: version 1 had the first six fields; version 2 appended the context after them (README, "Reading
the scores")."""
CONTEXT_FIELDS = "revenue_at_risk, price_per_30d, plan_days, payment_method, auto_renew, city, reasons"
SCORE_FIELDS = f"msno, score_date, churn_probability, risk_band, model_version, run_id, {CONTEXT_FIELDS}"
CSV_FIELDS = f"score_date, msno, churn_probability, risk_band, model_version, run_id, {CONTEXT_FIELDS}"
SORTS = {"probability": "churn_probability", "revenue_at_risk": REVENUE_ORDER}
"""The page orders: name -> the sort key's SQL (both descending, then msno ascending)."""


RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9._:+-]{1,128}")  # what `churn.logs.new_run_id` and Airflow give


class CursorError(ChurnError, ValueError):
    """A pagination cursor that this API did not issue (or for another query)."""


class CursorExpiredError(ChurnError):
    """A cursor of a run that is no longer the published one: its pages are gone, start again."""


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: the day and run of the first page, and the last row's sort key (its
    probability, or its revenue at risk with -1 for unknown, by `sort`)."""

    score_date: dt.date
    run_id: str
    key: float
    msno: str
    sort: str = "probability"


@dataclass(frozen=True)
class PageFilter:
    """The filters and order of GET /scores; `score_date` None means the newest published date."""

    score_date: dt.date | None = None
    min_probability: float | None = None
    max_probability: float | None = None
    risk_band: str | None = None
    plan_days: int | None = None
    payment_method: int | None = None
    auto_renew: bool | None = None
    city: int | None = None
    min_revenue_at_risk: float | None = None
    sort: str = "probability"


async def newest_published_date(connection: AsyncConnection) -> dt.date | None:
    """The newest date with a published run (the date readers get by default)."""
    value = await connection.scalar(text(NEWEST_PUBLISHED))
    return None if value is None else dt.date.fromisoformat(str(value))


@dataclass(frozen=True)
class Freshness:
    """How old the newest published scores are, for alerting (never to choose what is served).

    A night's run publishes day D after D ends (02:00 UTC), so on day T the newest date is T-1, or T-2
    before that run finishes: `max_age_days` (CHURN_SCORES_MAX_AGE_DAYS, 2) is the age a healthy schedule
    never passes; older means a night was not published.
    """

    newest: dt.date | None
    age_days: int | None
    max_age_days: int

    @property
    def stale(self) -> bool:
        """No scores at all, or older than the limit."""
        return self.age_days is None or self.age_days > self.max_age_days

    def describe(self) -> str:
        """The readiness detail: `ok: 2017-04-03, 1 day old` or `stale: ... (limit 2)`."""
        if self.newest is None:
            return "stale: none published"
        age = f"{self.newest.isoformat()}, {self.age_days} day{'s' if self.age_days != 1 else ''} old"
        return f"stale: {age} (limit {self.max_age_days})" if self.stale else f"ok: {age}"


def freshness(newest: dt.date | None, today: dt.date, max_age_days: int) -> Freshness:
    """The freshness of scores whose newest published date is `newest`, seen on `today` (the caller's clock:
    an operational reading)."""
    return Freshness(newest, None if newest is None else (today - newest).days, max_age_days)


class NewestDate:
    """The newest published date as one API worker knows it, re-read at most every `ttl_seconds`.

    The hot lookup binds this date, so the planner keeps only that day's partition (a subquery in the
    lookup is pruned only while executing, after every retained day's partition was planned, opened and
    locked: with 90 days retained 0.34-0.55 ms a lookup against 0.09 ms, measured with pgbench, and the
    p99 tripled); caching it saves the second round trip (-40% lookups/s when read per request). A day
    published in the meantime is served at most `ttl_seconds` late; until then readers get the previous
    published day's scores, which stay published (retention drops the oldest days, never the newest).
    The clock only paces re-reads; it never decides which data is read.
    """

    def __init__(self, ttl_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._value: dt.date | None = None
        self._read_at: float | None = None

    async def get(self, connection: AsyncConnection) -> dt.date | None:
        """The cached date, re-read from score_runs when older than the TTL."""
        now = self.clock()
        if self._read_at is None or now - self._read_at >= self.ttl_seconds:
            self._value = await newest_published_date(connection)
            self._read_at = now
        return self._value


def score_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A published row as readers get it: the stored reasons with their descriptions (`reasons_source`
    "stored"; None where none were stored), auto_renew as a boolean (SQLite holds 0/1)."""
    item = dict(row)
    reasons = parse_reasons(item["reasons"])
    item["reasons"] = None if reasons is None else [asdict(reason) for reason in reasons]
    item["reasons_source"] = None if reasons is None else "stored"
    if item["auto_renew"] is not None:
        item["auto_renew"] = bool(item["auto_renew"])
    return item


async def latest_score(
    connection: AsyncConnection, msno: str, newest: NewestDate | None = None
) -> dict[str, Any] | None:
    """A user's newest published score: first on the newest published date (bound as a parameter, see
    `NewestDate`), then among the user's older dates (a user not active on the newest date keeps an
    older score). Without a cache the newest date is read here."""
    day = await (newest or NewestDate(ttl_seconds=0.0)).get(connection)
    if day is None:
        return None
    row = (await connection.execute(
        text(f"SELECT {SCORE_FIELDS} FROM churn_scores WHERE msno = :m AND score_date = :d"),
        {"m": msno, "d": day},
    )).mappings().first()  # fmt: skip
    if row is None:
        row = (await connection.execute(
            text(f"SELECT {SCORE_FIELDS} FROM churn_scores WHERE msno = :m ORDER BY score_date DESC LIMIT 1"),
            {"m": msno},
        )).mappings().first()  # fmt: skip
    return score_row(row) if row is not None else None


async def history(connection: AsyncConnection, msno: str) -> list[dict[str, Any]]:
    """A user's published scores, newest date first."""
    rows = await connection.execute(
        text(f"SELECT {SCORE_FIELDS} FROM churn_scores WHERE msno = :m ORDER BY score_date DESC"), {"m": msno}
    )
    return [score_row(r) for r in rows.mappings()]


def encode_cursor(cursor: Cursor) -> str:
    """An opaque cursor after a row: the date and run it pages and the row's sort key."""
    raw = json.dumps(
        [cursor.score_date.isoformat(), cursor.run_id, cursor.key, cursor.msno, cursor.sort]
    ).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _sort_key(value: Any, sort: str) -> float:
    """A cursor's sort key: a finite probability in [0, 1], or a finite revenue >= -1 (a huge integer or
    1e999 is refused here, not by an overflow in the query)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("sort key is not a number")
    key = float(value)
    low, high = (0.0, 1.0) if sort == "probability" else (-1.0, 1e12)
    if not (math.isfinite(key) and low <= key <= high):
        raise ValueError("sort key is out of range")
    return key


def decode_cursor(cursor: str) -> Cursor:
    """Back from `encode_cursor`; anything else (including values no query should see: a NUL byte, a
    number out of range) is a CursorError."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) not in (4, 5):
            raise TypeError("not a list of four or five values")
        day, run_id, key, msno, sort = [*values, "probability"][:5]  # four: a cursor of contract 1
        if sort not in SORTS:
            raise ValueError("not a sort")
        if not (isinstance(run_id, str) and RUN_ID_PATTERN.fullmatch(run_id)):
            raise ValueError("not a run id")
        if not (isinstance(msno, str) and re.fullmatch(MSNO_PATTERN, msno)):
            raise ValueError("not an msno")
        return Cursor(dt.date.fromisoformat(day), run_id, _sort_key(key, sort), msno, sort)
    except (ValueError, TypeError, OverflowError) as error:
        raise CursorError(f"cursor is not one this API issued ({error.__class__.__name__})") from None


def _where(filters: PageFilter, day: dt.date) -> tuple[str, dict[str, Any]]:
    clauses = ["score_date = :d"]
    params: dict[str, Any] = {"d": day}
    if filters.min_probability is not None:
        clauses.append("churn_probability >= :pmin")
        params["pmin"] = filters.min_probability
    if filters.max_probability is not None:
        clauses.append("churn_probability <= :pmax")
        params["pmax"] = filters.max_probability
    if filters.risk_band is not None:
        clauses.append("risk_band = :band")
        params["band"] = filters.risk_band
    for column in ("plan_days", "payment_method", "auto_renew", "city"):
        if getattr(filters, column) is not None:
            clauses.append(f"{column} = :{column}")
            params[column] = getattr(filters, column)
    if filters.min_revenue_at_risk is not None:
        clauses.append("revenue_at_risk >= :rmin")
        params["rmin"] = filters.min_revenue_at_risk
    return " AND ".join(clauses), params


def _after(sort: str, key: float, msno: str) -> tuple[str, dict[str, Any]]:
    """The keyset condition for the rows after (key, msno) in the order `sort`; the redundant `<=` bounds
    the index scan (the OR alone would make the scan start at the top)."""
    column = SORTS[sort]
    return (f" AND {column} <= :ak AND ({column} < :ak OR msno > :am)", {"ak": key, "am": msno})


def _key(row: Any, sort: str) -> float:
    """A row's sort key in the order `sort` (unknown revenue sorts as -1, after every known)."""
    if sort == "probability":
        return float(row["churn_probability"])
    value = row["revenue_at_risk"]
    return -1.0 if value is None else float(value)


async def page(
    connection: AsyncConnection, filters: PageFilter, limit: int, cursor: str | None
) -> tuple[dt.date | None, list[dict[str, Any]], str | None]:
    """One page of a day's scores, highest probability first. -> (date, rows, next cursor or None).

    A first page reads the run published at its statement's snapshot (one statement: no publish can
    come between choosing the run and reading it); later pages read the cursor's run only. A publish
    drops the old run's rows together with its status, so a short page of the cursor's run is checked
    against the published run: if that moved on, the cursor is expired.
    """
    day = filters.score_date
    after: Cursor | None = None
    if cursor is not None:
        after = decode_cursor(cursor)
        if day is not None and after.score_date != day:
            raise CursorError(f"cursor pages {after.score_date}, the request asks for {day}")
        if after.sort != filters.sort:
            raise CursorError(f"cursor pages the {after.sort} order, the request asks for {filters.sort}")
        day = after.score_date
    if day is None:
        day = await newest_published_date(connection)
        if day is None:
            return None, [], None
    where, params = _where(filters, day)
    if after is None:
        where += f" AND run_id = ({PUBLISHED_RUN})"
    else:
        keyset, values = _after(after.sort, after.key, after.msno)
        where += " AND run_id = :run" + keyset
        params.update(run=after.run_id, **values)
    rows = (await connection.execute(
        text(f"SELECT {SCORE_FIELDS} FROM churn_scores WHERE {where} "
             f"ORDER BY {SORTS[filters.sort]} DESC, msno ASC LIMIT :limit"),
        {**params, "limit": limit + 1},
    )).mappings().all()  # fmt: skip
    if after is not None and len(rows) <= limit:
        current = await published_run(connection, day)
        if current != after.run_id:
            now = f"run {current} is published now" if current else "the day is no longer published"
            raise CursorExpiredError(
                f"cursor pages run {after.run_id} of {day}, which was replaced ({now}): start again "
                "without a cursor"
            )
    items = [score_row(r) for r in rows[:limit]]
    if len(rows) <= limit:
        return day, items, None
    last = items[-1]
    return day, items, encode_cursor(Cursor(day, last["run_id"], _key(last, filters.sort), last["msno"],
                                            filters.sort))  # fmt: skip


class ExportInterruptedError(ChurnError):
    """The day was re-published while it was being exported; the export stops rather than mix two runs."""


async def published_run(connection: AsyncConnection, day: dt.date) -> str | None:
    """The run id published for a date (None when the date has no published run)."""
    return await connection.scalar(text(PUBLISHED_RUN), {"d": day})


async def stream_csv(
    engine: AsyncEngine, filters: PageFilter, day: dt.date, batch: int = 10_000
) -> AsyncIterator[bytes]:
    """A day's filtered scores as CSV, in keyset batches of `batch` rows (bounded memory whatever the
    size of the day).

    Each batch is its own autocommit statement: a long download holds no transaction or snapshot, so it
    never blocks the next night's publish (whose partition swap needs a short exclusive lock). Every
    batch is pinned to the run that was published when the export began; if the day is re-published
    mid-export, the stream fails (the client sees a truncated transfer) instead of mixing two runs.
    """
    where, params = _where(filters, day)
    async with engine.connect() as connection:
        run_id = await published_run(connection, day)
    yield (CSV_FIELDS.replace(" ", "") + "\n").encode()
    if run_id is None:
        return
    after: tuple[float, str] | None = None
    while True:
        clause, values = f"{where} AND run_id = :run", {**params, "run": run_id, "limit": batch}
        if after is not None:
            keyset, bounds = _after(filters.sort, *after)
            clause += keyset
            values.update(bounds)
        async with engine.connect() as connection:
            rows = (await connection.execute(
                text(f"SELECT {CSV_FIELDS} FROM churn_scores WHERE {clause} "
                     f"ORDER BY {SORTS[filters.sort]} DESC, msno ASC LIMIT :limit"),
                values,
            )).mappings().all()  # fmt: skip
            if len(rows) < batch and await published_run(connection, day) != run_id:
                raise ExportInterruptedError(f"scores of {day} were re-published during the export")
        if rows:
            yield csv_rows(rows).encode()
        if len(rows) < batch:
            return
        after = (_key(rows[-1], filters.sort), rows[-1]["msno"])


def _csv_value(name: str, value: Any) -> Any:
    """A column's CSV text, the same from PostgreSQL and SQLite: floats in full (repr), auto_renew as
    true/false (SQLite holds 0/1), reasons as compact JSON (PostgreSQL's JSONB text has spaces), NULL
    empty."""
    if value is None:
        return ""
    if name == "auto_renew":
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if name == "reasons":
        items = json.loads(value) if isinstance(value, str) else value
        return json.dumps(items, separators=(",", ":"))
    return value


def csv_rows(rows: Sequence[Mapping[Any, Any]]) -> str:
    """Score rows as CSV lines in `CSV_FIELDS` order (RFC 4180 quoting: the reasons are JSON)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = [name.strip() for name in CSV_FIELDS.split(",")]
    writer.writerows([_csv_value(name, row[name]) for name in names] for row in rows)
    return out.getvalue()
