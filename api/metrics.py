"""Prometheus metrics of the API, correct with several uvicorn workers.

With `PROMETHEUS_MULTIPROC_DIR` set (the Makefile and the image set it, pointing at an emptied folder),
every worker writes its samples there and `/metrics` aggregates all workers; without it, metrics are per
process. Labels use the route template (`/scores/{msno:path}`), never the raw path, so cardinality stays
bounded.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

REQUESTS = Counter("churn_api_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "churn_api_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
PREDICTIONS = Counter("churn_api_predictions_total", "Live predictions", ["source"])
PREDICTIONS_BY_VERSION = Counter(
    "churn_api_predictions_by_version_total", "Live predictions by the model version that answered",
    ["version", "role"],
)  # fmt: skip
SCORE_LOOKUPS = Counter("churn_api_score_lookups_total", "GET /scores/{msno} lookups", ["result"])
MODEL_VERSION = Gauge(
    "churn_api_model_version", "Version of the champion being served (0: none)", multiprocess_mode="livemax"
)


class DatabaseGauges:
    """Gauges read from the database at each scrape (one worker answers a scrape; a value kept in the
    multiprocess files would be whatever that worker saw last): the age of the newest published scores
    and the newest week's drift share. Absent when the database does not answer (the `up`-style alert on
    the scrape covers that)."""

    def __init__(self, scores_age_days: int | None, drift_share: float | None) -> None:
        self.scores_age_days = scores_age_days
        self.drift_share = drift_share

    def collect(self) -> list[GaugeMetricFamily]:
        families = []
        if self.scores_age_days is not None:
            age = GaugeMetricFamily(
                "churn_scores_age_days", "Days since the newest published score date (1 on a healthy morning)"
            )
            age.add_metric([], self.scores_age_days)
            families.append(age)
        if self.drift_share is not None:
            drift = GaugeMetricFamily(
                "churn_drift_share", "Share of drifted features in the newest weekly report"
            )
            drift.add_metric([], self.drift_share)
            families.append(drift)
        return families


def render(gauges: DatabaseGauges | None = None) -> tuple[bytes, str]:
    """The exposition text: every worker's samples in multiprocess mode, else this process's, then the
    database gauges of this scrape."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest()
    if gauges is not None:
        extra = CollectorRegistry(auto_describe=False)
        extra.register(gauges)  # a custom collector (collect() only)
        body += generate_latest(extra)
    return body, CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_and_record(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            REQUESTS.labels(method, template, str(status[0])).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - started)
