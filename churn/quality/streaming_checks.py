"""Great Expectations expectations evaluated over Parquet parts in bounded batches, never a whole table.

The suites stay Great Expectations objects (`churn.quality.validation` defines them, with their
severities, and renders the Data Docs from the results). What changes is where the metrics come from:
Great Expectations' pandas engine needs the whole table as one DataFrame (6.4 GB at 19M rows); here each
expectation is reduced to a small mergeable tally per Parquet part:

- row counts, column minimum/maximum and null counts come from the parts' footers (Parquet statistics),
  so a range or null check whose statistics already prove it reads no data at all;
- what the statistics cannot prove is counted by streaming only the columns needed, at most
  `MAX_BATCH_ROWS` rows at a time;
- uniqueness is checked per group (a Silver bucket, a Gold part): all rows of a user live in one bucket,
  parts are sorted by their keys (checked by comparing neighbours, carried across batches), and two parts
  of a bucket are compared only where their key ranges overlap (for user logs: their date ranges).

A part's tallies depend only on the part's bytes and the expectation, so they are kept by the caller
(`churn.quality.validation`) and a part is read once: a nightly run reads what the day's drop added.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churn.errors import ChurnError
from churn.lake import Lake

MAX_BATCH_ROWS = 131_072  # rows in memory at once per read; tests lower it to prove the bound
SAMPLE = 20  # offending values kept per expectation (Great Expectations' partial_unexpected_list)
DISTINCT_CAP = 1_000  # distinct values counted exactly up to here (the suites ask for "at least 2")

ROW_KINDS = {
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_value_lengths_to_equal",
}
UNIQUE_KINDS = {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}
TABLE_KINDS = {
    "expect_table_row_count_to_be_between",
    "expect_column_max_to_be_between",
    "expect_column_unique_value_count_to_be_between",
}
SUPPORTED = ROW_KINDS | UNIQUE_KINDS | TABLE_KINDS


class UnsupportedExpectation(ChurnError):  # noqa: N818 (reads as the problem it names)
    """A suite holds an expectation this evaluator cannot compute in bounded memory."""


def _plain(value: Any) -> Any:
    """A JSON-able form of a statistic or sample value (dates as ISO text)."""
    if isinstance(value, (np.generic,)):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class Check:
    """One expectation in the terms this evaluator needs: its kind, columns and arguments."""

    kind: str
    columns: tuple[str, ...]
    kwargs: dict[str, Any]

    @classmethod
    def of(cls, expectation: Any) -> Check:
        """The check of a Great Expectations expectation object; unsupported kinds are refused."""
        config = expectation.configuration
        if config.type not in SUPPORTED:
            raise UnsupportedExpectation(
                f"{config.type} cannot be evaluated in bounded batches; "
                f"supported: {', '.join(sorted(SUPPORTED))}"
            )
        kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id",)}
        columns = tuple(kwargs.get("column_list") or ([kwargs["column"]] if "column" in kwargs else []))
        return cls(config.type, columns, kwargs)

    @property
    def key(self) -> str:
        """Content hash of the check: a cached tally is reused only for the very same check."""
        text = json.dumps([self.kind, self.kwargs], sort_keys=True, default=_plain)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def mostly(self) -> float:
        """Share of non-missing values that must pass (1.0 unless the expectation says)."""
        return float(self.kwargs.get("mostly", 1.0) or 1.0)


@dataclass
class Tally:
    """A mergeable partial result of a row-level or uniqueness check over some rows."""

    element_count: int = 0
    missing_count: int = 0
    unexpected_count: int = 0
    sample: list[Any] = field(default_factory=list)

    def add_sample(self, values: Sequence[Any]) -> None:
        """Keep up to SAMPLE offending values."""
        room = SAMPLE - len(self.sample)
        if room > 0:
            self.sample.extend(_plain(v) for v in list(values)[:room])

    def merge(self, other: Tally) -> Tally:
        """The tally of both sets of rows."""
        merged = Tally(
            self.element_count + other.element_count,
            self.missing_count + other.missing_count,
            self.unexpected_count + other.unexpected_count,
            list(self.sample),
        )
        merged.add_sample(other.sample)
        return merged

    def to_json(self) -> dict[str, Any]:
        """The tally as stored with a part's cached results."""
        return {"element_count": self.element_count, "missing_count": self.missing_count,
                "unexpected_count": self.unexpected_count, "sample": self.sample}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        """A tally read back from the cache."""
        return cls(
            data["element_count"], data["missing_count"], data["unexpected_count"], list(data["sample"])
        )


# -- part footers --------------------------------------------------------------------------------------
@dataclass
class ColumnStats:
    """Footer statistics of one column over all row groups of a part (None where a group has none)."""

    minimum: Any = None
    maximum: Any = None
    nulls: int | None = 0


@dataclass
class Part:
    """One Parquet part: where it is, its identity (size and stamp), rows and per-column statistics."""

    path: str
    identity: str
    rows: int
    stats: dict[str, ColumnStats]
    schema: pa.Schema


def read_part(lake: Lake, path: str, identity: str) -> Part:
    """The footer of a part (row count, statistics, schema): no data is read."""
    with lake.open(path) as handle:
        parquet = pq.ParquetFile(handle)
        metadata, schema = parquet.metadata, parquet.schema_arrow
    stats: dict[str, ColumnStats] = {}
    for index, name in enumerate(schema.names):
        column = ColumnStats()
        for group in range(metadata.num_row_groups):
            chunk = metadata.row_group(group).column(index)
            if metadata.row_group(group).num_rows == 0:
                continue
            value = chunk.statistics
            if value is None or not value.has_min_max:
                column = ColumnStats(None, None, None)
                break
            column.minimum = value.min if column.minimum is None else min(column.minimum, value.min)
            column.maximum = value.max if column.maximum is None else max(column.maximum, value.max)
            if column.nulls is not None:
                column.nulls = column.nulls + value.null_count if value.has_null_count else None
        stats[name] = column
    return Part(path, identity, metadata.num_rows, stats, schema)


def batches(lake: Lake, path: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The part's columns, MAX_BATCH_ROWS rows at a time."""
    with lake.open(path) as handle:
        yield from pq.ParquetFile(handle).iter_batches(batch_size=MAX_BATCH_ROWS, columns=columns)


# -- row-level checks ----------------------------------------------------------------------------------
def _scalar(value: Any, kind: pa.DataType) -> pa.Scalar:
    if pa.types.is_date(kind) and isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    elif pa.types.is_date(kind) and hasattr(value, "date"):
        value = value.date()
    return pa.scalar(value, kind)


def _bounds(check: Check, kind: pa.DataType) -> tuple[Any, Any]:
    low, high = check.kwargs.get("min_value"), check.kwargs.get("max_value")
    return (
        None if low is None else _scalar(low, kind).as_py(),
        None if high is None else _scalar(high, kind).as_py(),
    )


def proven_by_stats(check: Check, part: Part) -> Tally | None:
    """The tally of a row-level check when the part's statistics decide it (no offending row), else None."""
    column = part.stats.get(check.columns[0]) if check.columns else None
    if column is None or column.nulls is None or check.kind == "expect_column_value_lengths_to_equal":
        return None
    nonnull = part.rows - column.nulls
    if check.kind == "expect_column_values_to_not_be_null":
        return Tally(part.rows, 0, 0) if column.nulls == 0 else None
    if nonnull == 0:
        return Tally(part.rows, column.nulls, 0)
    kind = part.schema.field(check.columns[0]).type
    if check.kind == "expect_column_values_to_be_between":
        low, high = _bounds(check, kind)
        if (low is None or column.minimum >= low) and (high is None or column.maximum <= high):
            return Tally(part.rows, column.nulls, 0)
        return None
    allowed = set(check.kwargs["value_set"])
    if pa.types.is_integer(kind) and column.maximum - column.minimum < 64:
        if all(v in allowed for v in range(column.minimum, column.maximum + 1)):
            return Tally(part.rows, column.nulls, 0)
    elif column.minimum == column.maximum and column.minimum in allowed:
        return Tally(part.rows, column.nulls, 0)
    return None


def _unexpected(check: Check, values: pa.Array) -> pa.Array:
    """A boolean mask of the offending non-missing values of a batch's column."""
    if check.kind == "expect_column_values_to_be_between":
        low, high = _bounds(check, values.type)
        mask = pa.array(np.zeros(len(values), bool))
        if low is not None:
            mask = pc.or_(mask, pc.less(values, pa.scalar(low, values.type)))
        if high is not None:
            mask = pc.or_(mask, pc.greater(values, pa.scalar(high, values.type)))
        return mask
    if check.kind == "expect_column_values_to_be_in_set":
        return pc.invert(pc.is_in(values, value_set=pa.array(check.kwargs["value_set"]).cast(values.type)))
    return pc.not_equal(pc.utf8_length(values), pa.scalar(int(check.kwargs["value"]), pa.int32()))


def tally_batch(check: Check, batch: pa.RecordBatch) -> Tally:
    """The tally of a row-level check over one batch."""
    values = batch.column(check.columns[0])
    nulls = values.null_count
    if check.kind == "expect_column_values_to_not_be_null":
        tally = Tally(len(values), 0, nulls)
        tally.add_sample([None] * min(nulls, SAMPLE))
        return tally
    tally = Tally(len(values), nulls, 0)
    if nulls == len(values):
        return tally
    mask = pc.and_(pc.fill_null(_unexpected(check, values), False), pc.is_valid(values))
    tally.unexpected_count = int(pc.sum(mask).as_py() or 0)
    if tally.unexpected_count:
        tally.add_sample(values.filter(mask).slice(0, SAMPLE).to_pylist())
    return tally


# -- uniqueness ---------------------------------------------------------------------------------------
def _columns(batch: pa.RecordBatch | pa.Table, columns: tuple[str, ...]) -> list[np.ndarray] | None:
    """The key columns of integer or date type as int64 arrays (None when a key column is text)."""
    arrays = []
    for name in columns:
        values = batch.column(name)
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            return None
        if pa.types.is_date(values.type):
            values = pc.cast(values, pa.int32())
        arrays.append(np.asarray(pc.cast(values, pa.int64()).to_numpy(zero_copy_only=False)))
    return arrays


def _repeated(table: pa.Table, columns: tuple[str, ...]) -> tuple[int, list[Any]]:
    """(rows whose key occurs more than once, a sample of those keys) of a table of key columns."""
    counts = table.select(list(columns)).group_by(list(columns)).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    total = int(pc.sum(repeated["count_all"]).as_py() or 0) if repeated.num_rows else 0
    sample = repeated.select(list(columns)).slice(0, SAMPLE).to_pylist()
    return total, [row[columns[0]] if len(columns) == 1 else _plain_row(row) for row in sample]


def _sample_key(arrays: list[np.ndarray], index: int, columns: tuple[str, ...], schema: pa.Schema) -> Any:
    values = []
    for name, array in zip(columns, arrays, strict=True):
        value: Any = int(array[index])
        if pa.types.is_date(schema.field(name).type):
            value = (dt.date(1970, 1, 1) + dt.timedelta(days=value)).isoformat()
        values.append(value)
    return values[0] if len(columns) == 1 else dict(zip(columns, values, strict=True))


def unique_within_part(lake: Lake, check: Check, part: Part) -> Tally:
    """Duplicate keys inside one part, streaming: parts are sorted by their keys, so a duplicate is a
    neighbour (the last key of a batch is carried into the next). A part found unsorted, or keyed by
    text (Gold's msno), is checked by grouping its key columns instead (bounded by the part: one bucket).
    """
    tally = Tally(part.rows)
    previous: list[np.ndarray] | None = None
    equal_before = False  # whether the last step of the previous batch joined two equal keys
    for batch in batches(lake, part.path, list(check.columns)):
        arrays = _columns(batch, check.columns)
        if arrays is None:
            return _unique_by_grouping(lake, check, part)
        if not len(arrays[0]):
            continue
        joined = (
            arrays
            if previous is None
            else [np.concatenate([p, a]) for p, a in zip(previous, arrays, strict=True)]
        )
        equal = np.ones(len(joined[0]) - 1, bool)
        before = np.zeros(len(joined[0]) - 1, bool)  # lexicographically decreasing: not sorted
        for array in joined:
            step = np.diff(array)
            before |= equal & (step < 0)
            equal &= step == 0
        if before.any():
            return _unique_by_grouping(lake, check, part)
        # a run of k equal keys is k-1 equal steps; it starts where an equal step follows an unequal one
        starts = equal & ~np.concatenate([[equal_before], equal[:-1]])
        tally.unexpected_count += int(equal.sum() + starts.sum())
        tally.add_sample([_sample_key(joined, i + 1, check.columns, part.schema)
                          for i in np.flatnonzero(starts)[:SAMPLE]])  # fmt: skip
        equal_before = bool(equal[-1]) if len(equal) else equal_before
        previous = [a[-1:] for a in arrays]
    return tally


def _keys_of(lake: Lake, part: Part, columns: tuple[str, ...]) -> pa.Table:
    """A part's key columns, read in batches (bounded by the part: one bucket)."""
    schema = pa.schema([part.schema.field(c) for c in columns])
    return pa.Table.from_batches(list(batches(lake, part.path, list(columns))), schema)


def _unique_by_grouping(lake: Lake, check: Check, part: Part) -> Tally:
    keys = _keys_of(lake, part, check.columns)
    count, sample = _repeated(keys, check.columns)
    tally = Tally(part.rows, 0, count)
    tally.add_sample(sample)
    return tally


def _box(part: Part, columns: tuple[str, ...]) -> list[tuple[Any, Any]] | None:
    spans = []
    for column in columns:
        stats = part.stats.get(column)
        if stats is None or stats.minimum is None:
            return None
        spans.append((stats.minimum, stats.maximum))
    return spans


def unique_across_parts(lake: Lake, check: Check, parts: Sequence[Part]) -> Tally:
    """Duplicate keys between the parts of one group (a Silver bucket).

    Two parts can share a key only where their statistics' key ranges overlap in every column; only the
    rows inside that overlap are read (for user logs: the days both parts cover, usually none). A
    single-column key (members' user_id) always overlaps, so it reads that column of the group's parts.
    """
    tally = Tally()
    pairs = [(a, b) for i, a in enumerate(parts) for b in parts[i + 1 :] if a.rows and b.rows]
    if not pairs:
        return tally
    if len(check.columns) == 1:  # one key column always overlaps: compare the group's distinct keys
        distinct = [_keys_of(lake, p, check.columns).group_by(list(check.columns)).aggregate([])
                    for p in parts if p.rows]  # fmt: skip
        count, sample = _repeated(pa.concat_tables(distinct), check.columns)
        tally.unexpected_count = count
        tally.add_sample(sample)
        return tally
    for a, b in pairs:
        box_a, box_b = _box(a, check.columns), _box(b, check.columns)
        if box_a is None or box_b is None:
            overlap = None
        else:
            overlap = [(max(x[0], y[0]), min(x[1], y[1])) for x, y in zip(box_a, box_b, strict=True)]
            if any(low > high for low, high in overlap):
                continue
        conditions = (
            []
            if overlap is None
            else [c for col, (low, high) in zip(check.columns, overlap, strict=True)
                  for c in ((col, ">=", low), (col, "<=", high))]
        )  # fmt: skip
        left = lake.read_parquet_where(a.path, conditions, list(check.columns))
        right = lake.read_parquet_where(b.path, conditions, list(check.columns))
        inner = left.group_by(list(check.columns)).aggregate([([], "count_all")]).join(
            right.group_by(list(check.columns)).aggregate([([], "count_all")]), list(check.columns),
            join_type="inner", right_suffix="_right",
        )  # fmt: skip
        if inner.num_rows:
            tally.unexpected_count += int(
                pc.sum(inner["count_all"]).as_py() + pc.sum(inner["count_all_right"]).as_py()
            )
            rows = inner.select(list(check.columns)).slice(0, SAMPLE).to_pylist()
            tally.add_sample([_plain_row(r) for r in rows])
    return tally


def _plain_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in row.items()}


# -- distinct values -----------------------------------------------------------------------------------
@dataclass
class Distinct:
    """Distinct non-missing values of a column, counted exactly up to DISTINCT_CAP."""

    values: set[Any] = field(default_factory=set)

    def update(self, column: pa.Array) -> None:
        """Add a batch's values (stops collecting once the cap is reached)."""
        if len(self.values) >= DISTINCT_CAP:
            return
        unique = pc.unique(column.drop_null())
        self.values.update(unique.slice(0, DISTINCT_CAP).to_pylist())

    @property
    def count(self) -> int:
        """The distinct count, capped."""
        return min(len(self.values), DISTINCT_CAP)


# -- a suite over a table's parts ------------------------------------------------------------------------
@dataclass
class Outcome:
    """One expectation's verdict and its result in Great Expectations' result format."""

    expectation: Any
    success: bool
    result: dict[str, Any]


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _row_result(check: Check, tally: Tally) -> Outcome:
    nonmissing = tally.element_count - tally.missing_count
    if check.kind == "expect_column_values_to_not_be_null":
        failing = tally.unexpected_count / tally.element_count if tally.element_count else 0.0
    else:
        failing = tally.unexpected_count / nonmissing if nonmissing else 0.0
    result = {
        "element_count": tally.element_count, "missing_count": tally.missing_count,
        "missing_percent": _percent(tally.missing_count, tally.element_count),
        "unexpected_count": tally.unexpected_count,
        "unexpected_percent": _percent(tally.unexpected_count, tally.element_count),
        "unexpected_percent_nonmissing": _percent(tally.unexpected_count, nonmissing),
        "partial_unexpected_list": tally.sample,
    }  # fmt: skip
    return Outcome(None, failing <= 1.0 - check.mostly + 1e-12, result)


def _between(check: Check, observed: Any, kind: pa.DataType | None = None) -> bool:
    if observed is None:
        return False
    low, high = (
        _bounds(check, kind)
        if kind is not None
        else (check.kwargs.get("min_value"), check.kwargs.get("max_value"))
    )
    return (low is None or observed >= low) and (high is None or observed <= high)


@dataclass
class TableParts:
    """The parts of one table by group: a Silver bucket (all rows of a user), or a Gold part."""

    groups: dict[str, list[Part]]

    @property
    def parts(self) -> list[Part]:
        """Every part, group by group."""
        return [p for group in self.groups.values() for p in group]


def group_key(group: str, members: Sequence[Part]) -> str:
    """The cache key of a group's cross-part results: the group and the identities of its parts, so a
    part added, replaced or removed gives a new key."""
    identity = hashlib.sha256("|".join(sorted(p.identity for p in members)).encode()).hexdigest()[:24]
    return f"group:{group}:{identity}"


def evaluate(
    lake: Lake,
    expectations: Sequence[Any],
    table: TableParts,
    cache: dict[str, dict[str, Any]],
    on_part: Callable[[Part], None] | None = None,
) -> list[Outcome]:
    """Every expectation of a suite over a table's parts, in bounded memory.

    `cache` maps a part's (or a group's) identity to the tallies already computed for it; it is read and
    extended here, so the caller can keep it for the next run (parts never change under one identity).
    `on_part` is told of each part once its tallies are done (progress).
    """
    checks = [(e, Check.of(e)) for e in expectations]
    parts = table.parts
    row_checks = [c for _, c in checks if c.kind in ROW_KINDS]
    totals: dict[str, Tally] = {c.key: Tally() for _, c in checks if c.kind in ROW_KINDS | UNIQUE_KINDS}
    distinct = {
        c.key: Distinct() for _, c in checks if c.kind == "expect_column_unique_value_count_to_be_between"
    }
    maxima: dict[str, Any] = {}
    for part in parts:
        cached = cache.setdefault(part.identity, {})
        pending: list[Check] = []
        for check in row_checks:
            if check.key in cached:
                tally = Tally.from_json(cached[check.key])
            else:
                proven = proven_by_stats(check, part)
                if proven is None:
                    pending.append(check)
                    continue
                tally = proven
                cached[check.key] = tally.to_json()
            totals[check.key] = totals[check.key].merge(tally)
        wanted = sorted(
            {c.columns[0] for c in pending} | {c.columns[0] for _, c in checks if c.key in distinct}
        )
        if wanted:
            partial = {c.key: Tally() for c in pending}
            for batch in batches(lake, part.path, wanted):
                for check in pending:
                    partial[check.key] = partial[check.key].merge(tally_batch(check, batch))
                for _, check in checks:
                    if check.key in distinct:
                        distinct[check.key].update(batch.column(check.columns[0]))
            for check in pending:
                cached[check.key] = partial[check.key].to_json()
                totals[check.key] = totals[check.key].merge(partial[check.key])
        for _, check in checks:
            if check.kind in UNIQUE_KINDS:
                if check.key not in cached:
                    cached[check.key] = unique_within_part(lake, check, part).to_json()
                totals[check.key] = totals[check.key].merge(Tally.from_json(cached[check.key]))
            if check.kind == "expect_column_max_to_be_between":
                stats = part.stats.get(check.columns[0])
                if part.rows and stats is not None and stats.maximum is not None:
                    current = maxima.get(check.key)
                    maxima[check.key] = stats.maximum if current is None else max(current, stats.maximum)
        if on_part is not None:
            on_part(part)
    for group, members in table.groups.items():
        if len(members) < 2:
            continue
        cached = cache.setdefault(group_key(group, members), {})
        for _, check in checks:
            if check.kind in UNIQUE_KINDS:
                if check.key not in cached:
                    # a group not seen with exactly these parts: every pair is compared (statistics first)
                    cached[check.key] = unique_across_parts(lake, check, members).to_json()
                across = Tally.from_json(cached[check.key])
                totals[check.key] = totals[check.key].merge(
                    Tally(0, 0, across.unexpected_count, across.sample)
                )
    rows = sum(p.rows for p in parts)
    outcomes = []
    for expectation, check in checks:
        if check.kind in ROW_KINDS:
            outcome = _row_result(check, totals[check.key])
        elif check.kind in UNIQUE_KINDS:
            tally = totals[check.key]
            tally.element_count = rows
            outcome = _row_result(check, tally)
        elif check.kind == "expect_table_row_count_to_be_between":
            outcome = Outcome(None, _between(check, rows), {"observed_value": rows})
        elif check.kind == "expect_column_max_to_be_between":
            observed = maxima.get(check.key)
            kind = parts[0].schema.field(check.columns[0]).type if parts else None
            outcome = Outcome(None, _between(check, observed, kind), {"observed_value": _plain(observed)})
        else:
            count = distinct[check.key].count
            outcome = Outcome(None, _between(check, count), {"observed_value": count})
        outcome.expectation = expectation
        outcomes.append(outcome)
    return outcomes
