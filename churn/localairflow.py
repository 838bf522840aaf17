"""Airflow 3 on one machine as operators run it: api-server, scheduler, dag-processor and triggerer as
separate processes with the LocalExecutor, on a metadata database of their own (`make airflow`).

`airflow standalone` is a development shortcut: it starts its components as `airflow ...` found on PATH
(from a fresh clone the venv's bin is not, and every component dies), answers SIGINT only (a SIGTERM
orphans its children) and keeps SQLite. Here each component is started from the venv's own `airflow`,
in a process group of its own, its pid and log under `$AIRFLOW_HOME`; `stop` sends SIGTERM to every group
and SIGKILL to what is left after a grace period (the scheduler waits for running tasks on the first
signal). The metadata database is a database `airflow` beside the scores database on the same PostgreSQL
server (SQLite in AIRFLOW_HOME only where the scores database is SQLite). Secrets (JWT and API secret
keys, Fernet key, the admin password) are generated once into AIRFLOW_HOME with mode 0600, never fixed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from churn.errors import ChurnError

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
USER = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
REPO = Path(__file__).resolve().parents[1]


class LocalAirflowError(ChurnError):
    """A component did not start or become healthy; the message names it and its log."""


@dataclass(frozen=True)
class LocalAirflow:
    """A running local Airflow: where to reach it and how to log in."""

    url: str
    user: str
    password: str
    home: Path
    metadata: str


def airflow_bin() -> str:
    """The `airflow` beside this interpreter (the venv's), whatever PATH says."""
    candidate = Path(sys.executable).with_name("airflow")
    if not candidate.exists():
        raise LocalAirflowError(f"no airflow executable beside {sys.executable} (run make setup)")
    return str(candidate)


def metadata_url(scores_url: str, home: Path, database: str = "airflow") -> str:
    """Airflow's metadata database: `database` on the scores database's PostgreSQL server (created when
    missing), else SQLite in `home`."""
    url = make_url(scores_url)
    if not url.drivername.startswith("postgresql"):
        return f"sqlite:///{home / 'airflow.db'}"
    target = url.set(drivername="postgresql+psycopg2", database=database)
    admin = create_engine(
        url.set(drivername="postgresql+psycopg2", database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as connection:
            exists = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database})
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        admin.dispose()
    return target.render_as_string(hide_password=False)


def _secret(home: Path, name: str, make: Callable[[], str]) -> str:
    """A secret generated once into `home/.secrets/<name>` (mode 0600) and reused after."""
    path = home / ".secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600)
        path.write_text(make())
    return path.read_text().strip()


def password(home: Path) -> str:
    """The admin password: generated once into the simple auth manager's own passwords file."""
    path = home / PASSWORDS_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps({USER: secrets.token_urlsafe(12)}))
    return json.loads(path.read_text())[USER]


def environment(home: Path, port: int, metadata: str) -> dict[str, str]:
    """The environment of every component: the caller's (CHURN_* settings reach the tasks), the project's
    DAGs and plugin, the LocalExecutor, the shared secrets, and the execution API on this port."""
    from cryptography.fernet import Fernet

    return os.environ | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags")),
        "AIRFLOW__CORE__PLUGINS_FOLDER": os.environ.get(
            "AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins")
        ),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM", "4"),
        "AIRFLOW__CORE__FERNET_KEY": _secret(home, "fernet_key", lambda: Fernet.generate_key().decode()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__SECRET_KEY": _secret(home, "api_secret_key", lambda: secrets.token_urlsafe(32)),
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(home, "jwt_secret", lambda: secrets.token_urlsafe(32)),
        # a component's scheduler heartbeat is checked by the health endpoint the start waits for
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "30",
    }


def _pid_file(home: Path, component: str) -> Path:
    return home / "run" / f"{component}.pid"


def _reaches(probe: Callable[[], None]) -> bool:
    """Whether a signal-0 probe finds its process (one we may not signal still exists)."""
    try:
        probe()
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive(pid: int) -> bool:
    return _reaches(lambda: os.kill(pid, 0))


def running(home: Path) -> dict[str, int]:
    """The components whose pid file names a live process."""
    found = {}
    for component in COMPONENTS:
        path = _pid_file(home, component)
        if path.exists() and _alive(pid := int(path.read_text())):
            found[component] = pid
    return found


def _tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def start(
    home: Path, port: int, scores_url: str, timeout: float = 180.0, database: str = "airflow"
) -> LocalAirflow:
    """Migrate the metadata database (`database` beside the scores database), start the four components
    and wait until the api-server reports the metadata database, scheduler, dag-processor and triggerer
    healthy. Refuses when some are running."""
    home = home.resolve()
    if running(home):
        raise LocalAirflowError(
            f"Airflow in {home} is already running ({', '.join(running(home))}); stop it first"
        )
    home.mkdir(parents=True, exist_ok=True)
    (home / "run").mkdir(exist_ok=True)
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    metadata = metadata_url(scores_url, home, database)
    env = environment(home, port, metadata)
    secret = password(home)
    migrate = subprocess.run(
        [airflow_bin(), "db", "migrate"], env=env, capture_output=True, text=True, check=False
    )
    (logs / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
    if migrate.returncode != 0:
        raise LocalAirflowError(
            f"airflow db migrate failed; see {logs / 'db-migrate.log'}:\n{_tail(logs / 'db-migrate.log')}"
        )
    for component in COMPONENTS:
        args = [airflow_bin(), component] + (
            ["--port", str(port), "--host", "127.0.0.1"] if component == "api-server" else []
        )
        with (logs / f"{component}.log").open("ab") as log:
            process = subprocess.Popen(
                args,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _pid_file(home, component).write_text(str(process.pid))
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(home, url, timeout)
    return LocalAirflow(url=url, user=USER, password=secret, home=home, metadata=metadata)


def _wait_healthy(home: Path, url: str, timeout: float) -> None:
    """Poll the api-server's health endpoint until every component is healthy; a dead component fails at
    once with its log's tail."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        dead = [c for c in COMPONENTS if c not in running(home)]
        if dead:
            stop(home, grace=5)
            raise LocalAirflowError(f"airflow {dead[0]} exited; see {home / 'logs' / (dead[0] + '.log')}:\n"
                                    f"{_tail(home / 'logs' / (dead[0] + '.log'))}")  # fmt: skip
        try:
            health = httpx.get(f"{url}/api/v2/monitor/health", timeout=5).json()
            states = {name: (health.get(name) or {}).get("status") for name in
                      ("metadatabase", "scheduler", "dag_processor", "triggerer")}  # fmt: skip
            if all(state == "healthy" for state in states.values()):
                return
            last = json.dumps(states)
        except (httpx.HTTPError, ValueError) as error:
            last = str(error) or type(error).__name__
        time.sleep(1)
    stop(home, grace=5)
    raise LocalAirflowError(
        f"Airflow did not become healthy within {timeout:.0f} s ({last}); logs in {home / 'logs'}"
    )


def stop(home: Path, grace: float = 30.0) -> dict[str, str]:
    """End every component: SIGTERM to each process group, SIGKILL to groups still alive after `grace`
    seconds. Returns how each one ended (`terminated`, `killed`, `not running`)."""
    home = home.resolve()
    outcome: dict[str, str] = {}
    groups: dict[str, int] = {}
    for component in COMPONENTS:
        path = _pid_file(home, component)
        if not path.exists():
            outcome[component] = "not running"
            continue
        pid = int(path.read_text())
        if _alive(pid):
            groups[component] = pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        else:
            outcome[component] = "not running"
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline:
        for component, pid in list(groups.items()):
            if not _group_alive(pid):
                outcome[component] = "terminated"
                del groups[component]
        time.sleep(0.2)
    for component, pid in groups.items():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        outcome[component] = "killed"
    for pid in groups.values():
        for _ in range(50):
            if not _group_alive(pid):
                break
            time.sleep(0.1)
    for component in COMPONENTS:
        _pid_file(home, component).unlink(missing_ok=True)
    return outcome


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is alive (a leader's exit leaves its task processes behind)."""
    if not _reaches(lambda: os.killpg(pgid, 0)):
        return False
    # zombies of our own children count as gone: reap them, then look again
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-pgid, os.WNOHANG)[0]:
            pass
    return _reaches(lambda: os.killpg(pgid, 0))
