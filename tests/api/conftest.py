"""The API under test: real PostgreSQL with two published days, the small lake, a trained champion."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pyarrow as pa
import pytest

from churn.db import make_engine
from churn.features.gold import read_features
from churn.lake import Lake
from churn.migrations import upgrade
from churn.scores import scoredb
from churn.scores.scoring import score
from churn.settings import Settings

OLD_DAY = dt.date(2017, 3, 15)
NEW_DAY = dt.date(2017, 3, 31)


@dataclass
class Published:
    """What the API database holds: users scored on both days, a user scored only on the old day."""

    settings: Settings
    new_rows: int
    both: str
    old_only: str
    unknown: str = "A" * 43 + "="


def path_of(msno: str) -> str:
    """msno as a URL path segment (its `/` must be encoded)."""
    return quote(msno, safe="")


@pytest.fixture
def published(
    small_lake: Lake, champion_store: dict[str, str], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Published]:
    engine = make_engine(pg_url)
    upgrade(engine)
    settings = Settings(lake_url=small_lake.url, silver_buckets=4, dask_workers=1, database_url=pg_url,
                        **champion_store)  # fmt: skip
    new = score(small_lake, settings, NEW_DAY, "score-api-new")
    old_features = read_features(small_lake, NEW_DAY)["msno"].to_pylist()
    # the old day: every user of the new day with made-up probabilities, plus one user only scored then
    new_users = set(_scored(engine, NEW_DAY))
    old_only = next(m for m in old_features if m not in new_users)
    both = sorted(new_users)[0]
    run = scoredb.ScoreRun(
        run_id="score-api-old", score_date=OLD_DAY, model_name="kkbox-churn", model_version=1
    )
    users = [*sorted(new_users), old_only]
    batch = pa.record_batch(
        [pa.array(users), pa.array([0.5] * len(users)), pa.array(["medium"] * len(users))],
        names=list(scoredb.SCORE_COLUMNS),
    )
    with scoredb.date_lock(engine, OLD_DAY):
        scoredb.begin_run(engine, run)
        scoredb.publish(engine, run, [batch], 3650)
    engine.dispose()
    for key, value in {"CHURN_DATABASE_URL": pg_url, "CHURN_LAKE_URL": small_lake.url,
                       "CHURN_MLFLOW_TRACKING_URI": champion_store["mlflow_tracking_uri"],
                       "CHURN_MLFLOW_ARTIFACT_LOCATION": champion_store["mlflow_artifact_location"],
                       "CHURN_SILVER_BUCKETS": "4"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    # the explicit opt-out, for tests about something else (tests/api/test_auth.py covers the keys)
    monkeypatch.setenv("CHURN_API_ALLOW_ANONYMOUS", "true")
    yield Published(settings, new.rows, both, old_only)


def _scored(engine: object, day: dt.date) -> list[str]:
    from sqlalchemy import text

    with engine.connect() as connection:  # type: ignore[attr-defined]
        return list(
            connection.execute(
                text("SELECT msno FROM churn_scores WHERE score_date = :d"), {"d": day}
            ).scalars()
        )


@pytest.fixture
def churn_log() -> Iterator[list[logging.LogRecord]]:
    """Every record the `churn` loggers emit during the test (they do not propagate to the root)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("churn")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
