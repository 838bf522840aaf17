"""GET /metrics: request counts and latencies by route and status, predictions by source, score lookups,
the served model version; and counts that add up across several uvicorn workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_app
from tests.api.conftest import Published, path_of
from tests.conftest import LiveServer, free_port


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_predictions_and_lookups(published: Published) -> None:
    route = "/scores/{msno:path}"
    with LiveServer(create_app()) as server:
        before = httpx.get(f"{server.url}/metrics").text
        for _ in range(3):
            httpx.get(f"{server.url}/scores/{path_of(published.both)}")
        httpx.get(f"{server.url}/scores/{path_of(published.unknown)}")
        httpx.post(f"{server.url}/predict", json={"msno": published.both, "as_of": "2017-03-31"})
        champion = httpx.get(f"{server.url}/models/champion").json()["version"]
        after = httpx.get(f"{server.url}/metrics").text

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("churn_api_requests_total", method="GET", route=route, status="200") == 3
    assert delta("churn_api_requests_total", method="GET", route=route, status="404") == 1
    assert delta("churn_api_request_seconds_count", method="GET", route=route) == 4
    assert delta("churn_api_score_lookups_total", result="hit") == 3
    assert delta("churn_api_score_lookups_total", result="miss") == 1
    assert delta("churn_api_predictions_total", source="lake") == 1
    assert value(after, "churn_api_model_version") == champion


def test_counts_add_up_across_two_workers(published: Published, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:app",
            "--port",
            str(port),
            "--workers",
            "2",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        for _ in range(40):
            with httpx.Client() as client:  # a new connection each time: both workers get requests
                assert client.get(f"{url}/scores/{path_of(published.both)}").status_code == 200
        scrapes = [httpx.get(f"{url}/metrics").text for _ in range(4)]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    for text in scrapes:  # whichever worker answers the scrape, it reports every worker's requests
        assert (
            value(text, "churn_api_requests_total", method="GET", route="/scores/{msno:path}", status="200")
            == 40
        )
        assert value(text, "churn_api_score_lookups_total", result="hit") == 40
    assert len(list(metrics_dir.glob("counter_*.db"))) >= 2  # both workers recorded samples
