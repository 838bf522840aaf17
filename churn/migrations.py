"""Versioned SQL migrations from `sql/`, applied idempotently and recorded in `schema_version`.

Files are named `NNN_description.sql` (any database) or `NNN_description.<dialect>.sql` (one per
dialect, `postgresql` or `sqlite`, where the schemas must differ, e.g. partitioning). Each migration runs in
its own transaction together with the row that records it, so a failing migration leaves nothing behind.
An applied migration whose file changed afterwards is an error: the database no longer matches the code.
On PostgreSQL an advisory lock serialises concurrent upgrades (the API and a DAG starting together).
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from churn.db import is_postgres
from churn.errors import ChurnError

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
_NAME = re.compile(r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+?)(?:\.(?P<dialect>postgresql|sqlite))?\.sql$")
_LOCK_KEY = 0x6B6B626F78  # "kkbox": any constant shared by every upgrader
_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
)
"""


class MigrationError(ChurnError):
    """A migration file or the recorded schema history is inconsistent; the message names the file."""


@dataclass(frozen=True)
class Migration:
    """One migration file as it applies to one dialect."""

    version: int
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text, to detect a migration edited after it was applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(dialect: str, sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The migrations for `dialect`, ordered by version; malformed or conflicting files are errors."""
    chosen: dict[int, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: name must look like 001_description.sql or 001_x.postgresql.sql")
        file_dialect = match["dialect"]
        if file_dialect not in (None, dialect):
            continue
        version = int(match["version"])
        if version in chosen:
            raise MigrationError(
                f"{path}: version {version:03d} is also defined by {chosen[version].path.name}"
            )
        chosen[version] = Migration(version, match["name"], path, path.read_text(encoding="utf-8"))
    return [chosen[v] for v in sorted(chosen)]


def _statements(sql: str) -> list[str]:
    """Split a script into complete statements (SQLite's driver runs one statement per call)."""
    statements, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()
    ):
        raise MigrationError(f"unterminated statement at end of script: {buffer.strip()[:80]!r}")
    return statements


def _run_script(connection: Connection, migration: Migration) -> None:
    """Execute a migration's text on the raw DBAPI cursor, inside the caller's transaction."""
    cursor = connection.connection.cursor()
    try:
        if is_postgres(connection):
            cursor.execute(migration.sql)  # psycopg2 runs a multi-statement script as one call
        else:
            for statement in _statements(migration.sql):
                cursor.execute(statement)
    except Exception as error:
        reason = str(error).strip().splitlines()[0]
        raise MigrationError(f"{migration.path.name} failed: {reason}") from error
    finally:
        cursor.close()


def applied_versions(connection: Connection) -> dict[int, str]:
    """Version -> checksum of the migrations recorded in the database (empty before the first upgrade)."""
    rows = connection.execute(text("SELECT version, checksum FROM schema_version")).all()
    return {int(version): str(checksum) for version, checksum in rows}


def upgrade(engine: Engine, sql_dir: Path = SQL_DIR) -> list[Migration]:
    """Apply every pending migration in order; return those applied now (empty when up to date)."""
    migrations = discover(engine.dialect.name, sql_dir)
    applied_now: list[Migration] = []
    with engine.connect() as connection:
        is_pg = is_postgres(connection)
        if is_pg:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
            connection.commit()
        try:
            with connection.begin():
                connection.execute(text(_VERSION_TABLE))
            with connection.begin():
                recorded = applied_versions(connection)
            known = {m.version: m for m in migrations}
            for version, checksum in recorded.items():
                if version in known and known[version].checksum != checksum:
                    raise MigrationError(
                        f"{known[version].path.name} was changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                if version not in known:
                    log.warning("database has migration %03d that this code does not know", version)
            for migration in migrations:
                if migration.version in recorded:
                    continue
                with connection.begin():
                    _run_script(connection, migration)
                    connection.execute(
                        text("INSERT INTO schema_version (version, name, checksum) VALUES (:v, :n, :c)"),
                        {"v": migration.version, "n": migration.name, "c": migration.checksum},
                    )
                log.info("applied migration %s", migration.path.name)
                applied_now.append(migration)
        finally:
            if is_pg:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
                connection.commit()
    return applied_now
