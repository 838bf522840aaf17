"""POST /predict, GET /models/champion, model availability and hot swap, body limits, the prediction log."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from api.main import create_app
from churn import registry
from churn.gold import read_features
from churn.lake import Lake
from churn.live import events_of_user
from churn.pipeline import churn_probability
from churn.predlog import PREFIX
from tests.api.conftest import NEW_DAY, Published, path_of
from tests.conftest import LiveServer


def events_of(lake: Lake, msno: str) -> dict[str, Any]:
    return events_of_user(lake, msno, NEW_DAY)


def test_live_prediction_matches_the_nightly_score_by_lake_and_by_events(
    published: Published, small_lake: Lake
) -> None:
    msno = published.both
    with LiveServer(create_app()) as server:
        nightly = httpx.get(f"{server.url}/scores/{path_of(msno)}").json()
        by_lake = httpx.post(f"{server.url}/predict", json={"msno": msno, "as_of": NEW_DAY.isoformat()})
        body = events_of(small_lake, msno) | {"as_of": NEW_DAY.isoformat()}
        by_events = httpx.post(f"{server.url}/predict", json=body)
        default_day = httpx.post(f"{server.url}/predict", json={"msno": msno}).json()
    assert by_lake.status_code == 200, by_lake.text
    assert by_events.status_code == 200, by_events.text
    lake_p, events_p = by_lake.json(), by_events.json()
    assert lake_p["churn_probability"] == pytest.approx(nightly["churn_probability"], abs=1e-12)
    assert events_p["churn_probability"] == pytest.approx(nightly["churn_probability"], abs=1e-12)
    assert (lake_p["source"], events_p["source"]) == ("lake", "events")
    assert lake_p["model_version"] == nightly["model_version"] and lake_p["risk_band"] == nightly["risk_band"]
    assert default_day["as_of"] == "2017-03-31"  # the newest day in Silver, not the clock


def test_prediction_errors_name_the_problem(published: Published, small_lake: Lake) -> None:
    body = events_of(small_lake, published.both)
    body["transactions"][0]["is_auto_renew"] = 3
    with LiveServer(create_app()) as server:
        bad_event = httpx.post(f"{server.url}/predict", json=body)
        neither = httpx.post(f"{server.url}/predict", json={"as_of": "2017-03-31"})
        bad_msno = httpx.post(f"{server.url}/predict", json={"msno": "short"})
        unknown = httpx.post(f"{server.url}/predict", json={"msno": published.unknown, "as_of": "2017-03-31"})
        not_json = httpx.post(
            f"{server.url}/predict", content=b"{", headers={"content-type": "application/json"}
        )
    assert bad_event.status_code == 422
    assert bad_event.json()["detail"][0]["loc"] == ["body", "transactions", 0, "is_auto_renew"]
    assert neither.status_code == 422 and "give either msno" in neither.json()["detail"][0]["msg"]
    assert bad_msno.status_code == 422 and bad_msno.json()["detail"][0]["loc"] == ["body", "msno"]
    assert unknown.status_code == 404
    assert not_json.status_code == 422


def test_oversized_body_is_413(published: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_API_MAX_BODY_BYTES", "4096")
    big = b'{"msno": "' + b"x" * 10_000 + b'"}'

    def chunks() -> Any:
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    with LiveServer(create_app()) as server:
        declared = httpx.post(
            f"{server.url}/predict", content=big, headers={"content-type": "application/json"}
        )
        chunked = httpx.post(
            f"{server.url}/predict", content=chunks(), headers={"content-type": "application/json"}
        )
        small = httpx.post(f"{server.url}/predict", json={"msno": published.both, "as_of": "2017-03-31"})
    assert declared.status_code == 413 and declared.json() == {"detail": "request body over 4096 bytes"}
    assert chunked.status_code == 413
    assert small.status_code == 200


def test_champion_endpoint_and_alias_change_without_restart(
    published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_MODEL_REFRESH_SECONDS", "0.2")
    settings = published.settings
    client = registry.client(settings)
    first = registry.alias_version(settings, registry.CHAMPION)
    source = client.get_model_version(settings.model_name, str(first))
    copy = client.create_model_version(settings.model_name, source.source, run_id=source.run_id)
    try:
        with LiveServer(create_app()) as server:
            before = httpx.get(f"{server.url}/models/champion").json()
            registry.promote(settings, int(copy.version))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                after = httpx.get(f"{server.url}/models/champion").json()
                if after["version"] == int(copy.version):
                    break
                time.sleep(0.1)
            predicted = httpx.post(
                f"{server.url}/predict", json={"msno": published.both, "as_of": "2017-03-31"}
            )
    finally:
        registry.promote(settings, first)
    assert before["version"] == first and before["val_cohort"] == "2017-03"
    assert "val_log_loss" in before["metrics"] and "days_to_expiry" in before["features"]
    assert after["version"] == int(copy.version)
    assert predicted.json()["model_version"] == int(copy.version)


def test_no_loadable_model_keeps_scores_serving(
    published: Published, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    with LiveServer(create_app()) as server:
        predicted = httpx.post(f"{server.url}/predict", json={"msno": published.both})
        champion = httpx.get(f"{server.url}/models/champion")
        scores = httpx.get(f"{server.url}/scores/{path_of(published.both)}")
        ready = httpx.get(f"{server.url}/readyz")
    assert predicted.status_code == 503 and "has no champion" in predicted.json()["detail"]
    assert champion.status_code == 503
    assert scores.status_code == 200
    assert ready.status_code == 503 and ready.json()["model"].startswith("unavailable")


def test_predictions_are_logged_to_the_lake(published: Published, small_lake: Lake) -> None:
    before = len(small_lake.glob(f"{PREFIX}/as_of=2017-03-31/*.parquet"))
    with LiveServer(create_app()) as server:
        for _ in range(3):
            assert httpx.post(
                f"{server.url}/predict", json={"msno": published.both, "as_of": "2017-03-31"}
            ).is_success
    parts = small_lake.glob(f"{PREFIX}/as_of=2017-03-31/*.parquet")
    assert len(parts) == before + 1  # flushed once at shutdown
    newest = max(parts, key=lambda p: Path(small_lake.path(p)).stat().st_mtime)
    logged = small_lake.read_parquet(newest)
    assert logged.num_rows == 3
    assert set(logged["msno"].to_pylist()) == {published.both}
    features = read_features(small_lake, NEW_DAY)
    row = features.filter(pa.compute.equal(features["msno"], published.both))
    assert logged["days_to_expiry"][0].as_py() == row["days_to_expiry"][0].as_py()
    settings = published.settings
    model = registry.load_model(settings, "champion")
    assert logged["churn_probability"][0].as_py() == pytest.approx(
        churn_probability(model, row.to_pandas())[0]
    )


def test_prediction_log_keeps_rows_the_lake_refused(tmp_path: Path) -> None:
    from churn.predlog import PredictionLog

    class FlakyLake(Lake):
        fail = True

        def write_parquet(self, relative: str, data: Any, **kwargs: Any) -> None:
            if self.fail and "as_of=2017-03-02" in relative:
                raise OSError("lake unavailable")
            super().write_parquet(relative, data, **kwargs)

    lake = FlakyLake(str(tmp_path / "lake"))
    log = PredictionLog(lake, flush_rows=100)
    for day in (dt.date(2017, 3, 1), dt.date(2017, 3, 2)):
        log.append({"requested_at": dt.datetime(2017, 3, 3, tzinfo=dt.UTC), "source": "lake", "msno": None,
                    "as_of": day, "model_version": 1, "churn_probability": 0.1})  # fmt: skip
    with pytest.raises(OSError, match="lake unavailable"):
        log.flush()
    lake.fail = False
    assert log.flush() == 1  # only the refused day is written again: no duplicate of the first
    assert len(lake.glob(f"{PREFIX}/as_of=2017-03-01/*.parquet")) == 1
    assert len(lake.glob(f"{PREFIX}/as_of=2017-03-02/*.parquet")) == 1
