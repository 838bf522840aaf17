"""A project-local PostgreSQL cluster for the embedded mode (`make demo`), from the system's binaries.

Production points `CHURN_DATABASE_URL` at a real server; on a laptop the demo should still run on
PostgreSQL rather than a toy database. PostgreSQL refuses to run as root, so as root the cluster is
initialised and started as the `postgres` user (runuser). Where no server binaries exist the caller falls
back to SQLite and says so.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import psycopg2

from churn.errors import ChurnError

log = logging.getLogger(__name__)


class LocalPostgresError(ChurnError):
    """The local cluster could not be initialised or started; the message points at its log."""


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when PostgreSQL server binaries are absent."""
    pg_config = shutil.which("pg_config")
    candidates = []
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.insert(0, str(Path(initdb).parent))
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _as_postgres(command: list[str]) -> list[str]:
    """Prefix a command with runuser when running as root (the server refuses root)."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if runuser is None:
        raise LocalPostgresError("running as root needs runuser (util-linux) to start PostgreSQL as postgres")
    return [runuser, "-u", "postgres", "--", *command]


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(_as_postgres(command), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise LocalPostgresError(f"{what} failed: {detail[-1] if detail else result.returncode}")


def _owned_by_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user="postgres", group="postgres")


def _reachable(port: int) -> bool:
    try:
        psycopg2.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=2
        ).close()
    except psycopg2.OperationalError:
        return False
    return True


def start(root: Path, port: int, database: str = "churn") -> str:
    """Initialise (once) and start a cluster under `root` listening on 127.0.0.1:`port`; return its URL.

    Idempotent: a running cluster is reused, an existing data folder is started, the database is created
    when missing.
    """
    bindir = find_bindir()
    if bindir is None:
        raise LocalPostgresError("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    root = root.resolve()
    data, sockets, logfile = root / "data", root / "run", root / "server.log"
    if not _reachable(port):
        root.mkdir(parents=True, exist_ok=True)
        sockets.mkdir(exist_ok=True)
        for path in (root, sockets):
            _owned_by_postgres(path)
        if not (data / "PG_VERSION").exists():
            _run(
                [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                "initdb",
            )
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1"
        _run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(logfile), "-o", options, "-w", "start"],
            f"pg_ctl start (see {logfile})",
        )
        log.info("started local PostgreSQL on 127.0.0.1:%d (data %s)", port, data)
    connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{database}"')
    connection.close()
    return f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"


def stop(root: Path) -> None:
    """Stop the cluster under `root` if it runs (fast shutdown)."""
    bindir = find_bindir()
    data = root.resolve() / "data"
    if bindir is None or not (data / "postmaster.pid").exists():
        return
    _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], "pg_ctl stop")
