"""Database engines for the scores database (PostgreSQL in production, SQLite only as a fallback).

One factory so every caller gets the same pool settings and the same error when the server is down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

from churn.errors import ChurnError
from churn.settings import Settings


class DatabaseUnavailableError(ChurnError):
    """The configured database cannot be reached; the message carries the URL without a password."""


def redact(url: str) -> str:
    """The URL with any password hidden (also one given as a `?password=` query parameter), for logs."""
    parsed = make_url(url)
    query = {key: "***" if key.lower() == "password" else value for key, value in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


def make_engine(database_url: str, *, pool_size: int = 5) -> Engine:
    """Create an engine; PostgreSQL gets a pre-ping pool, SQLite foreign keys and a busy timeout.

    `postgresql://` URLs are pinned to psycopg2 (the driver the lock ships) so users can paste the
    plain libpq form.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg2")
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 5, "application_name": "churn"},
        )
    engine = create_engine(url, connect_args={"timeout": 30})

    # pysqlite opens transactions lazily and never around DDL; take control of BEGIN so migrations and
    # publishes are atomic on SQLite too (the recipe from SQLAlchemy's SQLite dialect documentation).
    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection) -> None:  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN")

    return engine


ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


def make_async_engine(database_url: str, *, pool_size: int = 16) -> AsyncEngine:
    """The same database for an asyncio server: asyncpg (prepared statements cached per connection, so a
    hot query is planned once) or aiosqlite. Used by the API's read path, which never leaves the event
    loop for a thread. A fixed pool (no overflow: an overflow connection is opened and closed per request,
    which under load costs more than the query and gave a p99 of 300 ms at 32 connections; a request
    waits for a pooled one instead). Autocommit (each read is one statement: no BEGIN/ROLLBACK round trips).
    No pre-ping (a `SELECT` round trip per checkout: measured here -30..45% lookups/s); instead a pooled
    connection the server has closed (restart, `pg_terminate_backend`) is noticed at checkout from the
    socket asyncpg already saw close, and replaced before the request uses it, at no round trip."""
    from sqlalchemy.ext.asyncio import create_async_engine

    url = make_url(database_url)
    url = url.set(drivername=ASYNC_DRIVERS[url.get_backend_name()])
    if url.get_backend_name() == "postgresql":
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=10,
            isolation_level="AUTOCOMMIT",
            connect_args={"timeout": 5, "server_settings": {"application_name": "churn-api"}},
        )
        event.listen(engine.sync_engine, "checkout", _replace_closed_asyncpg_connection)
        return engine
    return create_async_engine(url, connect_args={"timeout": 30})


def _replace_closed_asyncpg_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout: a connection whose socket the server closed raises DisconnectionError, on which the
    pool discards it and checks out (or opens) another (SQLAlchemy's pessimistic-disconnect hook)."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def engine_from_settings(settings: Settings) -> Engine:
    """The scores-database engine for the configured `CHURN_DATABASE_URL`."""
    return make_engine(settings.database_url)


def check_connection(engine: Engine) -> None:
    """Run `SELECT 1`, turning any driver error into DatabaseUnavailableError with a readable reason."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # the driver's own exception types differ per backend
        reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
        raise DatabaseUnavailableError(
            f"cannot reach database {redact(engine.url.render_as_string(hide_password=False))}: {reason}"
        ) from error


async def check_async_connection(engine: AsyncEngine) -> None:
    """`check_connection` for an async engine (the API's readiness probe)."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:  # the driver's own exception types differ per backend
        reason = (
            str(getattr(error, "orig", error)).strip().splitlines()[0] if str(error) else type(error).__name__
        )
        raise DatabaseUnavailableError(
            f"cannot reach database {redact(engine.url.render_as_string(hide_password=False))}: {reason}"
        ) from error


def is_postgres(bind: Engine | Connection) -> bool:
    """True for PostgreSQL (partitions, COPY, JSONB, advisory locks), False for the SQLite fallback of the
    embedded mode: the one test of which database this is."""
    return bind.dialect.name == "postgresql"


def upsert(
    engine: Engine, table: str, key: str, rows: list[dict[str, Any]], stamp: str, jsonb: tuple[str, ...] = ()
) -> None:
    """Insert rows, or replace every column of the row with the same `key` (a rerun replaces its rows)
    and set its `stamp` column to now. `jsonb` columns (JSON text) are cast on PostgreSQL; on SQLite they
    stay text. One statement for every caller, so the PostgreSQL and SQLite forms cannot diverge."""
    if not rows:
        return
    postgres = is_postgres(engine)
    columns = list(rows[0])
    values = ", ".join(f"CAST(:{c} AS JSONB)" if postgres and c in jsonb else f":{c}" for c in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    statement = text(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}, {stamp} = CURRENT_TIMESTAMP"
    )
    with engine.begin() as connection:
        connection.execute(statement, rows)
