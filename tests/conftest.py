"""Shared fixtures: a clean environment, real PostgreSQL databases, an S3 server on loopback, a live API.

PostgreSQL tests connect to CHURN_TEST_DATABASE_URL (default: the server these machines run on
127.0.0.1:5432, database `test`) and work in a fresh database each, dropped afterwards. Under CI=true a
missing server fails those tests; elsewhere they skip with the reason.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from churn.data.ingest import ingest
from churn.lake import Lake
from churn.model.params import Params, load_params
from churn.model.training import train
from churn.settings import Settings, get_settings
from churn.synth.profiles import get_profile
from churn.synth.writer import write_dump

DEFAULT_TEST_PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No CHURN_* variable or .env file of the developer leaks into a test; settings are re-read."""
    for name in list(os.environ):
        if name.startswith("CHURN_") and name != "CHURN_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("CHURN_LAKE_URL", str(tmp_path / "lake"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# -- PostgreSQL ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """URL of the PostgreSQL server used for tests; fails under CI=true when unreachable, else skips."""
    url = os.environ.get("CHURN_TEST_DATABASE_URL", DEFAULT_TEST_PG)
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:
        reason = f"PostgreSQL not reachable at {make_url(url).render_as_string()}: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"churn_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for one test."""
    return f"sqlite:///{tmp_path / 'churn.db'}"


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each database backend in turn: real PostgreSQL, then the SQLite fallback."""
    fixture = "pg_url" if request.param == "postgresql" else "sqlite_url"
    return str(request.getfixturevalue(fixture))


# -- S3 on loopback -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An in-memory S3 server (moto) on 127.0.0.1, for the object-store paths of the lake."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty bucket on the loopback S3 server; credentials and region set for every client."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"churn-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return bucket


# -- a live API server --------------------------------------------------------------------------------
class LiveServer:
    """uvicorn serving an app in a background thread, with its lifespan, on a free loopback port, configured
    as `python -m api.serve` configures its workers (`limits`: its header-size and timeout arguments)."""

    def __init__(self, app: object, **limits: Any) -> None:
        import uvicorn

        from api.serve import server_config

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = server_config(app, host="127.0.0.1", port=self.port, log_level="warning", **limits)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("API server exited during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError("API server did not start within 20 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


# -- training -------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def params() -> Params:
    """The repository's params.yaml, shrunk for tiny test data (same code paths, fewer trees)."""
    base = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    return base.model_copy(
        update={
            "train": base.train.model_copy(update={"train_cohorts": 2}),
            "lightgbm": base.lightgbm.model_copy(
                update={
                    "n_estimators": 300,
                    "learning_rate": 0.08,
                    "min_child_samples": 10,
                    "early_stopping_rounds": 20,
                }
            ),
        }
    )


@pytest.fixture(scope="session")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """3,000 generated users with 240 days of history, in Silver (4 buckets)."""
    lake = Lake(str(tmp_path_factory.mktemp("small") / "lake"))
    write_dump(lake, get_profile("tiny", users=3000, days=240), seed=5)
    ingest(lake, Settings(lake_url=lake.url, silver_buckets=4, dask_workers=1), "dump")
    return lake


@pytest.fixture(scope="session")
def champion_store(
    small_lake: Lake, params: Params, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """An MLflow store whose champion was trained on the small lake (validated on 2017-03).
    Tests may add versions but must leave the champion alias where they found it."""
    root = tmp_path_factory.mktemp("champion")
    store = {
        "mlflow_tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "mlflow_artifact_location": str(root / "a"),
    }
    settings = Settings(lake_url=small_lake.url, silver_buckets=4, dask_workers=1, **store)
    train(small_lake, settings, params, "2017-03", "t-champion")
    return store


# -- a TCP proxy: a database that goes away and comes back ----------------------------------------------
class TcpProxy:
    """Forwards a loopback port to a server; `stop()` drops the port and every open connection, `start()`
    brings the port back (the same one), so a client sees its server vanish and return."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in its thread
            self._listener.close()
            self._listener = None
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._sockets = []
