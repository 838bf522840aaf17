"""`make demo` as a new user runs it (its demo profile, two days), once per session, and a real headless
browser.

The `demo` fixture runs the Makefile's own `demo` target (the real scheduler, runs triggered through the
REST API, the API left answering) with every path, port and database of its own, and stops Airflow and
the API afterwards. Pages are driven by playwright in Debian's chromium (`CHURN_TEST_CHROMIUM` overrides
the path) with every request off loopback refused: what renders, renders offline. Screenshots go to
`test-artifacts/browser/` (git-ignored).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from churn import localairflow
from churn.airflowapi import AirflowClient
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
DEMO_DAYS = ("2017-04-01", "2017-04-02")
DEMO_TIMEOUT = 900


@dataclass
class Demo:
    """What `make demo` left running: Airflow (URL, login), the API (URL, key) and the demo's log."""

    airflow_url: str
    user: str
    password: str
    api_url: str
    api_key: str
    log: str
    seconds: float
    lake: Path
    env: dict[str, str] = field(repr=False)

    def client(self) -> AirflowClient:
        return AirflowClient(self.airflow_url, self.user, self.password)


def _database(admin_url: str, name: str, drop: bool = False) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        statement = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' if drop else f'CREATE DATABASE "{name}"'
        connection.execute(text(statement))
    admin.dispose()


@pytest.fixture(scope="session")
def demo(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`make demo` over two days, in a folder, databases and ports of its own."""
    root = tmp_path_factory.mktemp("demo")
    suffix = uuid.uuid4().hex[:8]
    scores_db, metadata_db = f"churn_demo_{suffix}", f"airflow_demo_{suffix}"
    _database(pg_admin_url, scores_db)
    airflow_port, api_port = free_port(), free_port()
    key = secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "AIRFLOW"))} | {
        "CHURN_DATABASE_URL": make_url(pg_admin_url).set(database=scores_db).render_as_string(False),
        "CHURN_AIRFLOW_METADATA_DB": metadata_db,
        "CHURN_LAKE_URL": str(root / "lake"),
        "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "CHURN_MLFLOW_ARTIFACT_LOCATION": str(root / "artifacts"),
        "CHURN_API_KEYS": key,
        "CHURN_API_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW_HOME": str(root / "airflow"),
    }
    make = ["make", "--no-print-directory", "-C", str(REPO), f"LOCAL={root / 'local'}",
            f"AIRFLOW_PORT={airflow_port}", f"API_PORT={api_port}"]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        [*make, "demo", f"DEMO_DAYS={DEMO_DAYS[0]}:{DEMO_DAYS[1]}",
         f"DEMO_WEEK_ENDING={DEMO_DAYS[1]}"],
        env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "make-demo.log").write_text(f"{done.stdout}\n{done.stderr}\n{seconds:.0f} s\n")
    try:
        assert done.returncode == 0, f"make demo failed:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
        yield Demo(
            airflow_url=f"http://127.0.0.1:{airflow_port}",
            user=localairflow.USER,
            password=localairflow.password(root / "airflow"),
            api_url=f"http://127.0.0.1:{api_port}",
            api_key=key,
            log=done.stdout,
            seconds=seconds,
            lake=root / "lake",
            env=env,
        )
    finally:
        subprocess.run([*make, "api-stop"], env=env, capture_output=True, check=False, timeout=60)
        subprocess.run([*make, "airflow-stop"], env=env, capture_output=True, check=False, timeout=120)
        _database(pg_admin_url, metadata_db, drop=True)
        _database(pg_admin_url, scores_db, drop=True)


def chromium_path() -> str:
    """Debian's chromium (the project's CI installs it); fails under CI=true when missing, else skips."""
    path = os.environ.get("CHURN_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        reason = f"no chromium at {path} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield instance
        instance.close()


@dataclass
class Offline:
    """Requests the page made off loopback (refused): a test fails when any was made."""

    refused: list[str] = field(default_factory=list)


@pytest.fixture
def offline() -> Offline:
    return Offline()


@pytest.fixture
def page(browser: Any, offline: Offline, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page with the network blocked (only 127.0.0.1 answers); a screenshot of where it
    ended is saved under the test's name."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})

    def only_loopback(route: Any) -> None:
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            offline.refused.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_loopback)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    try:
        yield tab
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        finally:
            context.close()


def shoot(page: Any, name: str) -> None:
    """A screenshot of the current state under a name of the test's choosing."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(page: Any, demo: Demo) -> None:
    """Sign in through Airflow's login form, as a person does."""
    page.goto(f"{demo.airflow_url}/")
    page.get_by_label("Username").fill(demo.user)
    page.get_by_label("Password").fill(demo.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{demo.airflow_url}/")
