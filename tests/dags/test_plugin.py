"""The Airflow plugin: Airflow loads it, and its app lists and serves the reports of a lake over HTTP,
inside Airflow's real API server and only to users Airflow's auth manager has logged in."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from churn.lake import Lake
from churn.monitoring.reports import ReportNotFoundError, read_report_file
from tests.conftest import free_port
from tests.dags.test_dags import REPO, airflow_env

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
SECRET = "secret-outside-the-reports"


def load_plugin_module() -> object:
    spec = importlib.util.spec_from_file_location("churn_reports", REPO / "plugins" / "churn_reports.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_airflow_loads_the_plugin(tmp_path: Path) -> None:
    env = airflow_env(tmp_path, {"AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins")})
    done = subprocess.run([AIRFLOW, "plugins", "--output", "json"], env=env, capture_output=True, text=True,
                          check=False, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"name": "churn_reports"' in done.stdout
    assert "/churn-reports" in done.stdout and "PublishedScoresLink" in done.stdout


@dataclass(frozen=True)
class AirflowServer:
    """Airflow's API server with the plugin, the lake it serves, and a viewer's token from Airflow."""

    url: str
    lake: Lake
    outside: Path
    token: str

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.get(f"{self.url}/churn-reports/{path}", timeout=30, **kwargs)  # type: ignore[arg-type]

    def get_as_viewer(self, path: str) -> httpx.Response:
        return self.get(path, headers={"Authorization": f"Bearer {self.token}"})


def build_lake(root: Path) -> tuple[Lake, Path]:
    """Reports, other lake data, a file and a folder outside the lake, and symlinks out of reports/."""
    lake = Lake(str(root / "lake"))
    lake.write_bytes("reports/validation/gold/2017-03-31/index.html", b"<html>gold docs</html>")
    lake.write_bytes("reports/drift/week_ending=2017-04-07/report.html", b"<html>drift</html>")
    lake.write_bytes("silver/users/bucket=000/part-x.parquet", SECRET.encode())
    outside = root / "outside"
    outside.mkdir()
    (outside / "passwd").write_text(SECRET)
    reports = root / "lake" / "reports"
    (reports / "passwd.html").symlink_to(outside / "passwd")
    (reports / "escape").symlink_to(outside, target_is_directory=True)
    (reports / "silver.html").symlink_to(root / "lake" / "silver" / "users" / "bucket=000" / "part-x.parquet")
    return lake, outside


# `airflow db migrate`, then Airflow's API app (create_app: plugins, auth manager, core API) in uvicorn, in
# one process: the same app `airflow api-server` serves, without a second Airflow start-up.
SERVE = """
import sys
import uvicorn
from airflow.utils.db import upgradedb
from airflow.api_fastapi.app import create_app
upgradedb()
uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Airflow's API server exited: {log.read_text()[-3000:]}")
        try:
            httpx.get(f"{url}/api/v2/monitor/health", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"Airflow's API server did not start: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def airflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    """Airflow's API app (simple auth manager, SQLite metadata) with the plugin, on a loopback port."""
    root = tmp_path_factory.mktemp("plugin")
    lake, outside = build_lake(root)
    home = root / "airflow"
    home.mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"reader": "reader-password"}))
    env = airflow_env(home, {
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), "CHURN_LAKE_URL": lake.url,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "reader:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-jwt-secret", "AIRFLOW__API__SECRET_KEY": "test-secret-key",
    })  # fmt: skip
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = home / "api-server.log"
    with log.open("w") as sink:
        command = [sys.executable, "-c", SERVE, str(port)]
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(url, process, log)
        answer = httpx.post(f"{url}/auth/token", json={"username": "reader", "password": "reader-password"})
        assert answer.status_code in (200, 201), answer.text
        yield AirflowServer(url, lake, outside, answer.json()["access_token"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_plugin_pages_refuse_anonymous_requests(airflow_server: AirflowServer) -> None:
    for path in (
        "",
        "reports/validation/gold/2017-03-31/index.html",
        "reports/nope.html",
        "docs",
        "openapi.json",
    ):
        anonymous = airflow_server.get(path)
        assert anonymous.status_code == 401, (path, anonymous.status_code)
        assert "gold docs" not in anonymous.text
    forged = airflow_server.get("", headers={"Authorization": "Bearer not-a-token-airflow-signed"})
    assert forged.status_code in (401, 403) and "reports/validation" not in forged.text
    stale_cookie = airflow_server.get("", cookies={"_token": "not-a-token-airflow-signed"})
    assert stale_cookie.status_code in (401, 403) and "reports/validation" not in stale_cookie.text


def test_plugin_pages_serve_a_user_logged_in_to_airflow(airflow_server: AirflowServer) -> None:
    by_header = airflow_server.get_as_viewer("reports/validation/gold/2017-03-31/index.html")
    by_ui_cookie = airflow_server.get("", cookies={"_token": airflow_server.token})
    assert by_header.status_code == 200 and by_header.text == "<html>gold docs</html>"
    assert by_ui_cookie.status_code == 200 and "Churn reports" in by_ui_cookie.text


def test_reports_app_lists_and_serves_reports(airflow_server: AirflowServer) -> None:
    index = airflow_server.get_as_viewer("")
    page = airflow_server.get_as_viewer("reports/validation/gold/2017-03-31/index.html")
    outside = airflow_server.get_as_viewer("reports/../silver/users/bucket=000/part-x.parquet")
    encoded = airflow_server.get_as_viewer("reports/%2E%2E/silver/users/bucket=000/part-x.parquet")
    missing = airflow_server.get_as_viewer("reports/nope.html")
    assert index.status_code == 200
    assert 'href="reports/validation/gold/2017-03-31/index.html"' in index.text
    assert 'href="reports/drift/week_ending=2017-04-07/report.html"' in index.text
    assert page.status_code == 200 and page.text == "<html>gold docs</html>"
    assert page.headers["content-type"].startswith("text/html")
    assert outside.status_code == 404 and encoded.status_code == 404 and missing.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "reports/passwd.html",  # a symlink to a file outside the lake
        "reports/escape/passwd",  # a file below a symlinked folder that points outside the lake
        "reports/silver.html",  # a symlink inside reports/ to lake data outside reports/
        "reports/validation/gold",  # a folder
        "reports",
    ],
)
def test_only_regular_files_inside_reports_are_served(airflow_server: AirflowServer, path: str) -> None:
    answer = airflow_server.get_as_viewer(path)
    assert answer.status_code == 404, (answer.status_code, answer.text[:200])
    assert SECRET not in answer.text


def test_a_folder_of_an_s3_lake_is_not_a_report_file(s3_endpoint: str, s3_bucket: str) -> None:
    lake = Lake(
        f"s3://{s3_bucket}/lake", {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    )
    lake.write_bytes("reports/validation/gold/2017-03-31/index.html", b"<html>gold docs</html>")
    assert (
        read_report_file(lake, "reports/validation/gold/2017-03-31/index.html")[0]
        == b"<html>gold docs</html>"
    )
    for folder in ("reports/validation/gold", "reports/validation/gold/2017-03-31/"):
        with pytest.raises(ReportNotFoundError, match="no report file"):
            read_report_file(lake, folder)


def test_scoring_task_links_to_the_published_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_API_PUBLIC_URL", "https://churn.example.com/")
    link = load_plugin_module().PublishedScoresLink()  # type: ignore[attr-defined]

    class Task:
        task_id = "score_and_publish"

    class Other:
        task_id = "features"

    assert link.get_link(Task(), ti_key=None) == "https://churn.example.com/scores?limit=100"
    assert link.get_link(Other(), ti_key=None) == ""


def test_drift_task_links_to_the_reports() -> None:
    link = load_plugin_module().DriftReportsLink()  # type: ignore[attr-defined]

    class Task:
        task_id = "drift_report"

    class Other:
        task_id = "check_thresholds"

    assert link.get_link(Task(), ti_key=None) == "/churn-reports/"
    assert link.get_link(Other(), ti_key=None) == ""
