"""Public answers say ok/failing and the model version, nothing about where things live; the log has the
(redacted) detail."""

from __future__ import annotations

import datetime as dt
import json
import logging

import httpx
import pytest
from sqlalchemy import create_engine, text

from api.main import create_app
from churn.db import redact
from churn.lake import Lake
from tests.api.conftest import Published, path_of
from tests.api.test_metrics import value
from tests.conftest import LiveServer, free_port


def test_database_down_answers_name_no_host_user_database_or_password(
    published: Published, monkeypatch: pytest.MonkeyPatch, churn_log: list[logging.LogRecord]
) -> None:
    port = free_port()
    monkeypatch.setenv("CHURN_DATABASE_URL", f"postgresql://dbuser@127.0.0.1:{port}/churndb?password=hunter2")
    monkeypatch.setenv("CHURN_API_ALLOW_ANONYMOUS", "true")
    with LiveServer(create_app()) as server:
        ready = httpx.get(f"{server.url}/readyz", timeout=30)
        score = httpx.get(f"{server.url}/scores/{path_of(published.both)}", timeout=30)
        page = httpx.get(f"{server.url}/scores", timeout=30)
    assert (ready.status_code, score.status_code, page.status_code) == (503, 503, 503)
    assert ready.json()["database"] == "unavailable"
    for body in (ready.text, score.text, page.text):
        for secret in ("127.0.0.1", str(port), "dbuser", "churndb", "hunter2"):
            assert secret not in body, body
    logged = [r.getMessage() for r in churn_log]
    assert any(f"127.0.0.1:{port}/churndb" in line for line in logged), logged
    assert not any("hunter2" in line for line in logged)


def test_redact_hides_a_password_given_as_a_query_parameter() -> None:
    shown = redact("postgresql://dbuser:pw1@db:5432/churn?password=hunter2&sslmode=require")
    assert "pw1" not in shown and "hunter2" not in shown
    assert "db:5432/churn" in shown and "sslmode=require" in shown


def test_drift_report_uri_is_relative_to_the_lake(published: Published, small_lake: Lake) -> None:
    relative = "reports/drift/week=2017-04-02/index.html"
    engine = create_engine(published.settings.database_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO drift_reports (week_ending, model_name, model_version, score_dates,"
                " reference_rows, current_rows, live_rows, drift_share, drifted_features, dataset_drift,"
                " alert, report_uri,"
                " summary) VALUES (:week, 'kkbox-churn', 1, ARRAY[DATE '2017-04-01'], 10, 10, 0, 0.1,"
                " ARRAY['age'], false, false, :uri, CAST(:summary AS JSONB))"
            ),
            {"week": dt.date(2017, 4, 2), "uri": small_lake.uri(relative), "summary": json.dumps({})},
        )
    engine.dispose()
    with LiveServer(create_app()) as server:
        drift = httpx.get(f"{server.url}/monitoring/drift/latest")
        metrics = httpx.get(f"{server.url}/metrics").text
    assert value(metrics, "churn_drift_share") == 0.1  # what the drift alert rule reads
    assert drift.status_code == 200
    assert drift.json()["report_uri"] == relative
    assert small_lake.root not in drift.text
