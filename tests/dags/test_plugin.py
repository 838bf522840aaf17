"""The Airflow plugin: Airflow loads it, and its app lists and serves the reports of a lake over HTTP."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from churn.lake import Lake
from tests.conftest import LiveServer
from tests.dags.test_dags import REPO, airflow_env


def load_plugin_module() -> object:
    spec = importlib.util.spec_from_file_location("churn_reports", REPO / "plugins" / "churn_reports.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_airflow_loads_the_plugin(tmp_path: Path) -> None:
    env = airflow_env(tmp_path, {"AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins")})
    airflow = str(Path(sys.executable).with_name("airflow"))
    done = subprocess.run([airflow, "plugins", "--output", "json"], env=env, capture_output=True, text=True,
                          check=False, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"name": "churn_reports"' in done.stdout
    assert "/churn-reports" in done.stdout and "PublishedScoresLink" in done.stdout


def test_reports_app_lists_and_serves_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = Lake(str(tmp_path / "lake"))
    lake.write_bytes("reports/validation/gold/2017-03-31/index.html", b"<html>gold docs</html>")
    lake.write_bytes("reports/drift/week_ending=2017-04-07/report.html", b"<html>drift</html>")
    lake.write_bytes("silver/users/bucket=000/part-x.parquet", b"not a report")
    monkeypatch.setenv("CHURN_LAKE_URL", lake.url)
    plugin = load_plugin_module()
    with LiveServer(plugin.reports_app) as server:  # type: ignore[attr-defined]
        index = httpx.get(f"{server.url}/")
        page = httpx.get(f"{server.url}/reports/validation/gold/2017-03-31/index.html")
        outside = httpx.get(f"{server.url}/reports/../silver/users/bucket=000/part-x.parquet")
        encoded = httpx.get(f"{server.url}/reports/%2E%2E/silver/users/bucket=000/part-x.parquet")
        missing = httpx.get(f"{server.url}/reports/nope.html")
    assert index.status_code == 200
    assert 'href="reports/validation/gold/2017-03-31/index.html"' in index.text
    assert 'href="reports/drift/week_ending=2017-04-07/report.html"' in index.text
    assert page.status_code == 200 and page.text == "<html>gold docs</html>"
    assert page.headers["content-type"].startswith("text/html")
    assert outside.status_code == 404 and encoded.status_code == 404 and missing.status_code == 404


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
