"""Faults the API must ride out: a champion alias moved to a version whose artifact is missing, a database
restart that closed every pooled connection."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from churn.model import registry
from churn.model.serving import ChampionHolder
from churn.settings import Settings
from tests.api.conftest import Published
from tests.conftest import LiveServer


@pytest.fixture
def broken_champion(published: Published, tmp_path: Path) -> Iterator[tuple[int, int, str]]:
    """A new version whose artifact folder is gone; yields (serving version, broken version, its path).
    The alias is moved by the test and put back here; the broken version is deleted."""
    settings = published.settings
    client = registry.client(settings)
    good = registry.alias_version(settings, registry.CHAMPION)
    assert good is not None
    folder = tmp_path / "broken-artifact"
    shutil.copytree(client.get_model_version_download_uri(settings.model_name, str(good)).removeprefix("file://"),
                    folder)  # fmt: skip
    details = client.get_model_version(settings.model_name, str(good))
    broken = int(
        client.create_model_version(settings.model_name, folder.as_uri(), run_id=details.run_id).version
    )
    shutil.rmtree(folder)
    try:
        yield good, broken, str(folder)
    finally:
        client.set_registered_model_alias(settings.model_name, registry.CHAMPION, str(good))
        client.delete_model_version(settings.model_name, str(broken))


def _move_alias(settings: Settings, version: int) -> None:
    registry.client(settings).set_registered_model_alias(settings.model_name, registry.CHAMPION, str(version))


def test_running_and_fresh_holders_serve_the_last_good_champion(
    published: Published, broken_champion: tuple[int, int, str], churn_log: list[logging.LogRecord]
) -> None:
    good, broken, folder = broken_champion
    running = ChampionHolder(published.settings)
    running.refresh()
    _move_alias(published.settings, broken)
    running.refresh()
    fresh = ChampionHolder(published.settings)
    fresh.refresh()
    for holder in (fresh, running):
        assert holder.current().version == good
        assert holder.status() == f"kkbox-churn v{good}; v{broken} refused"
        assert holder.refused is not None and holder.refused.version == broken
        assert folder in holder.refused.reason
    assert any(f"v{broken}" in r.getMessage() and folder in r.getMessage() for r in churn_log)


def test_readyz_and_champion_endpoint_tell_the_truth_on_every_worker(
    published: Published, broken_champion: tuple[int, int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, broken, folder = broken_champion
    monkeypatch.setenv("CHURN_MODEL_REFRESH_SECONDS", "0.2")
    with LiveServer(create_app()) as running:
        assert httpx.get(f"{running.url}/readyz").json()["model"] == f"kkbox-churn v{good}"
        _move_alias(published.settings, broken)
        with LiveServer(create_app()) as fresh:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if "refused" in httpx.get(f"{running.url}/readyz").json()["model"]:
                    break
                time.sleep(0.1)
            answers = [
                (httpx.get(f"{server.url}/readyz"), httpx.get(f"{server.url}/models/champion"))
                for server in (running, fresh)
            ]
    for ready, champion in answers:
        assert ready.status_code == 200
        assert ready.json()["model"] == f"kkbox-churn v{good}; v{broken} refused"
        assert champion.json()["version"] == good
        assert champion.json()["refused"].startswith(f"v{broken}")
        assert folder not in ready.text and folder not in champion.text


def test_first_request_after_the_database_dropped_every_connection_is_served(published: Published) -> None:
    from sqlalchemy import create_engine, text

    from tests.api.conftest import path_of

    target = f"/scores/{path_of(published.both)}"
    admin = create_engine(published.settings.database_url, isolation_level="AUTOCOMMIT")
    with LiveServer(create_app()) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert [client.get(target).status_code for _ in range(3)] == [200, 200, 200]
        with admin.connect() as connection:
            ended = connection.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )).scalar()  # fmt: skip
        time.sleep(0.5)  # a restart takes longer: the closed sockets have reached the server by then
        after = [client.get(target).status_code for _ in range(3)]
        ready = client.get("/readyz").status_code
    admin.dispose()
    assert ended >= 1
    assert after == [200, 200, 200] and ready == 200
