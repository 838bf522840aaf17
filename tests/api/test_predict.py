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
from bench.common import events_of_user
from churn.features.gold import read_features
from churn.lake import Lake
from churn.model import registry
from churn.model.pipeline import churn_probability
from churn.monitoring.predlog import PREFIX
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
    from churn.monitoring.predlog import PredictionLog

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


def _log_days(lake: Lake) -> set[str]:
    return {p.split("as_of=")[1].split("/")[0] for p in lake.glob(f"{PREFIX}/as_of=*/*.parquet")}


def _post_raw(url: str, content: str) -> httpx.Response:
    return httpx.post(
        f"{url}/predict", content=content.encode(), headers={"content-type": "application/json"}
    )


def test_as_of_after_the_data_is_refused_and_not_logged(published: Published, small_lake: Lake) -> None:
    """By msno as_of may not pass Silver's newest day, by events not the newest event: a 422 naming both
    dates, and nothing reaches the prediction log."""
    events = events_of(small_lake, published.both)
    newest = max(
        [str(t["transaction_date"]) for t in events["transactions"]]
        + [str(r["date"]) for r in events["user_logs"]]
    )
    newest_event = dt.date(int(newest[:4]), int(newest[4:6]), int(newest[6:]))
    later = (newest_event + dt.timedelta(days=1)).isoformat()
    before = _log_days(small_lake)
    with LiveServer(create_app()) as server:
        far = httpx.post(f"{server.url}/predict", json={"msno": published.both, "as_of": "9999-12-31"})
        next_day = httpx.post(f"{server.url}/predict", json={"msno": published.both, "as_of": "2017-04-01"})
        by_events = httpx.post(f"{server.url}/predict", json=events | {"as_of": later})
        newest_ok = httpx.post(f"{server.url}/predict", json=events | {"as_of": newest_event.isoformat()})
    for response, day, limit in ((far, "9999-12-31", "2017-03-31"), (next_day, "2017-04-01", "2017-03-31"),
                                 (by_events, later, newest_event.isoformat())):  # fmt: skip
        assert response.status_code == 422, response.text
        error = response.json()["detail"][0]
        assert error["loc"] == ["body", "as_of"] and day in error["msg"] and limit in error["msg"]
    assert newest_ok.status_code == 200, newest_ok.text
    assert _log_days(small_lake) - before <= {newest_event.isoformat()}
    assert "9999-12-31" not in _log_days(small_lake)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ('{"msno": NaN}', ["body", "msno"]),
        ('{"msno": "%s", "as_of": Infinity}', ["body", "as_of"]),
        ('{"msno": "%s", "unknown": -Infinity}', ["body", "unknown"]),
    ],
)
def test_non_finite_json_numbers_are_422_naming_the_field(
    published: Published, body: str, loc: list[str]
) -> None:
    with LiveServer(create_app()) as server:
        response = _post_raw(server.url, body.replace("%s", published.both))
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc


LONE_SURROGATE = "\\ud800"  # the JSON escape as the client sends it: six ASCII characters


@pytest.mark.parametrize(
    ("body", "loc", "told"),
    [
        (r'{"msno": "\ud800"}', ["body", "msno"], LONE_SURROGATE),
        (r'{"msno": "%s", "as_of": "\ud800"}', ["body", "as_of"], LONE_SURROGATE),
        (r'{"msno": "%s", "\ud800": 1}', ["body"], LONE_SURROGATE),  # pydantic has no key to name
        ('{"msno": "%s", "as_of": ' + "9" * 5000 + "}", ["body"], "4300 digits"),  # past int()'s limit
    ],
    ids=["msno", "as_of", "key", "huge_integer"],
)
def test_unencodable_json_input_is_422_naming_the_field(
    published: Published, body: str, loc: list[str], told: str
) -> None:
    """A lone surrogate (valid JSON, not encodable as UTF-8) comes back as its escape's text; an integer
    Python will not parse is a 422 about the body, not a 400."""
    with LiveServer(create_app()) as server:
        response = _post_raw(server.url, body.replace("%s", published.both))
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == loc
    assert told in f"{error['msg']} {error.get('input')}"


def test_unencodable_strings_in_events_and_query_are_422(published: Published, small_lake: Lake) -> None:
    """A lone surrogate in an event's string field, a risk_band of undecodable percent-escapes, and a
    cursor carrying a surrogate are 422s naming the field."""
    import base64
    import json

    events = events_of(small_lake, published.both)
    events["transactions"][0]["payment_method_id"] = "__SURROGATE__"
    text = json.dumps(events).replace('"__SURROGATE__"', f'"{LONE_SURROGATE}"')
    raw = json.dumps(["2017-03-31", "run", 0.5, "\ud800" * 44]).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    member = {"city": 1, "bd": 30, "gender": "__SURROGATE__", "registered_via": 7,
              "registration_init_time": "20150101"}  # fmt: skip
    with_member = json.dumps(events | {"member": member})
    with LiveServer(create_app()) as server:
        by_events = _post_raw(server.url, text)
        gender = _post_raw(server.url, with_member.replace('"__SURROGATE__"', f'"{LONE_SURROGATE}"'))
        band = httpx.get(f"{server.url}/scores?risk_band=%ED%A0%80")
        paged = httpx.get(f"{server.url}/scores", params={"cursor": cursor})
    assert by_events.status_code == 422, by_events.text
    assert by_events.json()["detail"][0]["loc"] == ["body", "transactions", 0, "payment_method_id"]
    assert gender.status_code == 422, gender.text
    assert gender.json()["detail"][0]["loc"][:3] == ["body", "member", "gender"]
    assert band.status_code == 422, band.text
    assert band.json()["detail"][0]["loc"] == ["query", "risk_band"]
    assert paged.status_code == 422, paged.text
    assert paged.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_non_finite_numbers_in_events_are_422_naming_the_field(
    published: Published, small_lake: Lake
) -> None:
    import json

    events = events_of(small_lake, published.both)
    events["user_logs"][0]["total_secs"] = "__NAN__"
    events["transactions"][0]["payment_plan_days"] = "__INF__"
    text = json.dumps(events).replace('"__NAN__"', "NaN").replace('"__INF__"', "Infinity")
    with LiveServer(create_app()) as server:
        response = _post_raw(server.url, text)
    assert response.status_code == 422, response.text
    locs = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert ("body", "user_logs", 0, "total_secs") in locs
    assert ("body", "transactions", 0, "payment_plan_days") in locs


def test_as_of_before_any_data_is_a_clean_answer(published: Published, small_lake: Lake) -> None:
    events = events_of(small_lake, published.both)
    with LiveServer(create_app()) as server:
        by_msno = httpx.post(f"{server.url}/predict", json={"msno": published.both, "as_of": "0001-01-01"})
        by_events = httpx.post(f"{server.url}/predict", json=events | {"as_of": "0001-01-01"})
    assert by_msno.status_code == 404, by_msno.text
    assert "0001-01-01" in by_msno.json()["detail"]
    assert by_events.status_code == 422, by_events.text
    assert "0001-01-01" in by_events.json()["detail"][0]["msg"]


def test_msno_must_match_in_full(published: Published, small_lake: Lake) -> None:
    """A made-up msno sharing the lake key's first 16 characters is not the user: 404, nothing logged."""
    real = published.both
    fake = real[:16] + ("B" if real[16] == "A" else "A") * 27 + "="
    partition = f"{PREFIX}/as_of=2017-03-30/*.parquet"
    before = len(small_lake.glob(partition))
    with LiveServer(create_app()) as server:
        response = httpx.post(f"{server.url}/predict", json={"msno": fake, "as_of": "2017-03-30"})
        genuine = httpx.post(f"{server.url}/predict", json={"msno": real, "as_of": "2017-03-30"})
    assert response.status_code == 404, response.text
    assert genuine.status_code == 200
    logged = [small_lake.read_parquet(p) for p in small_lake.glob(partition)]
    assert len(logged) == before + 1
    assert fake not in {m for table in logged for m in table["msno"].to_pylist()}


def test_raw_event_copies_are_dropped_and_conflicting_days_refused(
    published: Published, small_lake: Lake
) -> None:
    """The ingest's rule: exact copies count once; two different log rows of one user-day are refused."""
    events = events_of(small_lake, published.both) | {"as_of": NEW_DAY.isoformat()}
    copies = events | {"user_logs": events["user_logs"] * 2, "transactions": events["transactions"] * 2}
    conflict_row = events["user_logs"][-1] | {"num_25": events["user_logs"][-1]["num_25"] + 7}
    conflicting = events | {"user_logs": [*events["user_logs"], conflict_row]}
    day = str(conflict_row["date"])
    with LiveServer(create_app()) as server:
        plain = httpx.post(f"{server.url}/predict", json=events)
        doubled = httpx.post(f"{server.url}/predict", json=copies)
        refused = httpx.post(f"{server.url}/predict", json=conflicting)
    assert plain.status_code == 200 and doubled.status_code == 200, doubled.text
    assert doubled.json()["churn_probability"] == plain.json()["churn_probability"]
    assert refused.status_code == 422, refused.text
    error = refused.json()["detail"][0]
    assert error["loc"] == ["body", "user_logs"] and f"{day[:4]}-{day[4:6]}-{day[6:]}" in error["msg"]
