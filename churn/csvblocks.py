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
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from churn.contracts import row_schema
from churn.kkbox import Table
from churn.userkey import decode_msno

NEWLINE_SEARCH = 1 << 20  # how far past a block's end a line may run before we read more
QUARANTINE_SCHEMA = pa.schema(
    [("line", pa.int64()), ("field", pa.string()), ("reason", pa.string()), ("row", pa.string())]
)


@dataclass(frozen=True)
class Block:
    """Byte range [start, end) of a file, nominal: the owned lines are found when it is read."""

    index: int
    start: int
    end: int


@dataclass
class ParsedBlock:
    """The typed good rows of a block, its quarantined rows (block-relative lines) and its line count."""

    good: pa.Table
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


def read_block_bytes(handle: io.BufferedIOBase, block: Block, size: int) -> bytes:
    """The complete lines that start in [block.start, block.end) of an open binary file."""
    first = block.start
    if block.index > 0:  # skip the line that started in the previous block
        handle.seek(block.start - 1)
        probe = b""
        while b"\n" not in probe:
            more = handle.read(NEWLINE_SEARCH)
            if not more:
                return b""
            probe += more
        first = block.start - 1 + probe.index(b"\n") + 1
    if first >= block.end:
        return b""
    handle.seek(first)
    data = handle.read(block.end - first)
    if block.end < size and not data.endswith(b"\n"):
        tail = b""
        while True:
            more = handle.read(NEWLINE_SEARCH)
            if not more:
                break
            cut = more.find(b"\n")
            if cut >= 0:
                tail += more[: cut + 1]
                break
            tail += more
        data += tail
    return data


def _count_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


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
        parse_options=pacsv.ParseOptions(invalid_row_handler=handler),
        convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False
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
            r"^-?[0-9]+$"
            if pa.types.is_integer(kind)
            else r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
        )
        values = text[name]
        ok = pc.or_(pc.equal(values, ""), pc.match_substring_regex(values, pattern))
        problems[name] = ~pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
    return problems


def _dates(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """YYYYMMDD integers -> (day numbers, impossible-date mask), vectorised."""
    year, month, day = values // 10000, values // 100 % 100, values % 100
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(month, 1, 12) - 1]
    month_days = month_days + ((month == 2) & leap)
    bad = (year < 1900) | (year > 2199) | (month < 1) | (month > 12) | (day < 1) | (day > month_days)
    months = np.where(bad, 0, (year - 1970) * 12 + month - 1)
    days = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) + np.where(bad, 0, day - 1)
    return days.astype(np.int32), bad


class _Quarantine:
    """Collects bad rows of a block: the first reason per row wins."""

    def __init__(self, n: int) -> None:
        self.reason = np.full(n, None, dtype=object)
        self.field = np.full(n, None, dtype=object)

    def add(self, mask: np.ndarray, field: str, reason: str | np.ndarray) -> None:
        new = mask & (self.reason == None)  # noqa: E711 (elementwise comparison)
        self.field[new] = field
        self.reason[new] = reason[new] if isinstance(reason, np.ndarray) else reason

    @property
    def mask(self) -> np.ndarray:
        return self.reason != None  # noqa: E711


def _contract_failures(frame: pd.DataFrame, table: Table, quarantine: _Quarantine) -> None:
    """Check rows against the table's pandera contract; failing rows get the check's name as reason."""
    try:
        row_schema(table.name).validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        cases = errors.failure_cases.dropna(subset=["index"])
        for (column, check), group in cases.groupby(["column", "check"], sort=False):
            mask = np.zeros(len(frame), dtype=bool)
            positions = group["index"].astype(np.int64).to_numpy()
            mask[positions] = True
            values = np.full(len(frame), "", dtype=object)
            values[positions] = [f"{check} failed (value {v!r})" for v in group["failure_case"]]
            quarantine.add(mask, str(column), values)


def parse_block(data: bytes, table: Table) -> ParsedBlock:
    """Type a block's rows (Silver schema) and set aside the rows that break the format or the contract."""
    lines = _count_lines(data)
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
    row_lines = _row_numbers(n, [line for line, _, _ in invalid])
    quarantine = _Quarantine(n)
    if not clean:
        for name, bad in _numeric_problems(parsed, table).items():
            texts = parsed[name].to_numpy(zero_copy_only=False)
            quarantine.add(bad, name, np.array([f"not a number: {t!r}" for t in texts], dtype=object))
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
    quarantine.add(bad_key, "msno", "msno is not a 44-character base64 id")
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
            texts = np.array([f"impossible date {v}" for v in raw], dtype=object) if impossible.any() else ""
            quarantine.add(impossible & ~nulls, name, texts)
            columns[name] = pa.array(days, pa.int32()).cast(pa.date32())
            frame[name] = days.astype("datetime64[D]")
        elif name in table.nullable:  # gender: empty text means unknown
            columns[name] = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
            frame[name] = pd.Series(columns[name].to_numpy(zero_copy_only=False), dtype=object)
        else:
            filled = pc.fill_null(values, 0)
            columns[name] = filled
            frame[name] = filled.to_numpy()
    _contract_failures(pd.DataFrame(frame), table, quarantine)

    bad_rows = quarantine.mask
    good_idx = pa.array(np.flatnonzero(~bad_rows))
    good = pa.table(
        {
            **{name: (pc.take(columns[name], good_idx)).cast(kind) for name, kind in table.columns},
            "user_id": pa.array(user_id[~bad_rows], pa.int64()),
        },
        schema=table.schema,
    )
    bad = _bad_rows(data, invalid, parsed, row_lines, quarantine, table)
    return ParsedBlock(good, bad, lines)


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
    line, field, reason, row = zip(*records, strict=True)
    return pa.table({"line": line, "field": field, "reason": reason, "row": row}, schema=QUARANTINE_SCHEMA)
