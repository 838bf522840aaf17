"""Silver's read side: where its parts are, how it is laid out, what state and dates it holds, and the
rules its tables keep (sorted by user and date, no exact copies).

Everything that reads Silver (Gold builds, validation, training's history check, scoring's date check,
the live path) reads it through here, so no reader imports the writer (`churn.data.ingest`) or the batch
stack: the API serves a live prediction from this module, the feature code and one bucket's rows.

Layout: `silver/<table>/bucket=NNN/part-<source>.parquet`; all rows of a user live in one bucket
(`user_id % buckets`, fixed in `_layout.json` when Silver is first written), sorted by user and date.
`_state.json` records every ingested source (size, stamp, checksum): its hash is the data version.

A part's name says when its rows were delivered: `part-dump-*` holds the history dump, the only history
there is, so its rows count as known from the start; `part-dt-YYYY-MM-DD*` holds a daily drop, whose rows
are known from that day. Features as of D read only the parts delivered by D (`delivered_by`), so a row
delivered later (a member's new city, a late transaction) never changes what was known on D.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn.data import kkbox
from churn.data.userkey import bucket_of, user_id_of
from churn.errors import ChurnError
from churn.lake import Lake

STATE = "silver/_state.json"
LAYOUT = "silver/_layout.json"


def sort_and_deduplicate(table: pa.Table, spec: kkbox.Table) -> tuple[pa.Table, int]:
    """Sort by user and event date (then the other columns); drop rows identical to another.

    Most (user, date) keys hold one row (one log row per user-day), so only rows sharing their key with
    another are sorted by every column and compared; the rest need no more than the key sort.
    """
    keys = ["user_id", *([spec.date_column] if spec.date_column else [])]
    table = table.sort_by([(k, "ascending") for k in keys])
    if table.num_rows < 2:
        return table, 0
    shared = np.ones(table.num_rows - 1, dtype=bool)
    for name in keys:
        values = table[name].to_numpy() if name == "user_id" else pc.cast(table[name], pa.int32()).to_numpy()
        shared &= values[1:] == values[:-1]
    if not shared.any():
        return table, 0
    in_group = np.zeros(table.num_rows, dtype=bool)
    in_group[1:] |= shared
    in_group[:-1] |= shared
    groups = table.filter(pa.array(in_group))
    columns = keys + [c for c in groups.column_names if c not in keys]
    groups = groups.sort_by([(c, "ascending") for c in columns])
    same = np.ones(groups.num_rows - 1, dtype=bool)
    for name in columns:
        column = groups[name]
        if column.null_count:
            column = pc.fill_null(column, "" if pa.types.is_string(column.type) else 0)
        values = column.to_numpy(zero_copy_only=False)
        same &= values[1:] == values[:-1]
    unique_groups = groups.filter(pa.array(np.concatenate([[True], ~same])))
    merged = pa.concat_tables([table.filter(pa.array(~in_group)), unique_groups])
    return merged.sort_by([(k, "ascending") for k in keys]), int(same.sum())


_DROP_PART = re.compile(r"/part-dt-(\d{4}-\d{2}-\d{2})[^/]*\.parquet$")


def delivered_on(path: str) -> dt.date | None:
    """The day a Silver part's rows were delivered: its daily drop's date, None for the history dump."""
    match = _DROP_PART.search(path)
    return dt.date.fromisoformat(match.group(1)) if match else None


def silver_parts(
    lake: Lake, table: str, bucket: int | None = None, delivered_by: dt.date | None = None
) -> list[str]:
    """The Silver part files of a table (of one bucket when given), oldest delivery first; with
    `delivered_by`, only the parts delivered on or before that day (the dump always)."""
    pattern = f"silver/{table}/bucket={'*' if bucket is None else f'{bucket:03d}'}/*.parquet"
    parts = lake.glob(pattern)
    if delivered_by is not None:
        parts = [path for path in parts if (day := delivered_on(path)) is None or day <= delivered_by]
    # The history dump first, then the daily drops by date, so "the last row of a user" is the newest.
    return sorted(parts, key=lambda path: ("/part-dump-" not in path, path))


def silver_tables(lake: Lake) -> list[str]:
    """The tables Silver holds rows of; the others were never delivered, so their features are missing."""
    return [table for table in kkbox.TABLES if lake.exists(f"silver/{table}")]  # one cheap look each


def read_silver(
    lake: Lake,
    table: str,
    bucket: int | None = None,
    columns: list[str] | None = None,
    filters: Sequence[tuple[str, str, object]] | None = None,
    delivered_by: dt.date | None = None,
) -> pa.Table:
    """Read a Silver table (or one bucket) with its Silver schema; `users` gives user_id -> msno.
    `delivered_by` reads only what had been delivered by that day (see `delivered_on`).

    `filters` (conditions like ("user_id", "=", k) or ("date", "<=", d), all must hold) skip row groups
    by their statistics: parts are sorted by user and date, so one user's rows cost a row group or two.
    Empty (with the schema) when nothing is ingested yet.
    """
    full = kkbox.USERS if table == "users" else kkbox.TABLES[table].schema
    schema = full if columns is None else pa.schema([full.field(c) for c in columns])
    parts = silver_parts(lake, table, bucket, delivered_by)
    if not parts:
        return schema.empty_table()
    if filters:
        tables = [lake.read_parquet_where(p, filters, columns) for p in parts]
    else:
        tables = [lake.read_parquet(p, columns=columns) for p in parts]
    result = pa.concat_tables([t.cast(schema) for t in tables])
    if table == "users":  # a user appears once per source that mentions them
        result = result.group_by(schema.names).aggregate([]).sort_by("user_id").cast(schema)
    return result


def bucket_count(lake: Lake) -> int:
    """How many buckets Silver is laid out in (fixed when Silver was first written)."""
    if not lake.exists(LAYOUT):
        raise ChurnError(f"no Silver under {lake.uri('silver')}: run `churn ingest` first")
    return int(lake.read_json(LAYOUT)["buckets"])


def user_bucket(lake: Lake, msno: str) -> tuple[int, int]:
    """(user key, Silver bucket) of one msno: where its rows are, in Silver and in every per-bucket Gold
    part. ValueError for a malformed msno."""
    user_id = user_id_of(msno)
    return user_id, int(bucket_of(np.array([user_id]), bucket_count(lake))[0])


def silver_version(lake: Lake) -> str:
    """A short hash of the Silver state (which sources, which checksums): the data version read."""
    state = lake.read_json(STATE) if lake.exists(STATE) else {}
    digest = {path: entry["checksum"] for path, entry in sorted(state.items())}
    return hashlib.sha256(json.dumps(digest, sort_keys=True).encode()).hexdigest()[:16]


class SilverRangeError(ChurnError):
    """A date outside what Silver holds: after its newest day, or before any of its data."""


def _silver_date_bounds(lake: Lake, table: str) -> tuple[dt.date | None, dt.date | None]:
    """The earliest and latest event dates of a Silver table, from the Parquet statistics of its parts."""
    import pyarrow.parquet as pq

    spec = kkbox.TABLES[table]
    first = last = None
    for part in lake.glob(f"silver/{table}/bucket=*/*.parquet"):
        with lake.open(part) as handle:
            metadata = pq.ParquetFile(handle).metadata
        column = spec.schema.get_field_index(spec.date_column)
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(column).statistics
            if stats is not None and stats.has_min_max:
                first = stats.min if first is None else min(first, stats.min)
                last = stats.max if last is None else max(last, stats.max)
    return first, last


def silver_first_day(lake: Lake, table: str = "transactions") -> dt.date | None:
    """The earliest event date of a Silver table, from the Parquet statistics of its parts."""
    return _silver_date_bounds(lake, table)[0]


def silver_last_day(lake: Lake, table: str = "transactions") -> dt.date | None:
    """The latest event date of a Silver table, from the Parquet statistics of its parts."""
    return _silver_date_bounds(lake, table)[1]


def silver_days_per_month(lake: Lake, table: str) -> dict[str, int]:
    """How many distinct days of each month ("YYYY-MM") a Silver table holds rows on.

    Coverage, not the earliest date: one stray early row must not pass for a history. A cheap aggregate:
    only the date column of each part is read, one part at a time (parts are sorted by user, so the
    row-group statistics span every date and cannot answer this)."""
    column = kkbox.TABLES[table].date_column
    assert column is not None  # every Silver table has an event date column
    days = np.zeros(0, dtype=np.int64)
    for part in silver_parts(lake, table):
        dates = lake.read_parquet(part, columns=[column])[column]
        days = np.union1d(days, pc.unique(dates.cast(pa.int32())).to_numpy().astype(np.int64))
    months, counts = np.unique(kkbox.to_yyyymmdd(days) // 100, return_counts=True)
    return {f"{m // 100:04d}-{m % 100:02d}": int(n) for m, n in zip(months, counts, strict=True)}


def _silver_span(lake: Lake) -> tuple[dt.date | None, dt.date | None]:
    """(first transaction date, newest log or transaction date) of Silver; None where it has no rows."""
    first, last = _silver_date_bounds(lake, "transactions")
    days = [day for day in (last, silver_last_day(lake, "user_logs")) if day is not None]
    return first, max(days) if days else None


def silver_newest_day(lake: Lake) -> dt.date | None:
    """Silver's newest day: the latest user log or transaction date ingested (None when Silver is empty).
    Nothing is known about later dates, so nothing is computed or published for them."""
    return _silver_span(lake)[1]


def require_silver_covers(lake: Lake, day: dt.date, what: str) -> None:
    """Refuse a date (`what` names it: "score date", "features as of", ...) that Silver cannot answer:
    after its newest day (long or corrupt expiries would make users look active far ahead, and retention
    would drop real dates), or before its first transaction (no user has features then)."""
    first, newest = _silver_span(lake)
    if newest is None:
        raise SilverRangeError(f"no Silver data under {lake.uri('silver')}: run `churn ingest` first")
    if day > newest:
        raise SilverRangeError(
            f"{what} {day} is after Silver's newest day {newest} (the latest log or transaction ingested): "
            "ingest the data up to that date first"
        )
    if first is None or day < first:
        raise SilverRangeError(
            f"no Silver data on or before {day} ({what}): the first transaction is {first}, so no user "
            "has features then"
        )
