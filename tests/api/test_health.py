"""Health endpoints over HTTP with the lifespan running, against real PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from api.main import create_app
from tests.api.conftest import Published
from tests.conftest import LiveServer


def test_healthz_and_readyz_with_database_and_model(published: Published) -> None:
    with LiveServer(create_app()) as server:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ok",
            "database": "ok",
            "model": "kkbox-churn v1",
            "auth": "anonymous",
        }


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
