"""Weekly monitoring end to end: drift of the week's scoring inputs against the champion's reference, the
report in the lake, the summary rows in PostgreSQL, realised performance of a matured cohort."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score
from sqlalchemy import text

from api.main import create_app
from churn.data.ingest import ingest
from churn.db import make_engine
from churn.errors import ChurnError
from churn.features.gold import read_features, read_labels
from churn.lake import Lake
from churn.migrations import upgrade
from churn.model import registry
from churn.monitoring.drift import LIVE_MIN_ROWS, load_reference
from churn.monitoring.predlog import PREFIX as PREDICTION_LOG
from churn.monitoring.predlog import PredictionLog
from churn.monitoring.weekly import MonitoringAlertError, check, report_prefix, weekly
from churn.scores.scoring import score
from churn.settings import Settings
from churn.synth.profiles import get_profile
from churn.synth.writer import write_daily
from tests.conftest import LiveServer

SMALL_PROFILE = get_profile("tiny", users=3000, days=240)  # the small lake's profile and seed
SMALL_SEED = 5
HTML_LIMIT = 10 * 1024 * 1024


def _settings(lake: Lake, store: dict[str, str], url: str, **extra: object) -> Settings:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return Settings(lake_url=lake.url, silver_buckets=4, dask_workers=1, database_url=url, **store,
                    **extra)  # fmt: skip


def _serve(settings: Settings, store: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    """The API over this database, lake and registry (lifespan running)."""
    for key, value in {"CHURN_DATABASE_URL": settings.database_url, "CHURN_LAKE_URL": settings.lake_url,
                       "CHURN_MLFLOW_TRACKING_URI": store["mlflow_tracking_uri"],
                       "CHURN_MLFLOW_ARTIFACT_LOCATION": store["mlflow_artifact_location"],
                       "CHURN_SILVER_BUCKETS": "4", "CHURN_API_ALLOW_ANONYMOUS": "true"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    return LiveServer(create_app())


def _log_live_predictions(lake: Lake, day: dt.date, rows: int) -> None:
    """`rows` live predictions as the API logs them, for users of the day's Gold features; `age` missing
    in every one (as raw events without a member row give)."""
    features = read_features(lake, day).to_pandas().head(rows)
    log = PredictionLog(lake, flush_rows=10_000)
    for record in features.to_dict("records"):
        record.update(requested_at=dt.datetime(2017, 4, 7, 12, tzinfo=dt.UTC), source="events", as_of=day,
                      model_version=1, churn_probability=0.2, age=None)  # fmt: skip
        log.append(record)
    log.flush()


def _week(lake: Lake, settings: Settings, end: dt.date, strength: float, live_rows: int = 0) -> dict:
    """Drops for the week ending `end` (listening shifted by `strength`), ingested, scored on its last
    day, live predictions logged, monitored."""
    write_daily(lake, SMALL_PROFILE, SMALL_SEED, end - dt.timedelta(days=6), end, drift=strength)
    ingest(lake, settings, f"ingest-{end}")
    score(lake, settings, end, f"score-{end}")
    if live_rows:
        _log_live_predictions(lake, end, live_rows)
    return weekly(lake, settings, end, f"drift-{end}", require_last_night=True)


def test_injected_drift_is_flagged_and_a_stable_week_is_not(
    small_lake: Lake, champion_store: dict[str, str], pg_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    shutil.copytree(small_lake.url, tmp_path / "lake")  # daily drops change Silver: not in the shared lake
    lake = Lake(str(tmp_path / "lake"))
    settings = _settings(lake, champion_store, pg_url)

    stable = _week(lake, settings, dt.date(2017, 4, 7), 0.0, live_rows=200)
    drifted = _week(lake, settings, dt.date(2017, 4, 14), 0.6, live_rows=LIVE_MIN_ROWS - 1)

    assert not stable["scoring"]["dataset_drift"] and not stable["alert"]
    check(stable)  # nothing to say
    assert drifted["scoring"]["dataset_drift"] and drifted["alert"]
    assert drifted["scoring"]["share"] >= settings.drift_share_threshold > stable["scoring"]["share"]
    assert {"secs_7d", "active_days_7d"} <= set(drifted["scoring"]["drifted"])
    # live inputs: compared when there are enough, without the feature they never carry
    assert stable["live"] is not None and stable["live"]["rows_current"] == 200
    assert "age" not in stable["live"]["distances"] and "age" in stable["scoring"]["distances"]
    assert drifted["live"] is None  # too few to say anything
    assert lake.exists(f"{report_prefix(dt.date(2017, 4, 7))}/live.html")
    assert not lake.exists(f"{report_prefix(dt.date(2017, 4, 14))}/live.html")
    with pytest.raises(MonitoringAlertError, match="features drifted") as alert:
        check(drifted)
    assert "secs_7d" in str(alert.value) and "2017-04-14" in str(alert.value)

    engine = make_engine(pg_url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM drift_reports ORDER BY week_ending")).mappings().all()
    engine.dispose()
    assert [r["week_ending"] for r in rows] == [dt.date(2017, 4, 7), dt.date(2017, 4, 14)]
    assert [r["dataset_drift"] for r in rows] == [False, True]
    assert [r["live_rows"] for r in rows] == [200, LIVE_MIN_ROWS - 1]
    assert rows[0]["live_drift_share"] == pytest.approx(stable["live"]["share"])
    assert rows[1]["drifted_features"] == drifted["scoring"]["drifted"]
    assert rows[1]["drift_share"] == pytest.approx(drifted["scoring"]["share"])
    assert rows[1]["score_dates"] == [dt.date(2017, 4, 14)]
    assert rows[1]["model_version"] == registry.alias_version(settings, registry.CHAMPION)
    assert rows[1]["reference_rows"] == len(load_reference(settings, rows[1]["model_version"]))
    for week in (dt.date(2017, 4, 7), dt.date(2017, 4, 14)):
        prefix = report_prefix(week)
        assert 0 < lake.size(f"{prefix}/index.html") < HTML_LIMIT
        assert json.loads(lake.read_text(f"{prefix}/summary.json"))["week_ending"] == week.isoformat()
    assert rows[1]["report_uri"] == lake.uri(f"{report_prefix(dt.date(2017, 4, 14))}/index.html")

    again = weekly(lake, settings, dt.date(2017, 4, 14), "drift-rerun")  # a rerun replaces the week's row
    engine = make_engine(pg_url)
    with engine.connect() as connection:
        reruns = connection.execute(text("SELECT churn_run_id FROM drift_reports ORDER BY week_ending"))
        assert reruns.scalars().all() == ["drift-2017-04-07", "drift-rerun"]
    engine.dispose()
    assert again["scoring"]["drifted"] == drifted["scoring"]["drifted"]

    with _serve(settings, champion_store, monkeypatch) as server:
        latest = httpx.get(f"{server.url}/monitoring/drift/latest")
    assert latest.status_code == 200
    body = latest.json()
    assert body["week_ending"] == "2017-04-14" and body["dataset_drift"] is True and body["alert"] is True
    assert body["drifted_features"] == drifted["scoring"]["drifted"]
    assert body["score_dates"] == ["2017-04-14"] and body["report_uri"].endswith("week=2017-04-14/index.html")


def test_realised_performance_of_a_matured_cohort(
    small_lake: Lake, champion_store: dict[str, str], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cohort 2017-02 (expiries in February) is decided by 2017-03-30; the small lake reaches 2017-03-31.
    Its eve (2017-01-31) is scored, so the week ending 2017-03-31 evaluates it; 2017-03 is not mature."""
    settings = _settings(small_lake, champion_store, db_url)
    score(small_lake, settings, dt.date(2017, 1, 31), "score-eve")
    score(small_lake, settings, dt.date(2017, 3, 31), "score-week")
    summary = weekly(small_lake, settings, dt.date(2017, 3, 31), "drift-perf")

    assert [c["cohort"] for c in summary["performance"]] == ["2017-02"]
    engine = make_engine(db_url)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM model_performance")).mappings().one()
        scores = dict(connection.execute(
            text("SELECT msno, churn_probability FROM churn_scores WHERE score_date = '2017-01-31'")
        ).all())  # fmt: skip
    engine.dispose()
    labels = read_labels(small_lake, "2017-02").to_pandas()
    labels = labels[labels["msno"].isin(scores)]
    y = labels["is_churn"].to_numpy()
    p = np.array([scores[m] for m in labels["msno"]])
    champion = registry.alias_version(settings, registry.CHAMPION)
    validation = float(registry.client(settings).get_model_version(settings.model_name, str(champion)).tags[
        "val_log_loss"])  # fmt: skip
    assert row["cohort"] == "2017-02" and str(row["score_date"]) == "2017-01-31"
    assert row["users"] == len(labels) > 100 and row["model_version"] == champion
    assert row["log_loss"] == pytest.approx(log_loss(y, p), rel=1e-9)
    assert row["roc_auc"] == pytest.approx(roc_auc_score(y, p), rel=1e-9)
    assert row["churn_rate"] == pytest.approx(y.mean())
    assert row["validation_log_loss"] == pytest.approx(validation)
    assert row["degradation"] == pytest.approx(row["log_loss"] / validation - 1)
    assert bool(row["degraded"]) == (row["degradation"] > settings.performance_degradation_threshold)
    engine = make_engine(db_url)
    with engine.connect() as connection:  # the week's drift row on either database
        week = connection.execute(text("SELECT week_ending, drifted_features FROM drift_reports")).one()
    engine.dispose()
    assert str(week.week_ending) == "2017-03-31" and week.drifted_features is not None
    with _serve(settings, champion_store, monkeypatch) as server:
        served = httpx.get(f"{server.url}/monitoring/performance").json()["cohorts"]
    assert [c["cohort"] for c in served] == ["2017-02"]
    assert served[0]["log_loss"] == pytest.approx(row["log_loss"]) and served[0]["users"] == row["users"]


def test_no_champion_or_no_scores_in_the_week_are_clear_errors(
    small_lake: Lake, champion_store: dict[str, str], pg_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from churn.model.champion import ModelUnavailableError
    from churn.monitoring.drift import DriftError

    settings = _settings(small_lake, {**champion_store, "mlflow_tracking_uri": f"sqlite:///{tmp_path}/m.db",
                                      "mlflow_artifact_location": str(tmp_path / "a")}, pg_url)  # fmt: skip
    score_settings = _settings(small_lake, champion_store, pg_url)
    score(small_lake, score_settings, dt.date(2017, 3, 30), "score-x")
    with pytest.raises(ModelUnavailableError, match="kkbox-churn has no champion yet"):  # the one loader's
        weekly(small_lake, settings, dt.date(2017, 3, 31), "drift-x")
    with pytest.raises(DriftError, match=r"last night \(2017-03-31\) is not published yet"):
        weekly(small_lake, score_settings, dt.date(2017, 3, 31), "drift-z", require_last_night=True)
    with pytest.raises(ChurnError, match=r"2017-04-01 is after Silver's newest day 2017-03-31"):
        weekly(small_lake, score_settings, dt.date(2017, 4, 1), "drift-future")  # a week Silver has not seen
    assert not small_lake.exists(report_prefix(dt.date(2017, 4, 1)))
    with pytest.raises(DriftError, match=r"no published scoring run in the week 2017-03-01\.\.2017-03-07"):
        weekly(small_lake, score_settings, dt.date(2017, 3, 7), "drift-y")
    with _serve(score_settings, champion_store, monkeypatch) as server:
        missing = httpx.get(f"{server.url}/monitoring/drift/latest")
        empty = httpx.get(f"{server.url}/monitoring/performance")
    assert missing.status_code == 404 and "no drift report yet" in missing.json()["detail"]
    engine = make_engine(pg_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM drift_reports")).scalar() == 0
    engine.dispose()
    assert empty.status_code == 200 and empty.json() == {"cohorts": []}


def test_the_weekly_run_prunes_the_prediction_log_past_its_retention(
    small_lake: Lake, champion_store: dict[str, str], pg_url: str, tmp_path: Path
) -> None:
    """Retention 30 days counted back from the week's end (2017-03-31), never from the clock: the days up
    to 2017-03-01 go, 2017-03-02 on stay, and the summary says how many partitions went."""
    shutil.copytree(Path(small_lake.url) / "silver", tmp_path / "lake" / "silver")
    lake = Lake(str(tmp_path / "lake"))
    settings = _settings(lake, champion_store, pg_url, prediction_log_retention_days=30)
    end = dt.date(2017, 3, 31)
    score(lake, settings, end, "score-prune")
    features = read_features(lake, end).to_pandas().head(3)
    log = PredictionLog(lake, flush_rows=10_000)
    logged = [dt.date(2016, 12, 1), dt.date(2017, 3, 1), dt.date(2017, 3, 2), end]
    for day in logged:
        for record in features.to_dict("records"):
            record.update(requested_at=dt.datetime(2017, 4, 1, tzinfo=dt.UTC), source="lake", as_of=day,
                          model_version=1, churn_probability=0.2)  # fmt: skip
            log.append(record)
    log.flush()
    assert len(lake.glob(f"{PREDICTION_LOG}/as_of=*")) == 4

    summary = weekly(lake, settings, end, "drift-prune")

    assert lake.glob(f"{PREDICTION_LOG}/as_of=*") == [
        f"{PREDICTION_LOG}/as_of=2017-03-02", f"{PREDICTION_LOG}/as_of=2017-03-31"]  # fmt: skip
    expected = {"retention_days": 30, "kept_from": "2017-03-02", "removed_partitions": 2}
    assert summary["prediction_log"] == expected
    assert json.loads(lake.read_text(f"{report_prefix(end)}/summary.json"))["prediction_log"] == expected
    assert weekly(lake, settings, end, "drift-prune-again")["prediction_log"]["removed_partitions"] == 0
