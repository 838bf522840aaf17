"""Read queries over the published scores: one user, a filtered page, a user's history, a whole day.

Every query binds its values as parameters; the only SQL text assembled here is the choice among fixed
filter fragments. Pages are keyset-paginated on (probability desc, msno asc): a page costs the same at
the millionth row as at the first, and a publish between two pages cannot repeat or skip a row of the
same day.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from churn.errors import ChurnError

SCORE_FIELDS = "msno, score_date, churn_probability, risk_band, model_version, run_id"
CSV_FIELDS = "score_date, msno, churn_probability, risk_band, model_version, run_id"


class CursorError(ChurnError, ValueError):
    """A pagination cursor that this API did not issue (or for another query)."""


@dataclass(frozen=True)
class PageFilter:
    """The filters of GET /scores; `score_date` None means the newest published date."""

    score_date: dt.date | None = None
    min_probability: float | None = None
    max_probability: float | None = None
    risk_band: str | None = None


async def newest_published_date(connection: AsyncConnection) -> dt.date | None:
    """The newest date with a published run (the date readers get by default)."""
    value = await connection.scalar(text("SELECT max(score_date) FROM score_runs WHERE status = 'published'"))
    return None if value is None else dt.date.fromisoformat(str(value))


async def latest_score(connection: AsyncConnection, msno: str) -> dict[str, Any] | None:
    """A user's newest published score: first on the newest published date (one round trip; PostgreSQL
    prunes to that date's partition at run time and probes one index), then among the user's older
    dates (a user not active on the newest date keeps an older score)."""
    row = (await connection.execute(
        text(f"SELECT {SCORE_FIELDS} FROM churn_scores WHERE msno = :m AND score_date = "
             "(SELECT max(score_date) FROM score_runs WHERE status = 'published')"),
        {"m": msno},
    )).mappings().first()  # fmt: skip
    if row is None:
        row = (await connection.execute(
            text(f"SELECT {SCORE_FIELDS} FROM churn_scores WHERE msno = :m ORDER BY score_date DESC LIMIT 1"),
            {"m": msno},
        )).mappings().first()  # fmt: skip
    return dict(row) if row is not None else None


async def history(connection: AsyncConnection, msno: str) -> list[dict[str, Any]]:
    """A user's published scores, newest date first."""
    rows = await connection.execute(
        text(f"SELECT {SCORE_FIELDS} FROM churn_scores WHERE msno = :m ORDER BY score_date DESC"), {"m": msno}
    )
    return [dict(r) for r in rows.mappings()]


def encode_cursor(score_date: dt.date, probability: float, msno: str) -> str:
    """An opaque cursor after a row: the date it pages and the row's sort key."""
    raw = json.dumps([score_date.isoformat(), probability, msno]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.date, float, str]:
    """Back from `encode_cursor`; anything else is a CursorError."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        day, probability, msno = json.loads(raw)
        return dt.date.fromisoformat(day), float(probability), str(msno)
    except (ValueError, TypeError) as error:
        raise CursorError(f"cursor is not one this API issued ({error.__class__.__name__})") from None


def _where(filters: PageFilter, day: dt.date) -> tuple[str, dict[str, Any]]:
    clauses, params = ["score_date = :d"], {"d": day}
    if filters.min_probability is not None:
        clauses.append("churn_probability >= :pmin")
        params["pmin"] = filters.min_probability
    if filters.max_probability is not None:
        clauses.append("churn_probability <= :pmax")
        params["pmax"] = filters.max_probability
    if filters.risk_band is not None:
        clauses.append("risk_band = :band")
        params["band"] = filters.risk_band
    return " AND ".join(clauses), params


async def page(
    connection: AsyncConnection, filters: PageFilter, limit: int, cursor: str | None
) -> tuple[dt.date | None, list[dict[str, Any]], str | None]:
    """One page of a day's scores, highest probability first. -> (date, rows, next cursor or None)."""
    day = filters.score_date
    after: tuple[float, str] | None = None
    if cursor is not None:
        cursor_day, probability, msno = decode_cursor(cursor)
        if day is not None and cursor_day != day:
            raise CursorError(f"cursor pages {cursor_day}, the request asks for {day}")
        day, after = cursor_day, (probability, msno)
    if day is None:
        day = await newest_published_date(connection)
        if day is None:
            return None, [], None
    where, params = _where(filters, day)
    if after is not None:
        # the redundant `<=` bounds the index scan; the OR alone would make the scan start at the top
        where += " AND churn_probability <= :ap AND (churn_probability < :ap OR msno > :am)"
        params.update(ap=after[0], am=after[1])
    rows = (await connection.execute(
        text(f"SELECT {SCORE_FIELDS} FROM churn_scores WHERE {where} "
             "ORDER BY churn_probability DESC, msno ASC LIMIT :limit"),
        {**params, "limit": limit + 1},
    )).mappings().all()  # fmt: skip
    items = [dict(r) for r in rows[:limit]]
    more = len(rows) > limit
    next_cursor = encode_cursor(day, items[-1]["churn_probability"], items[-1]["msno"]) if more else None
    return day, items, next_cursor


class ExportInterruptedError(ChurnError):
    """The day was re-published while it was being exported; the export stops rather than mix two runs."""


async def published_run(connection: AsyncConnection, day: dt.date) -> str | None:
    """The run id published for a date (None when the date has no published run)."""
    return await connection.scalar(
        text("SELECT run_id FROM score_runs WHERE score_date = :d AND status = 'published'"), {"d": day}
    )


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
            clause += " AND churn_probability <= :ap AND (churn_probability < :ap OR msno > :am)"
            values.update(ap=after[0], am=after[1])
        async with engine.connect() as connection:
            rows = (await connection.execute(
                text(f"SELECT {CSV_FIELDS} FROM churn_scores WHERE {clause} "
                     "ORDER BY churn_probability DESC, msno ASC LIMIT :limit"),
                values,
            )).all()  # fmt: skip
            if len(rows) < batch and await published_run(connection, day) != run_id:
                raise ExportInterruptedError(f"scores of {day} were re-published during the export")
        if rows:
            yield "".join(
                f"{r.score_date},{r.msno},{r.churn_probability!r},{r.risk_band},{r.model_version},{r.run_id}\n"
                for r in rows
            ).encode()
        if len(rows) < batch:
            return
        after = (rows[-1].churn_probability, rows[-1].msno)
