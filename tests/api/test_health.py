"""Health endpoints over HTTP with the lifespan running, against real PostgreSQL."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from api.main import create_app
from churn.scores.scorereads import freshness
from tests.api.conftest import NEW_DAY, Published
from tests.api.test_metrics import value
from tests.conftest import LiveServer


def test_healthz_and_readyz_with_database_and_model(published: Published) -> None:
    app = create_app()
    app.state.today = lambda: NEW_DAY + dt.timedelta(days=1)  # the morning after the newest night
    with LiveServer(app) as server:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ok",
            "database": "ok",
            "model": "kkbox-churn v1",
            "auth": "anonymous",
            "scores": "ok: 2017-03-31, 1 day old",
        }


def test_readyz_and_metrics_say_when_no_night_was_published(published: Published) -> None:
    """Three days after the newest published night (limit CHURN_SCORES_MAX_AGE_DAYS=2): readiness stays
    200 (stale scores are still served) and says stale; /metrics carries the age the alert rule reads."""
    app = create_app()
    app.state.today = lambda: NEW_DAY + dt.timedelta(days=3)
    with LiveServer(app) as server:
        ready = httpx.get(f"{server.url}/readyz")
        metrics = httpx.get(f"{server.url}/metrics").text
    assert ready.status_code == 200
    assert ready.json()["scores"] == "stale: 2017-03-31, 3 days old (limit 2)"
    assert value(metrics, "churn_scores_age_days") == 3.0
    assert "churn_drift_share" not in metrics  # no weekly report yet: absent, not 0


def test_freshness_with_nothing_published_is_stale() -> None:
    reading = freshness(None, NEW_DAY, 2)
    assert reading.stale and reading.describe() == "stale: none published"
    assert not freshness(NEW_DAY, NEW_DAY + dt.timedelta(days=2), 2).stale


def test_readyz_is_503_json_while_database_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/absent")
    monkeypatch.setenv("CHURN_API_ALLOW_ANONYMOUS", "true")
    with LiveServer(create_app()) as server:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        ready = httpx.get(f"{server.url}/readyz", timeout=15)
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable"
        assert body["database"] == "unavailable"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_bad_setting_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_DASK_WORKERS", "none")
    with pytest.raises(RuntimeError, match="start-up"):
        LiveServer(create_app()).__enter__()
