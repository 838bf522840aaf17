"""`churn score` end to end: the champion scores every active user of the lake into the database."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import text

from churn.data import kkbox
from churn.data.ingest import ingest
from churn.data.silver import read_silver
from churn.db import make_engine
from churn.errors import ChurnError
from churn.features.gold import build_gold_features, features_prefix, read_features
from churn.features.population import active_mask
from churn.lake import Lake
from churn.migrations import upgrade
from churn.model import registry
from churn.model.champion import load_champion
from churn.model.pipeline import churn_probability
from churn.scores.bands import risk_bands
from churn.scores.scoring import score
from churn.settings import Settings

DAY = dt.date(2017, 3, 31)


@pytest.fixture
def settings(small_lake: Lake, champion_store: dict[str, str], db_url: str) -> Iterator[Settings]:
    engine = make_engine(db_url)
    upgrade(engine)
    engine.dispose()
    yield Settings(lake_url=small_lake.url, silver_buckets=4, dask_workers=1, database_url=db_url,
                   score_retention_days=30, **champion_store)  # fmt: skip


def test_every_active_user_is_scored_with_the_champion(small_lake: Lake, settings: Settings) -> None:
    report = score(small_lake, settings, DAY, "score-test-1")
    features = read_features(small_lake, DAY)
    active = features.filter(pa.array(active_mask(features, settings.active_grace_days)))
    champion = registry.alias_version(settings, registry.CHAMPION)
    assert report.rows == active.num_rows > 0
    assert report.users_with_features == features.num_rows > active.num_rows
    assert report.model_version == champion
    assert sum(report.bands.values()) == report.rows
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT msno, churn_probability, model_version, run_id "
                "FROM churn_scores WHERE score_date = :d"
            ),
            {"d": DAY},
        ).all()
        run = (
            connection.execute(text("SELECT * FROM score_runs WHERE run_id = 'score-test-1'"))
            .mappings()
            .one()
        )
    engine.dispose()
    assert {r.msno for r in rows} == set(active["msno"].to_pylist())
    assert {(r.model_version, r.run_id) for r in rows} == {(champion, "score-test-1")}
    probabilities = churn_probability(load_champion(settings).model, active.to_pandas())
    expected = dict(zip(active["msno"].to_pylist(), probabilities, strict=True))
    assert all(abs(r.churn_probability - expected[r.msno]) < 1e-12 for r in rows)
    assert run["status"] == "published" and run["rows_scored"] == report.rows
    assert run["model_name"] == settings.model_name and run["feature_spec_hash"]
    assert run["seconds_predict"] is not None and run["data_version"]


def test_a_second_run_of_the_date_replaces_the_first(small_lake: Lake, settings: Settings) -> None:
    first = score(small_lake, settings, DAY, "score-test-a")
    second = score(small_lake, settings, DAY, "score-test-b")
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        counts = connection.execute(
            text("SELECT run_id, count(*) FROM churn_scores WHERE score_date = :d GROUP BY run_id"),
            {"d": DAY},
        ).all()
        status = dict(connection.execute(text("SELECT run_id, status FROM score_runs")).all())
    engine.dispose()
    assert [tuple(c) for c in counts] == [("score-test-b", second.rows)]
    assert first.rows == second.rows
    assert status == {"score-test-a": "superseded", "score-test-b": "published"}


def _published(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The dates served and every score_runs row's status."""
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        dates = connection.execute(text("SELECT DISTINCT score_date FROM churn_scores ORDER BY 1")).scalars()
        days = [str(d) for d in dates]
        status = dict(connection.execute(text("SELECT run_id, status FROM score_runs")).all())
    engine.dispose()
    return days, status


def test_a_date_after_silver_is_refused_and_every_published_date_stays(
    small_lake: Lake, settings: Settings
) -> None:
    """The tiny lake ends 2017-03-31; scoring 2017-07-15 used to publish long expiries as "active" and
    drop every date before 2017-04-16 by retention."""
    score(small_lake, settings, DAY, "score-keep")
    future = dt.date(2017, 7, 15)
    with pytest.raises(ChurnError) as refused:
        score(small_lake, settings, future, "score-future")
    assert "2017-07-15" in str(refused.value) and "2017-03-31" in str(refused.value)
    assert _published(settings) == (["2017-03-31"], {"score-keep": "published"})
    assert not small_lake.exists(features_prefix(future))


def test_a_backfill_older_than_the_retention_window_is_refused_before_writing(
    small_lake: Lake, settings: Settings
) -> None:
    score(small_lake, settings, DAY, "score-newest")
    old = DAY - dt.timedelta(days=settings.score_retention_days)  # dropped at once if published
    with pytest.raises(ChurnError, match="CHURN_SCORE_RETENTION_DAYS") as refused:
        score(small_lake, settings, old, "score-too-old")
    assert old.isoformat() in str(refused.value) and DAY.isoformat() in str(refused.value)
    assert _published(settings) == (["2017-03-31"], {"score-newest": "published"})


@pytest.fixture
def own_lake(small_lake: Lake, settings: Settings, tmp_path: Path) -> tuple[Lake, Settings]:
    """A copy of the small lake this test may change (new drops), with settings pointing at it."""
    shutil.copytree(small_lake.url, tmp_path / "own")
    lake = Lake(str(tmp_path / "own"))
    return lake, settings.model_copy(update={"lake_url": lake.url})


def _late_drop(lake: Lake, settings: Settings) -> None:
    """A late transaction dated on the score date, delivered and ingested after the features were built."""
    msno = read_silver(lake, "users", 0)["msno"][0].as_py()
    header = ",".join(kkbox.TABLES["transactions"].column_names)
    path = lake.path(f"bronze/transactions/dt={DAY}/transactions.csv")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    expiry = DAY + dt.timedelta(days=30)
    Path(path).write_text(f"{header}\n{msno},41,30,149,149,1,{DAY:%Y%m%d},{expiry:%Y%m%d},0\n")
    ingest(lake, settings, "late-drop")


def test_scoring_a_named_build_uses_it_without_building(own_lake: tuple[Lake, Settings]) -> None:
    lake, settings = own_lake
    built = build_gold_features(lake, settings, DAY, "features-validated")
    report = score(lake, settings, DAY, "score-named", features_run_id="features-validated")
    assert report.features_run_id == "features-validated" and report.rows > 0
    assert lake.read_json(f"{features_prefix(DAY)}/_manifest.json") == built  # not rebuilt


def test_silver_changed_after_the_validated_build_is_refused_and_nothing_is_published(
    own_lake: tuple[Lake, Settings],
) -> None:
    """A late drop ingested between validate_gold and score: scoring the named build would score stale
    features, rebuilding would score features no one validated; it refuses and writes nothing."""
    lake, settings = own_lake
    built = build_gold_features(lake, settings, DAY, "features-validated")
    _late_drop(lake, settings)
    with pytest.raises(ChurnError) as refused:
        score(lake, settings, DAY, "score-stale", features_run_id="features-validated")
    message = str(refused.value)
    assert DAY.isoformat() in message and "features-validated" in message and "Silver" in message
    assert "churn features" in message  # what to run
    assert _published(settings) == ([], {})  # no score, no run row
    assert lake.read_json(f"{features_prefix(DAY)}/_manifest.json") == built  # nothing rebuilt


def test_another_build_than_the_validated_one_is_refused(own_lake: tuple[Lake, Settings]) -> None:
    lake, settings = own_lake
    build_gold_features(lake, settings, DAY, "features-validated")
    build_gold_features(lake, settings, DAY, "features-adhoc")  # rebuilt by someone after the check
    with pytest.raises(ChurnError) as refused:
        score(lake, settings, DAY, "score-other", features_run_id="features-validated")
    assert "features-validated" in str(refused.value) and "features-adhoc" in str(refused.value)
    assert _published(settings) == ([], {})


def test_champion_of_another_feature_spec_is_refused(small_lake: Lake, settings: Settings) -> None:
    client = registry.client(settings)
    version = str(registry.alias_version(settings, registry.CHAMPION))
    client.set_model_version_tag(settings.model_name, version, "feature_spec_hash", "0123456789abcdef")
    try:
        with pytest.raises(ChurnError, match="trained on feature spec 0123456789abcdef"):
            score(small_lake, settings, DAY, "score-test-spec")
    finally:
        from churn.features.spec import SPEC_HASH

        client.set_model_version_tag(settings.model_name, version, "feature_spec_hash", SPEC_HASH)


def test_no_champion_is_a_clear_error(small_lake: Lake, tmp_path: Path, sqlite_url: str) -> None:
    empty = Settings(lake_url=small_lake.url, database_url=sqlite_url,
                     mlflow_tracking_uri=f"sqlite:///{tmp_path / 'none.db'}")  # fmt: skip
    with pytest.raises(ChurnError, match="has no champion yet: run `churn train"):
        score(small_lake, empty, DAY, "score-none")


def test_risk_bands_and_their_boundaries() -> None:
    p = np.array([0.0, 0.29, 0.3, 0.59, 0.6, 1.0])
    assert risk_bands(p, [0.3, 0.6]).to_pylist() == ["low", "low", "medium", "medium", "high", "high"]
    assert risk_bands(p, [0.5]).to_pylist() == ["low", "low", "low", "high", "high", "high"]


def test_active_population_rule() -> None:
    table = pa.table({
        "days_to_expiry": [10.0, -30.0, -31.0, np.nan, np.nan],
        "days_since_transaction": [5.0, 40.0, 40.0, 30.0, 31.0],
    })  # fmt: skip
    assert active_mask(table, 30).tolist() == [True, True, False, True, False]
