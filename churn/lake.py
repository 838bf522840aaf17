"""The data lake: one object for reading and writing files under the lake URL, local or S3/MinIO.

Every stage addresses data by a path relative to the lake root (`silver/user_logs/...`), so the same code
runs on a laptop folder and on MinIO. Writes are atomic per file (a temporary name then a rename on a local
disk, a single PUT on S3), so a reader never sees half a file and a crashed run leaves no partial output
under the final name.
"""

from __future__ import annotations

import io
import json
import posixpath
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from churn.errors import ChurnError
from churn.settings import Settings


def csv_write_options(*, quote_strings: bool = False) -> pacsv.WriteOptions:
    """CSV with a header and, by default, no quotes around strings or column names (as KKBox's files)."""
    style = "needed" if quote_strings else "none"
    return pacsv.WriteOptions(quoting_style=style, quoting_header=style)


def _discard(handle: Any) -> None:
    """Abandon an object-store upload: closing the file (as its context manager does, even on an error)
    would publish what was written so far; s3fs's `discard` aborts a multipart upload, and marking the
    file closed keeps its finaliser from uploading the buffered rest."""
    discard = getattr(handle, "discard", None)
    if callable(discard):
        discard()
    handle.closed = True


def stamp_of(info: dict[str, Any]) -> str:
    """A file's version stamp from its listing or info entry: ETag on S3, modification time locally."""
    return str(info.get("ETag") or info.get("mtime") or info.get("LastModified") or "")


class LakeError(ChurnError):
    """A lake path is missing or unreadable; the message carries the full URI."""


class Lake:
    """Files under a root URL (a local folder or `s3://bucket/prefix`), addressed by relative paths."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self.fs: fsspec.AbstractFileSystem = fs
        self.root: str = root.rstrip("/")
        self.is_local = isinstance(fs, LocalFileSystem)
        if self.is_local:
            self.fs.makedirs(self.root, exist_ok=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> Lake:
        """The lake configured by `CHURN_LAKE_URL` and the S3 settings."""
        return cls(settings.lake_url, settings.storage_options())

    def path(self, relative: str) -> str:
        """Filesystem path (no scheme) of a relative lake path; rejects paths escaping the root."""
        clean = posixpath.normpath(relative.strip("/")) if relative.strip("/") else ""
        if clean.startswith("..") or posixpath.isabs(clean):
            raise LakeError(f"path {relative!r} leaves the lake root")
        return f"{self.root}/{clean}" if clean and clean != "." else self.root

    def uri(self, relative: str = "") -> str:
        """Full URI of a lake path, as shown to people and recorded in manifests."""
        path = self.path(relative)
        return path if self.is_local else str(self.fs.unstrip_protocol(path))

    def relative(self, path: str) -> str:
        """The lake-relative form of a filesystem path returned by `fs.find`/`fs.glob`."""
        stripped = path.split("://", 1)[-1]
        if not stripped.startswith(self.root):
            raise LakeError(f"{path} is not under the lake root {self.root}")
        return stripped[len(self.root) :].lstrip("/")

    # -- existence and listing ---------------------------------------------------------------------
    def exists(self, relative: str) -> bool:
        """True when a file or a folder with files exists at the path."""
        return bool(self.fs.exists(self.path(relative)))

    def is_file_within(self, relative: str, folder: str) -> bool:
        """True when the path is a regular file that really lies inside `folder` of the lake.

        On a local disk a symlink (or a symlinked folder) under `folder` could point anywhere on the
        server, so the real path must stay inside the real folder; on S3 there are no links, and a
        "folder" is a key prefix, not an object.
        """
        target = self.path(relative)
        if not self.is_local:
            return bool(self.fs.isfile(target))
        base = Path(self.path(folder)).resolve()
        real = Path(target).resolve()
        return real.is_relative_to(base) and real != base and real.is_file()

    def size(self, relative: str) -> int:
        """Size in bytes of one file."""
        return int(self.fs.size(self.path(relative)))

    def stamp(self, relative: str) -> str:
        """A cheap identity of a file's version: its modification time or ETag."""
        return stamp_of(self.fs.info(self.path(relative)))

    def glob(self, pattern: str) -> list[str]:
        """Relative paths matching a glob pattern, sorted."""
        return sorted(self.relative(p) for p in self.fs.glob(self.path(pattern)))

    def find(self, prefix: str) -> list[str]:
        """All files below a folder, as sorted relative paths (empty when the folder does not exist)."""
        if not self.exists(prefix):
            return []
        return sorted(self.relative(p) for p in self.fs.find(self.path(prefix)))

    def move(self, source: str, target: str) -> None:
        """Move a file within the lake (a rename on a local disk; copy then delete on S3)."""
        destination = self.path(target)
        if self.is_local:
            self.fs.makedirs(posixpath.dirname(destination), exist_ok=True)
        self.fs.mv(self.path(source), destination)

    def remove(self, relative: str) -> None:
        """Delete a file or a whole folder; missing paths are fine (idempotent re-runs)."""
        target = self.path(relative)
        if self.fs.exists(target):
            self.fs.rm(target, recursive=True)

    # -- raw bytes -----------------------------------------------------------------------------------
    @contextmanager
    def open_atomic(self, relative: str, content_type: str | None = None) -> Iterator[IO[bytes]]:
        """Stream a file that appears under its name only once complete.

        Locally the bytes go to a temporary name that is renamed at the end; on S3 a multipart upload
        becomes visible only when it completes. On error nothing is left under the final name.
        """
        target = self.path(relative)
        if self.is_local:
            self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
            temporary = f"{target}.tmp-{uuid.uuid4().hex}"
            try:
                with self.fs.open(temporary, "wb") as handle:
                    yield handle
                self.fs.mv(temporary, target)
            finally:
                if self.fs.exists(temporary):
                    self.fs.rm(temporary)
        else:
            extra = {"ContentType": content_type} if content_type else {}
            handle = self.fs.open(target, "wb", **extra)
            try:
                yield handle
            except BaseException:
                _discard(handle)
                raise
            handle.close()

    def write_bytes(self, relative: str, data: bytes, content_type: str | None = None) -> str:
        """Write a whole file atomically; returns its URI."""
        if self.is_local:
            with self.open_atomic(relative) as handle:
                handle.write(data)
        else:
            extra = {"ContentType": content_type} if content_type else {}
            self.fs.pipe_file(self.path(relative), data, **extra)
        return self.uri(relative)

    def read_bytes(self, relative: str) -> bytes:
        """Read a whole file; a missing file is a LakeError naming its URI."""
        try:
            return bytes(self.fs.cat_file(self.path(relative)))
        except FileNotFoundError:
            raise LakeError(f"not found: {self.uri(relative)}") from None

    @contextmanager
    def open(self, relative: str, mode: str = "rb") -> Iterator[IO[Any]]:
        """Stream a file (for inputs too large to hold in memory); writes are not atomic here."""
        target = self.path(relative)
        if "w" in mode and self.is_local:
            self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        try:
            with self.fs.open(target, mode) as handle:
                yield handle
        except FileNotFoundError:
            raise LakeError(f"not found: {self.uri(relative)}") from None

    # -- text formats ---------------------------------------------------------------------------------
    def write_text(self, relative: str, text: str, content_type: str = "text/plain") -> str:
        """Write UTF-8 text atomically."""
        return self.write_bytes(relative, text.encode("utf-8"), content_type)

    def read_text(self, relative: str) -> str:
        """Read a UTF-8 text file."""
        return self.read_bytes(relative).decode("utf-8")

    def write_html(self, relative: str, html: str) -> str:
        """Write an HTML report with the content type browsers need to render it from S3."""
        return self.write_text(relative, html, content_type="text/html; charset=utf-8")

    def write_json(self, relative: str, payload: Any) -> str:
        """Write a JSON document (manifests, summaries), keys sorted for stable diffs and hashes."""
        text = json.dumps(payload, indent=2, sort_keys=True, default=str)
        return self.write_text(relative, text + "\n", content_type="application/json")

    def read_json(self, relative: str) -> Any:
        """Read a JSON document."""
        return json.loads(self.read_text(relative))

    # -- tabular formats ----------------------------------------------------------------------------
    def write_parquet(
        self,
        relative: str,
        data: pa.Table | pd.DataFrame,
        compression: str = "zstd",
        dictionary: bool | list[str] = True,
        row_group_rows: int | None = None,
    ) -> str:
        """Write one Parquet file atomically (zstd by default: smaller and faster to read than snappy).

        `dictionary` names the columns to dictionary-encode; for sorted numeric data plain encoding is
        both smaller and about twice as fast to write. `row_group_rows` caps row groups (pyarrow's default
        is 1M rows): smaller groups let readers of one user skip more.
        """
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        buffer = io.BytesIO()
        pq.write_table(
            table, buffer, compression=compression, use_dictionary=dictionary, row_group_size=row_group_rows
        )
        return self.write_bytes(relative, buffer.getvalue(), "application/vnd.apache.parquet")

    def read_parquet(self, relative: str, columns: list[str] | None = None) -> pa.Table:
        """Read a Parquet file or a folder of Parquet files as one table."""
        if not self.exists(relative):
            raise LakeError(f"not found: {self.uri(relative)}")
        return pq.read_table(self.path(relative), columns=columns, filesystem=self.fs)

    def read_parquet_where(
        self, relative: str, conditions: Sequence[tuple[str, str, Any]], columns: list[str] | None = None
    ) -> pa.Table:
        """Rows of one Parquet file meeting every (column, op, value) condition, op one of = <= >=.

        Row groups whose min/max statistics exclude a condition are not read at all (Silver parts are
        sorted by user and date, so one user's rows cost one or two row groups); the rest are filtered
        exactly. Much cheaper per file than a dataset scan: the live path reads a few files per request.
        """
        compare = {"=": pc.equal, "<=": pc.less_equal, ">=": pc.greater_equal}
        with self.open(relative) as handle:
            parquet = pq.ParquetFile(handle)
            metadata, names = parquet.metadata, parquet.schema_arrow.names
            keep = []
            for group in range(metadata.num_row_groups):
                fits = True
                for column, op, value in conditions:
                    stats = metadata.row_group(group).column(names.index(column)).statistics
                    if stats is None or not stats.has_min_max:
                        continue
                    low, high = stats.min, stats.max
                    fits &= {"=": low <= value <= high, "<=": low <= value, ">=": high >= value}[op]
                if fits:
                    keep.append(group)
            wanted = (
                None
                if columns is None
                else sorted({*columns, *(c for c, _, _ in conditions)}, key=names.index)
            )
            table = (
                parquet.read_row_groups(keep, columns=wanted) if keep else parquet.schema_arrow.empty_table()
            )
        if keep:
            mask = None
            for column, op, value in conditions:
                test = compare[op](table[column], pa.scalar(value, table.schema.field(column).type))
                mask = test if mask is None else pc.and_(mask, test)
            table = table.filter(mask)
        return table if columns is None else table.select(columns)

    def write_batches(self, relative: str, schema: pa.Schema, batches: list[pa.RecordBatch]) -> str:
        """Write an uncompressed Arrow IPC file of record batches: the fastest format for staging data,
        and each batch can be read on its own (`read_batch`)."""
        with self.open_atomic(relative) as handle, pa.ipc.new_file(handle, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        return self.uri(relative)

    def read_batch(self, relative: str, index: int) -> pa.RecordBatch:
        """Read one record batch of an Arrow IPC file (memory-mapped locally: only that batch is read)."""
        if self.is_local:
            with pa.memory_map(self.path(relative)) as source:
                return pa.ipc.open_file(source).get_batch(index)
        with self.open(relative) as handle:
            return pa.ipc.open_file(handle).get_batch(index)

    def write_csv(self, relative: str, data: pa.Table | pd.DataFrame, *, quote_strings: bool = False) -> str:
        """Write CSV with a header; strings unquoted by default, as in the KKBox files."""
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer, write_options=csv_write_options(quote_strings=quote_strings))
        return self.write_bytes(relative, buffer.getvalue(), "text/csv")

    def read_csv(self, relative: str) -> pa.Table:
        """Read a small CSV file whole (large inputs go through the streaming ingest instead)."""
        with self.open(relative, "rb") as handle:
            return pacsv.read_csv(handle)
