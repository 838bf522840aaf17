"""Read a KKBox CSV in independent byte blocks, typing every row or quarantining it with its reason.

A file is cut into blocks of about `block_bytes`; a block owns the lines that start inside it, so blocks
can be parsed in parallel (Dask tasks) and never hold more than one block in memory. Each block reports how
many lines it holds, so the caller can turn block-relative line numbers of bad rows into file lines
without a second pass over the file.

Most blocks are clean: they are parsed straight into typed columns. A block where a value does not parse
is parsed again as text, and the offending rows are found and set aside; the rest are kept.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from typing import IO

import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from churn.data.contracts import row_schema
from churn.data.kkbox import USERS, Table, to_yyyymmdd
from churn.data.userkey import decode_msno

NEWLINE_SEARCH = 1 << 20  # how far past a block's end a line may run before we read more
QUARANTINE_SCHEMA = pa.schema(
    [("line", pa.int64()), ("field", pa.string()), ("reason", pa.string()), ("row", pa.string())]
)


class BlockError(ValueError):
    """A block cannot be split into rows line by line; the caller names the file and byte range."""


@dataclass(frozen=True)
class Block:
    """Byte range [start, end) of a file, nominal: the owned lines are found when it is read."""

    index: int
    start: int
    end: int


@dataclass
class ParsedBlock:
    """A block's typed good rows (keyed by user_id), its users (user_id, msno), its quarantined rows
    (block-relative lines) and its line count."""

    good: pa.Table
    users: pa.Table
    bad: pa.Table
    lines: int


def plan_blocks(size: int, header_bytes: int, block_bytes: int) -> list[Block]:
    """Nominal blocks covering the data after the header line."""
    blocks, start, index = [], header_bytes, 0
    while start < size:
        end = min(start + block_bytes, size)
        blocks.append(Block(index, start, end))
        start, index = end, index + 1
    return blocks


def _next_line_start(handle: IO[bytes], position: int, size: int) -> int:
    """Offset of the first line that starts at or after `position` (size when none)."""
    if position <= 0:
        return 0
    handle.seek(position - 1)
    scanned = position - 1
    while scanned < size:
        chunk = handle.read(NEWLINE_SEARCH)
        if not chunk:
            break
        cut = chunk.find(b"\n")
        if cut >= 0:
            return scanned + cut + 1
        scanned += len(chunk)
    return size


def read_block_bytes(handle: IO[bytes], block: Block, size: int) -> bytes:
    """The complete lines that start in [block.start, block.end) of an open binary file (one read)."""
    first = block.start if block.index == 0 else _next_line_start(handle, block.start, size)
    last = size if block.end >= size else _next_line_start(handle, block.end, size)
    if first >= last:
        return b""
    handle.seek(first)
    return handle.read(last - first)


def _file_types(table: Table) -> dict[str, pa.DataType]:
    """How each column is read from text: dates as YYYYMMDD integers, integers wide (narrowed later)."""
    types: dict[str, pa.DataType] = {}
    for name, kind in table.columns:
        if pa.types.is_date(kind) or pa.types.is_integer(kind):
            types[name] = pa.int64()
        else:
            types[name] = kind
    return types


def _read(
    data: bytes, table: Table, types: dict[str, pa.DataType], invalid: list[tuple[int, str, int]]
) -> pa.Table:
    def handler(row: pacsv.InvalidRow) -> str:
        invalid.append((row.number or 0, row.text, row.actual_columns))
        return "skip"

    return pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=table.column_names, use_threads=False),
        # Empty lines stay rows (and fail as such), so row i is always block line i + skipped lines.
        # KKBox files never quote, so a stray '"' is data (not the start of a multi-line field).
        parse_options=pacsv.ParseOptions(
            invalid_row_handler=handler, ignore_empty_lines=False, quote_char=False
        ),
        # Only an empty field is missing: "NA", "null" or "nan" in a number are wrong values.
        convert_options=pacsv.ConvertOptions(
            column_types=types, null_values=[""], strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )


def _row_numbers(count: int, invalid_lines: list[int]) -> np.ndarray:
    """Block-relative line numbers (1-based) of the rows that parsed, given the lines that were skipped."""
    lines = np.arange(1, count + len(invalid_lines) + 1)
    if invalid_lines:
        lines = np.setdiff1d(lines, np.asarray(invalid_lines), assume_unique=True)
    return lines[:count]


def _numeric_problems(text: pa.Table, table: Table) -> dict[str, np.ndarray]:
    """Per numeric column, rows whose text is not a number of that kind (only used on a dirty block)."""
    problems = {}
    for name, kind in _file_types(table).items():
        if name == "msno" or pa.types.is_string(kind):
            continue
        pattern = (
            r"^-?[0-9]{1,18}$"  # 19+ digits may not fit int64: quarantined as out of range
            if pa.types.is_integer(kind)
            else r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
        )
        values = text[name]
        ok = pc.or_(pc.equal(values, ""), pc.match_substring_regex(values, pattern))
        problems[name] = ~pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
    return problems


_DATE_BASE = 19000101


@cache
def _date_table() -> np.ndarray:
    """Day number of every YYYYMMDD integer from 1900-01-01 to 2199-12-31, -2**31 where impossible."""
    lookup = np.full(22_000_000 - _DATE_BASE, np.iinfo(np.int32).min, dtype=np.int32)
    days = np.arange(np.datetime64("1900-01-01"), np.datetime64("2200-01-01"), dtype="datetime64[D]")
    numbers = days.astype(np.int64)
    lookup[to_yyyymmdd(numbers) - _DATE_BASE] = numbers
    return lookup


def _not_a_number(text: str) -> str:
    """The quarantine reason for a numeric field's text that cannot be read."""
    if text.lstrip("-").isdigit():
        return f"integer out of range: {text!r}"
    return f"not a number: {text!r}"


def _not_numbers(column: pa.ChunkedArray, rows: np.ndarray) -> list[str]:
    """Quarantine reasons for the given rows of a numeric column read as text."""
    return [_not_a_number(column[int(r)].as_py()) for r in rows]


def _impossible_dates(raw: np.ndarray, rows: np.ndarray) -> list[str]:
    """Quarantine reasons for the given rows of a YYYYMMDD column that name no real day."""
    return [f"impossible date {raw[i]}" for i in rows]


def _failed_check(check: object, texts: dict[int, object], rows: np.ndarray) -> list[str]:
    """Quarantine reasons for the given rows that failed a contract check."""
    return [f"{check} failed (value {texts[r]!r})" for r in rows]


def _dates(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """YYYYMMDD integers -> (day numbers, impossible-date mask), by one table lookup per value."""
    offset = values - _DATE_BASE
    in_range = (offset >= 0) & (offset < len(_date_table()))
    days = _date_table()[np.where(in_range, offset, 0)]
    bad = ~in_range | (days == np.iinfo(np.int32).min)
    return np.where(bad, 0, days).astype(np.int32), bad


class _Quarantine:
    """Collects the bad rows of a block; the first reason found for a row wins.

    Clean blocks are the norm, so adding an all-False mask costs one `any()` and reasons are kept only
    for the rows that have one.
    """

    def __init__(self, n: int) -> None:
        self.mask = np.zeros(n, dtype=bool)
        self.field = np.full(n, None, dtype=object)
        self.reason = np.full(n, None, dtype=object)

    def add(self, mask: np.ndarray, field: str, reason: str | Callable[[np.ndarray], list[str]]) -> None:
        """Mark rows; `reason` is a text, or a function giving the texts of the given row positions."""
        new = np.flatnonzero(mask & ~self.mask)
        if new.size == 0:
            return
        self.mask[new] = True
        self.field[new] = field
        self.reason[new] = reason(new) if callable(reason) else reason


def _contract_failures(frame: pd.DataFrame, table: Table, quarantine: _Quarantine) -> None:
    """Check rows against the table's pandera contract; failing rows get the check's name as reason."""
    try:
        row_schema(table.name, dates_as_days=True).validate(frame, lazy=True, inplace=True)  # no copy
    except pandera.errors.SchemaErrors as errors:
        cases = errors.failure_cases.dropna(subset=["index"])
        for (column, check), group in cases.groupby(["column", "check"], sort=False):
            mask = np.zeros(len(frame), dtype=bool)
            positions = group["index"].astype(np.int64).to_numpy()
            mask[positions] = True
            texts = dict(zip(positions.tolist(), group["failure_case"].tolist(), strict=True))
            quarantine.add(mask, str(column), partial(_failed_check, check, texts))


def parse_block(data: bytes, table: Table) -> ParsedBlock:
    """Type a block's rows (Silver schema) and set aside the rows that break the format or the contract.

    Raises BlockError when the parser's rows do not match the block's lines (a bare carriage return
    inside a line), since line numbers could no longer be trusted.
    """
    if not data:  # a block that owns no line start (its remainder belongs to the previous line)
        return ParsedBlock(
            table.schema.empty_table(), USERS.empty_table(), QUARANTINE_SCHEMA.empty_table(), 0
        )
    types = _file_types(table)
    invalid: list[tuple[int, str, int]] = []
    clean = True
    try:
        parsed = _read(data, table, types, invalid)
    except pa.ArrowInvalid:
        clean = False
        invalid.clear()
        parsed = _read(data, table, dict.fromkeys(table.column_names, pa.string()), invalid)
    n = parsed.num_rows
    lines = n + len(invalid)
    expected_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if lines != expected_lines:
        raise BlockError(
            f"{expected_lines} lines but {lines} rows: a carriage return or line break inside a field"
        )
    row_lines = _row_numbers(n, [line for line, _, _ in invalid])
    quarantine = _Quarantine(n)
    if not clean:
        for name, bad in _numeric_problems(parsed, table).items():
            column = parsed[name]
            quarantine.add(bad, name, partial(_not_numbers, column))
        keep = pa.array(~quarantine.mask)
        retyped = {}
        for name in table.column_names:
            values = parsed[name]
            if types[name] != pa.string():
                values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
                values = pc.cast(pc.if_else(keep, values, pa.scalar("0")), types[name])
            retyped[name] = values
        parsed = pa.table(retyped)

    user_id, bad_key = decode_msno(parsed["msno"])
    quarantine.add(bad_key, "msno", "msno must be 44 base64 characters ending in '='")
    columns: dict[str, pa.Array | np.ndarray] = {"msno": parsed["msno"]}
    frame: dict[str, object] = {}
    for name, kind in table.columns[1:]:
        values = parsed[name]
        nulls = values.is_null().to_numpy(zero_copy_only=False)
        if name not in table.nullable:
            quarantine.add(nulls, name, f"empty value in field {name}")
        if pa.types.is_date(kind):
            raw = pc.fill_null(values, 19700101).to_numpy()
            days, impossible = _dates(raw)
            quarantine.add(impossible & ~nulls, name, partial(_impossible_dates, raw))
            columns[name] = pa.array(days, pa.int32()).cast(pa.date32())
            frame[name] = pa.array(days)  # the contract checks dates as day numbers, not timestamps
        elif name in table.nullable:  # gender: empty text means unknown
            columns[name] = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
            frame[name] = columns[name]
        else:
            filled = pc.fill_null(values, 0)
            columns[name] = filled
            frame[name] = filled
    # split_blocks: one pandas block per column, so no copy into a consolidated 2-D block.
    _contract_failures(pa.table(frame).to_pandas(split_blocks=True), table, quarantine)

    bad_rows = quarantine.mask
    good = pa.table({"user_id": user_id, **{name: columns[name] for name, _ in table.columns}})
    if bad_rows.any():  # drop bad rows before narrowing: their values may not fit the Silver types
        good = good.filter(pa.array(~bad_rows))
    first = ~pd.Series(good["user_id"].to_numpy()).duplicated().to_numpy()  # hashing, not sorting
    users = good.select(["user_id", "msno"]).filter(pa.array(first)).cast(USERS)
    good = good.drop_columns(["msno"]).cast(table.schema)
    bad = _bad_rows(data, invalid, parsed, row_lines, quarantine, table)
    return ParsedBlock(good, users, bad, lines)


def _bad_rows(
    data: bytes,
    invalid: list[tuple[int, str, int]],
    parsed: pa.Table,
    row_lines: np.ndarray,
    quarantine: _Quarantine,
    table: Table,
) -> pa.Table:
    """Quarantine records: wrong field counts from the parser, and typed rows that failed a check."""
    expected = len(table.columns)
    records = [
        (line, None, f"expected {expected} fields, got {count}", text) for line, text, count in invalid
    ]
    bad_positions = np.flatnonzero(quarantine.mask)
    if bad_positions.size:
        text_lines = data.split(b"\n")
        for position in bad_positions:
            line = int(row_lines[position])
            raw = text_lines[line - 1].decode("utf-8", "replace") if line - 1 < len(text_lines) else ""
            records.append((line, quarantine.field[position], quarantine.reason[position], raw))
    if not records:
        return QUARANTINE_SCHEMA.empty_table()
    lines, fields, reasons, rows = zip(*records, strict=True)
    return pa.table(
        {"line": lines, "field": fields, "reason": reasons, "row": rows}, schema=QUARANTINE_SCHEMA
    )
