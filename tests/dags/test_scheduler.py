"""The real scheduler, as `make airflow` runs it: the four components under the LocalExecutor on a
PostgreSQL metadata database, a nightly run triggered through the REST API for an explicit day that fails,
its failure alert reaching a webhook at once (no retries in tests), unpausing that runs nothing outside
the schedule window, and a stop that leaves no process behind."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from churn import localairflow
from churn.airflowapi import AirflowApiError, AirflowClient, interval_covering
from tests.conftest import free_port


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A webhook receiver on loopback: its URL and the JSON bodies it received."""
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_interval_covering_a_day_is_the_scheduled_runs() -> None:
    daily = interval_covering("0 2 * * *", dt.date(2017, 4, 3))
    assert (daily.start.isoformat(), daily.end.isoformat()) == (
        "2017-04-03T02:00:00+00:00",
        "2017-04-04T02:00:00+00:00",
    )
    weekly = interval_covering("0 3 * * 1", dt.date(2017, 4, 2))  # the week to Sunday 2017-04-02
    assert (weekly.start.date(), weekly.end.date()) == (dt.date(2017, 3, 27), dt.date(2017, 4, 3))
    with pytest.raises(AirflowApiError, match="no run covers up to 2017-04-03"):
        interval_covering("0 3 * * 1", dt.date(2017, 4, 3))
    with pytest.raises(AirflowApiError, match="only 'M H"):
        interval_covering("@daily", dt.date(2017, 4, 3))


@pytest.mark.slow
def test_local_airflow_alerts_on_a_failed_night_and_stops_cleanly(
    tmp_path: Path,
    pg_url: str,
    pg_admin_url: str,
    webhook: tuple[str, list[dict]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = webhook
    for name in [n for n in os.environ if n.startswith(("CHURN_", "AIRFLOW"))]:
        monkeypatch.delenv(name)
    for name, value in {
        "CHURN_DATABASE_URL": pg_url, "CHURN_LAKE_URL": str(tmp_path / "empty-lake"),
        "CHURN_TASK_RETRIES": "0", "CHURN_ALERT_WEBHOOK_URL": url, "CHURN_SCHEDULE_END": "2017-04-03",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    metadata = f"airflow_test_{uuid.uuid4().hex[:8]}"
    home = tmp_path / "airflow"
    try:
        airflow = localairflow.start(home, free_port(), pg_url, database=metadata)
        assert make_url(airflow.metadata).database == metadata and airflow.metadata.startswith("postgresql")
        pids = localairflow.running(home)
        assert set(pids) == set(localairflow.COMPONENTS)
        with pytest.raises(localairflow.LocalAirflowError, match="already running"):
            localairflow.start(home, free_port(), pg_url, database=metadata)

        client = AirflowClient(airflow.url, airflow.user, airflow.password)
        client.wait_for_dag("churn_ingest")
        client.unpause("churn_ingest")  # unpaused as a user would: today is outside the window
        with pytest.raises(AirflowApiError) as failure:  # an empty lake: the night cannot be scored
            client.run("churn_nightly_scoring", dt.date(2017, 4, 3), timeout=300)
        assert "run `churn ingest` first" in str(failure.value)  # the failed task's log, through the API
        runs = client.runs("churn_nightly_scoring")
        assert [(r["logical_date"], r["data_interval_end"], r["state"]) for r in runs] == [
            ("2017-04-03T02:00:00Z", "2017-04-04T02:00:00Z", "failed")
        ]
        tasks = {
            ti["task_id"]: ti for ti in client.task_instances("churn_nightly_scoring", runs[0]["dag_run_id"])
        }
        assert (
            tasks["features"]["state"] == "failed"
            and tasks["score_and_publish"]["state"] == "upstream_failed"
        )
        assert (
            tasks["features"]["try_number"] == 1
        )  # CHURN_TASK_RETRIES=0 reached the dag-processor: no retry
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            time.sleep(0.5)
        assert [(a["dag_id"], a["task_id"]) for a in received] == [("churn_nightly_scoring", "features")], (
            received
        )
        assert "run `churn ingest` first" in received[0]["error"]
        # several scheduler loops later, the unpaused ingest DAG still has no run (today is past the window)
        assert client.runs("churn_ingest") == []
    finally:
        outcome = localairflow.stop(home, grace=20)
        admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{metadata}" WITH (FORCE)'))
        admin.dispose()
    assert set(outcome.values()) <= {"terminated", "killed"} and len(outcome) == 4, outcome
    assert localairflow.running(home) == {}
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)


def test_a_client_of_an_absent_api_server_says_where_it_looked() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(AirflowApiError, match=f"no Airflow api-server answers at {url}"):
        AirflowClient(url, "admin", "secret")
