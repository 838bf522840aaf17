"""Bronze -> Silver: typed, deduplicated, bucketed Parquet, with bad rows quarantined and counted.

Sources are the Kaggle dump files under `bronze/` (any subset of them: what is missing is named) and the
daily drops `bronze/<table>/dt=D/*.csv`. Each source is parsed in blocks (Dask tasks); good rows are split
by user bucket into a staging area, and only when every source of the run is within the bad-row threshold
are the staged rows compacted (sorted by user and date, exact duplicates removed) into new parts, still in
staging; when all of them are written they are moved to `silver/<table>/bucket=NNN/part-<source>.parquet`. A
run that fails before that point leaves Silver as it was. A source is ingested once: its size and
modification stamp are kept in `silver/_state.json`, so a rerun skips it, and a forced rerun rewrites the
same parts (no duplicates).

Silver layout: all rows of a user live in one bucket (`user_id % buckets`), sorted by user and date, so
per-user work downstream reads one bucket at a time with no shuffle.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import zlib
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn.compute import run_tasks
from churn.data import kkbox
from churn.data.csvblocks import Block, BlockError, parse_block, plan_blocks, read_block_bytes
from churn.data.silver import LAYOUT, STATE, sort_and_deduplicate
from churn.data.userkey import bucket_of
from churn.errors import ChurnError
from churn.lake import Lake
from churn.logs import Progress
from churn.settings import Settings

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SILVER_ROW_GROUP = 32_768  # rows: small enough that one user's rows are one or two groups to read
_DAILY = re.compile(r"^bronze/(?P<table>[a-z_]+)/dt=(?P<day>\d{4}-\d{2}-\d{2})/[^/]+\.csv$")


class IngestError(ChurnError):
    """Bad input: a missing, empty or malformed file, or too many bad rows; the message names the file."""


@dataclass(frozen=True)
class Source:
    """One Bronze file and the Silver table it feeds."""

    table: str
    path: str  # lake-relative
    slug: str  # names its Silver parts, so re-ingesting a source replaces exactly its rows

    @property
    def spec(self) -> kkbox.Table:
        """The table's format."""
        return kkbox.TABLES[self.table]


@dataclass
class SourceReport:
    """What one source contributed: lines read, rows kept, quarantined, duplicates dropped."""

    source: Source
    size: int
    stamp: str
    checksum: str = ""
    rows_in: int = 0
    rows_out: int = 0
    quarantined: int = 0
    duplicates: int = 0
    quarantine_uri: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def bad_fraction(self) -> float:
        """Share of data lines that were quarantined."""
        return self.quarantined / self.rows_in if self.rows_in else 0.0


# -- discovery and up-front checks ----------------------------------------------------------------------
def missing_dump_files(lake: Lake) -> list[str]:
    """The dump files absent from Bronze and never ingested: what this lake cannot answer from.

    A partial download (the "v2" set alone, the v1 set alone, any tables) is fine; what it lacks is
    named so its consequences (no history for training, no released labels for a cohort) can be traced.
    A lake fed by daily drops alone (no dump file ever) is not a partial dump: nothing is named.
    """
    state: dict[str, Any] = lake.read_json(STATE) if lake.exists(STATE) else {}
    paths = [f"bronze/{name}" for name in kkbox.DUMP_FILES]
    missing = [path for path in paths if path not in state and not lake.exists(path)]
    drops = any("/dt=" in path for path in state) or lake.glob("bronze/*/dt=*/*.csv")
    return [] if len(missing) == len(paths) and drops else missing


def discover(lake: Lake) -> list[Source]:
    """All Bronze sources: the dump files present (any subset), then daily drops by date.

    Only plain `.csv` files are sources: compressed downloads are unpacked into plain CSVs in Bronze by
    a step that runs before this one, so every source here can be read in byte ranges.
    """
    sources: list[Source] = []
    for table in kkbox.TABLES.values():
        for name in table.dump_files:
            if lake.exists(f"bronze/{name}"):
                sources.append(Source(table.name, f"bronze/{name}", f"dump-{name.removesuffix('.csv')}"))
    daily = []
    for table_name in kkbox.TABLES:
        for path in lake.glob(f"bronze/{table_name}/dt=*/*.csv"):
            match = _DAILY.match(path)
            if match:
                daily.append((match["day"], table_name, path))
    for day, table_name, path in sorted(daily):
        stem = path.rsplit("/", 1)[-1].removesuffix(".csv")
        # The file name is part of the slug: two files in one day's folder are two sources.
        sources.append(Source(table_name, path, f"dt-{day}" if stem == table_name else f"dt-{day}-{stem}"))
    if not sources:
        files = ", ".join(f for t in kkbox.TABLES.values() for f in t.dump_files)
        raise IngestError(
            f"no Bronze input under {lake.uri('bronze')}: expected the Kaggle files (any of {files}) "
            "or daily drops bronze/<table>/dt=YYYY-MM-DD/<table>.csv"
        )
    return sources


def check_header(lake: Lake, source: Source) -> int:
    """Verify the file's first line is the table's header; return its length in bytes (with newline)."""
    if lake.size(source.path) == 0:
        raise IngestError(
            f"{lake.uri(source.path)} is empty (expected the header {','.join(source.spec.column_names)})"
        )
    with lake.open(source.path) as handle:
        start = handle.read(64 * 1024)
    first = start[: start.index(b"\n") + 1] if b"\n" in start else start
    header = first.decode("utf-8", "replace").rstrip("\r\n").lstrip("\ufeff")
    expected = ",".join(source.spec.column_names)
    if header != expected:
        raise IngestError(
            f"{lake.uri(source.path)} line 1: header is {header[:200]!r}, expected {expected!r}"
        )
    return len(first)


# -- tasks --------------------------------------------------------------------------------------------------
def _staging(run_id: str, source: Source, kind: str) -> str:
    return f"silver/_staging/{run_id}/{source.table}/{source.slug}/{kind}"


def _split_by_bucket(table: pa.Table, buckets: int) -> list[pa.RecordBatch]:
    """The table's rows as one record batch per bucket (empty batches for empty buckets)."""
    bucket = bucket_of(table["user_id"].to_numpy(), buckets).astype(np.uint16)
    order = np.argsort(bucket, kind="stable")  # radix sort on 16-bit keys: linear time
    bounds = np.searchsorted(bucket[order], np.arange(buckets + 1))
    ordered = table.take(pa.array(order)).combine_chunks()
    return [
        ordered.slice(bounds[b], bounds[b + 1] - bounds[b]).to_batches(max_chunksize=None)[0]
        if bounds[b + 1] > bounds[b]
        else pa.RecordBatch.from_pylist([], schema=table.schema)
        for b in range(buckets)
    ]


def _parse_task(
    lake_url: str, options: dict[str, Any], source: Source, block: Block, size: int, run_id: str, buckets: int
) -> dict[str, Any]:
    """Parse one block; stage its good rows and its users as one Arrow file each, a record batch per
    bucket (so the compaction of a bucket reads just its batch); return counts and bad rows."""
    lake = Lake(lake_url, options)
    with lake.open(source.path) as handle:
        data = read_block_bytes(handle, block, size)
    try:
        parsed = parse_block(data, source.spec)
    except BlockError as error:
        raise IngestError(f"{lake.uri(source.path)} bytes {block.start}-{block.end}: {error}") from None
    name = f"block-{block.index:06d}.arrow"
    for kind, table in (("rows", parsed.good), ("users", parsed.users)):
        lake.write_batches(
            f"{_staging(run_id, source, kind)}/{name}", table.schema, _split_by_bucket(table, buckets)
        )
    return {
        "lines": parsed.lines,
        "good": parsed.good.num_rows,
        "bad": parsed.bad,
        "digest": f"{zlib.crc32(data):08x}",
    }


def _read_staged(lake: Lake, folder: str, bucket: int, schema: pa.Schema) -> pa.Table:
    """One bucket's rows from every staged block file of a folder."""
    batches = [lake.read_batch(path, bucket) for path in lake.glob(f"{folder}/*.arrow")]
    return pa.Table.from_batches([b for b in batches if b.num_rows], schema=schema)


def _compact_task(
    lake_url: str, options: dict[str, Any], source: Source, bucket: int, run_id: str
) -> tuple[int, int, list[tuple[str, str | None]]]:
    """Merge a source's staged rows and users of one bucket into new Silver parts, written under the
    run's staging folder; returns (rows, duplicates, [(final path, new file or None to delete)]).

    Nothing under `silver/<table>/` changes here: `_publish` moves the new parts in only once every
    task of the run has succeeded.
    """
    lake = Lake(lake_url, options)
    target = f"silver/{source.table}/bucket={bucket:03d}/part-{source.slug}.parquet"
    users_target = f"silver/users/bucket={bucket:03d}/part-{source.table}-{source.slug}.parquet"
    rows = _read_staged(lake, _staging(run_id, source, "rows"), bucket, source.spec.schema)
    if rows.num_rows == 0:  # a re-delivered source may no longer have rows in this bucket
        return 0, 0, [(target, None), (users_target, None)]
    rows, duplicates = sort_and_deduplicate(rows, source.spec)
    users = _read_staged(lake, _staging(run_id, source, "users"), bucket, kkbox.USERS)
    users = users.group_by(["user_id", "msno"]).aggregate([]).sort_by("user_id").cast(kkbox.USERS)
    ids = users["user_id"].to_numpy()
    if (ids[1:] == ids[:-1]).any():
        clash = users.filter(pa.array(np.concatenate([[False], ids[1:] == ids[:-1]])))["msno"][0]
        raise IngestError(f"{source.path}: two msno values share one user key (near {clash}); report this")
    out = f"silver/_staging/{run_id}/out"
    categorical = [f.name for f in rows.schema if pa.types.is_string(f.type)]  # e.g. gender
    lake.write_parquet(f"{out}/{target}", rows, dictionary=categorical, row_group_rows=SILVER_ROW_GROUP)
    lake.write_parquet(f"{out}/{users_target}", users, dictionary=False)
    return rows.num_rows, duplicates, [(target, f"{out}/{target}"), (users_target, f"{out}/{users_target}")]


def _publish(lake: Lake, changes: list[tuple[str, str | None]]) -> None:
    """Move the run's new parts into Silver (and drop parts a source no longer fills).

    Runs only after every compaction task succeeded; each move is a rename on a local disk.
    """
    for final, new in changes:
        if new is None:
            lake.remove(final)
        else:
            lake.move(new, final)


# -- the run ------------------------------------------------------------------------------------------------
@dataclass
class IngestReport:
    """A run's outcome: per-source figures, skipped sources, timings; also written as the manifest."""

    run_id: str
    sources: list[SourceReport]
    skipped: list[str]
    seconds: float = 0.0
    missing: list[str] = field(default_factory=list)  # dump files neither in Bronze nor ingested before
    unpacked: list[dict[str, Any]] = field(default_factory=list)  # CSVs unpacked from Bronze archives first

    def summary(self) -> dict[str, Any]:
        """The manifest document."""
        tables: dict[str, dict[str, int]] = {}
        for report in self.sources:
            totals = tables.setdefault(report.source.table, {"rows_in": 0, "rows_out": 0, "quarantined": 0,
                                                                   "duplicates": 0})  # fmt: skip
            for key in totals:
                totals[key] += getattr(report, key)
        return {
            "run_id": self.run_id,
            "schema_version": SCHEMA_VERSION,
            "seconds": round(self.seconds, 3),
            "tables": tables,
            "skipped": self.skipped,
            "missing": self.missing,
            "unpacked": self.unpacked,
            "inputs": [
                {
                    "path": r.source.path,
                    "table": r.source.table,
                    "size": r.size,
                    "stamp": r.stamp,
                    "checksum": r.checksum,
                    "rows_in": r.rows_in,
                    "rows_out": r.rows_out,
                    "quarantined": r.quarantined,
                    "duplicates": r.duplicates,
                    "quarantine": r.quarantine_uri,
                }
                for r in self.sources
            ],
        }


def _check_layout(lake: Lake, buckets: int) -> None:
    if lake.exists(LAYOUT):
        layout = lake.read_json(LAYOUT)
        if layout.get("buckets") != buckets:
            raise IngestError(
                f"Silver at {lake.uri('silver')} has {layout.get('buckets')} buckets but "
                f"CHURN_SILVER_BUCKETS is {buckets}; re-ingest into an empty Silver to change the layout"
            )
    else:
        lake.write_json(LAYOUT, {"buckets": buckets, "schema_version": SCHEMA_VERSION, "key": "user_id"})


def ingest(
    lake: Lake, settings: Settings, run_id: str, *, force: bool = False, sources: list[Source] | None = None
) -> IngestReport:
    """Ingest every Bronze source not yet in Silver (all of them with `force`; only `sources` if given)."""
    started = time.perf_counter()
    buckets = settings.silver_buckets
    from churn.data.archives import unpack_bronze  # imported here: archives builds on this module

    unpacked = unpack_bronze(lake).summary() if sources is None else []
    sources = discover(lake) if sources is None else sources
    headers = {s: check_header(lake, s) for s in sources}
    _check_layout(lake, buckets)
    state: dict[str, Any] = lake.read_json(STATE) if lake.exists(STATE) else {}
    reports, skipped = [], []
    for source in sources:
        size, stamp = lake.size(source.path), lake.stamp(source.path)
        known = state.get(source.path)
        if not force and known and known["size"] == size and known["stamp"] == stamp:
            skipped.append(source.path)
            continue
        reports.append(SourceReport(source, size, stamp))
    report = IngestReport(run_id, reports, skipped, missing=missing_dump_files(lake), unpacked=unpacked)
    if report.missing:
        log.warning(
            "Kaggle files not in %s (ingesting what is there; see the README for what each subset "
            "allows): %s", lake.uri("bronze"), ", ".join(report.missing),
        )  # fmt: skip
    if not reports:
        report.seconds = time.perf_counter() - started
        return report

    block_bytes = settings.ingest_block_mb << 20
    tasks, owners = [], []
    for index, item in enumerate(reports):
        for block in plan_blocks(item.size, headers[item.source], block_bytes):
            tasks.append((lake.url, lake.storage_options, item.source, block, item.size, run_id, buckets))
            owners.append(index)
    log.info("parsing %d sources in %d blocks", len(reports), len(tasks))
    try:
        blocks = Counter(owners)
        with ExitStack() as stack:  # per source: blocks parsed and the rows in them
            parsed = [
                stack.enter_context(Progress(f"ingest {r.source.path}", blocks[i], "blocks"))
                for i, r in enumerate(reports)
            ]

            def block_parsed(task: int, result: dict[str, Any]) -> None:
                counter = parsed[owners[task]]
                counter.advance(rows=result["lines"])
                if counter.done == counter.total:  # the source's last block: its own time and rate
                    counter.close()

            results = run_tasks(settings, _parse_task, tasks, block_parsed)
        _account(lake, run_id, reports, owners, results)
        failing = [r for r in reports if r.bad_fraction > settings.quarantine_max_fraction]
        if failing:
            raise IngestError(_threshold_message(failing, settings.quarantine_max_fraction))
        compact = [
            (lake.url, lake.storage_options, r.source, b, run_id) for r in reports for b in range(buckets)
        ]
        staged = sum(result["good"] for result in results)
        with Progress(f"ingest compaction into {buckets} buckets", staged, "rows") as compacted:

            def bucket_compacted(_: int, outcome: tuple[int, int, Any]) -> None:
                compacted.advance(outcome[0] + outcome[1])  # rows kept and duplicates dropped: rows read

            outcomes = run_tasks(settings, _compact_task, compact, bucket_compacted)
        changes: list[tuple[str, str | None]] = []
        for (_, _, source, _, _), (rows, duplicates, moves) in zip(compact, outcomes, strict=True):
            item = next(r for r in reports if r.source == source)
            item.rows_out += rows
            item.duplicates += duplicates
            changes += moves
        _publish(lake, changes)
    finally:
        lake.remove(f"silver/_staging/{run_id}")
        if not lake.find("silver/_staging"):
            lake.remove("silver/_staging")
    for item in reports:
        state[item.source.path] = {"size": item.size, "stamp": item.stamp, "checksum": item.checksum,
                                   "run_id": run_id, "rows": item.rows_out}  # fmt: skip
    lake.write_json(STATE, state)
    report.seconds = time.perf_counter() - started
    lake.write_json(f"silver/_manifests/{run_id}.json", report.summary())
    return report


def _account(
    lake: Lake, run_id: str, reports: list[SourceReport], owners: list[int], results: list[dict]
) -> None:
    """Per source: lines, file line numbers of bad rows, checksum; writes each source's quarantine file."""
    per_source: dict[int, list[dict]] = {}
    for owner, result in zip(owners, results, strict=True):
        per_source.setdefault(owner, []).append(result)
    for index, item in enumerate(reports):
        blocks = per_source.get(index, [])
        first_line, bad_tables, digests = 2, [], []
        for result in blocks:
            bad = result["bad"]
            if bad.num_rows:
                shifted = pc.add(bad["line"], first_line - 1)
                bad_tables.append(bad.set_column(0, "line", shifted))
            first_line += result["lines"]
            digests.append(result["digest"])
        item.rows_in = first_line - 2
        item.checksum = hashlib.blake2b("".join(digests).encode(), digest_size=16).hexdigest()
        if bad_tables:
            bad = pa.concat_tables(bad_tables)
            item.quarantined = bad.num_rows
            bad = bad.append_column("source", pa.array([item.source.path] * bad.num_rows))
            path = f"quarantine/{item.source.table}/{item.source.slug}/{run_id}.parquet"
            item.quarantine_uri = lake.write_parquet(path, bad)
            item.problems = [
                f"line {line}: {reason}" + (f" (field {fld})" if fld else "")
                for line, fld, reason in zip(
                    bad["line"].to_pylist()[:3],
                    bad["field"].to_pylist()[:3],
                    bad["reason"].to_pylist()[:3],
                    strict=True,
                )
            ]
            log.warning(
                "%s: %d rows quarantined -> %s", item.source.path, item.quarantined, item.quarantine_uri
            )


def _threshold_message(failing: list[SourceReport], threshold: float) -> str:
    parts = []
    for item in failing:
        parts.append(
            f"{item.source.path}: {item.quarantined:,} of {item.rows_in:,} rows bad "
            f"({item.bad_fraction:.2%} > {threshold:.2%}); first: {'; '.join(item.problems)}; "
            f"all in {item.quarantine_uri}"
        )
    return "ingest stopped, Silver unchanged: " + " | ".join(parts)
