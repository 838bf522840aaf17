"""GET /scores... over HTTP with the lifespan running, against real PostgreSQL."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from api.main import create_app
from tests.api.conftest import NEW_DAY, OLD_DAY, Published, path_of
from tests.conftest import LiveServer, TcpProxy


def test_latest_score_of_a_user(published: Published) -> None:
    with LiveServer(create_app()) as server:
        both = httpx.get(f"{server.url}/scores/{path_of(published.both)}")
        old_only = httpx.get(f"{server.url}/scores/{path_of(published.old_only)}")
        unknown = httpx.get(f"{server.url}/scores/{path_of(published.unknown)}")
    assert both.status_code == 200
    body = both.json()
    assert body["msno"] == published.both and body["score_date"] == NEW_DAY.isoformat()
    assert body["run_id"] == "score-api-new" and body["risk_band"] in {"low", "medium", "high"}
    assert old_only.json()["score_date"] == OLD_DAY.isoformat()  # not active on the newest day
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "no published score for this msno"}


def test_malformed_msno_is_422_naming_the_field(published: Published) -> None:
    with LiveServer(create_app()) as server:
        response = httpx.get(f"{server.url}/scores/not-a-user")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "msno"]


def test_history_newest_first(published: Published) -> None:
    with LiveServer(create_app()) as server:
        response = httpx.get(f"{server.url}/scores/{path_of(published.both)}/history")
        missing = httpx.get(f"{server.url}/scores/{path_of(published.unknown)}/history")
    assert [s["score_date"] for s in response.json()["scores"]] == [NEW_DAY.isoformat(), OLD_DAY.isoformat()]
    assert missing.status_code == 404


def test_pages_walk_the_whole_day_in_order_once(published: Published) -> None:
    seen: list[dict] = []
    with LiveServer(create_app()) as server:
        cursor = None
        while True:
            params = {"limit": 97} | ({"cursor": cursor} if cursor else {})
            page = httpx.get(f"{server.url}/scores", params=params).json()
            assert page["score_date"] == NEW_DAY.isoformat()
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == published.new_rows
    assert len({s["msno"] for s in seen}) == published.new_rows
    keys = [(-s["churn_probability"], s["msno"]) for s in seen]
    assert keys == sorted(keys)


def test_filters_and_limits(published: Published) -> None:
    with LiveServer(create_app()) as server:
        url = f"{server.url}/scores"
        medium = httpx.get(url, params={"risk_band": "medium", "score_date": OLD_DAY.isoformat()}).json()
        low = httpx.get(url, params={"risk_band": "low", "limit": 1000}).json()["items"]
        ranged = httpx.get(url, params={"min_probability": 0.1, "max_probability": 0.2, "limit": 1000}).json()
        old = httpx.get(url, params={"score_date": OLD_DAY.isoformat(), "limit": 5}).json()
        too_many = httpx.get(url, params={"limit": 1001})
        bad_cursor = httpx.get(url, params={"cursor": "garbage"})
        empty_day = httpx.get(url, params={"score_date": "2016-01-01"}).json()
    assert low and all(s["risk_band"] == "low" for s in low)
    assert len(medium["items"]) == 100 and medium["next_cursor"] is not None  # the old day is all medium
    assert ranged["items"] and all(0.1 <= s["churn_probability"] <= 0.2 for s in ranged["items"])
    assert {s["score_date"] for s in old["items"]} == {OLD_DAY.isoformat()} and len(old["items"]) == 5
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["query", "limit"]
    assert bad_cursor.status_code == 422 and bad_cursor.json()["detail"][0]["loc"] == ["query", "cursor"]
    assert empty_day["items"] == [] and empty_day["next_cursor"] is None


@pytest.mark.parametrize("how", ["query", "accept"])
def test_csv_streams_the_whole_day(published: Published, how: str) -> None:
    with LiveServer(create_app()) as server:
        if how == "query":
            response = httpx.get(f"{server.url}/scores", params={"format": "csv", "risk_band": "low"})
        else:
            response = httpx.get(f"{server.url}/scores?risk_band=low", headers={"Accept": "text/csv"})
        json_low = httpx.get(f"{server.url}/scores", params={"risk_band": "low", "limit": 1000}).json()[
            "items"
        ]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    # contract 1's columns first, in their order (a reader by position keeps working), then contract 2's
    assert list(rows[0]) == [
        "score_date", "msno", "churn_probability", "risk_band", "model_version", "run_id",
        "revenue_at_risk", "price_per_30d", "plan_days", "payment_method", "auto_renew", "city", "reasons",
    ]  # fmt: skip
    assert response.headers["churn-scores-contract"] == "2"
    assert len(rows) > 1000 or len(rows) == len(json_low)
    assert {r["risk_band"] for r in rows} == {"low"} and {r["score_date"] for r in rows} == {
        NEW_DAY.isoformat()
    }
    assert [r["msno"] for r in rows[: len(json_low)]] == [s["msno"] for s in json_low]


def test_api_keys(published: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_API_KEYS", "first-key,second-key")
    target = f"/scores/{path_of(published.both)}"
    with LiveServer(create_app()) as server:
        missing = httpx.get(server.url + target)
        wrong = httpx.get(server.url + target, headers={"X-API-Key": "nope"})
        right = httpx.get(server.url + target, headers={"X-API-Key": "second-key"})
        health = httpx.get(f"{server.url}/healthz")
        metrics = httpx.get(f"{server.url}/metrics")
    assert missing.status_code == 401 and missing.json() == {"detail": "missing X-API-Key header"}
    assert wrong.status_code == 403 and wrong.json() == {"detail": "invalid API key"}
    assert right.status_code == 200
    assert health.status_code == 200 and metrics.status_code == 200


def test_database_outage_is_503_and_recovers_by_itself(
    published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(published.settings.database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    monkeypatch.setenv("CHURN_DATABASE_URL", url.set(port=proxy.port).render_as_string(hide_password=False))
    target = f"/scores/{path_of(published.both)}"
    try:
        with LiveServer(create_app()) as server:
            assert httpx.get(server.url + target).status_code == 200
            proxy.stop()
            down = httpx.get(server.url + target, timeout=30)
            ready = httpx.get(f"{server.url}/readyz", timeout=30)
            alive = httpx.get(f"{server.url}/healthz")
            proxy.start()
            back = httpx.get(server.url + target, timeout=30)
    finally:
        proxy.stop()
    assert down.status_code == 503
    assert down.json()["detail"].startswith("scores database unavailable")
    assert ready.status_code == 503 and alive.status_code == 200
    assert back.status_code == 200 and back.json()["msno"] == published.both


def test_pages_through_ties_once(published: Published) -> None:
    """The old day has one probability for every user: order and cursors must rest on msno alone."""
    seen: list[str] = []
    with LiveServer(create_app()) as server:
        params: dict = {"score_date": OLD_DAY.isoformat(), "limit": 250}
        while True:
            page = httpx.get(f"{server.url}/scores", params=params).json()
            seen += [s["msno"] for s in page["items"]]
            if page["next_cursor"] is None:
                break
            params = {"limit": 250, "cursor": page["next_cursor"]}
        first = httpx.get(f"{server.url}/scores", params={"score_date": OLD_DAY.isoformat(), "limit": 5})
        cursor = first.json()["next_cursor"]
        other_day = httpx.get(
            f"{server.url}/scores", params={"score_date": NEW_DAY.isoformat(), "cursor": cursor}
        )
    assert len(seen) == len(set(seen)) == published.new_rows + 1 and seen == sorted(seen)
    assert other_day.status_code == 422


def _republish(settings_url: str, run_id: str) -> None:
    """Publish NEW_DAY again (another run), as a rerun of the nightly job would."""
    import pyarrow as pa

    from churn.db import make_engine
    from churn.scores import scoredb

    engine = make_engine(settings_url)
    run = scoredb.ScoreRun(run_id=run_id, score_date=NEW_DAY, model_name="kkbox-churn", model_version=1)
    batch = pa.record_batch([pa.array(["B" * 43 + "="]), pa.array([0.25]), pa.array(["low"])],
                            names=list(scoredb.SCORE_COLUMNS))  # fmt: skip
    with scoredb.date_lock(engine, NEW_DAY):
        scoredb.begin_run(engine, run)
        scoredb.publish(engine, run, [batch], 3650)
    engine.dispose()


def test_csv_export_holds_no_snapshot_and_never_mixes_runs(published: Published) -> None:
    """An export paused between batches does not block a publish (no open transaction), and the rest of
    the export then fails instead of continuing on the new run's rows; a whole export walks the day once."""
    import asyncio

    from churn.db import make_async_engine
    from churn.scores import scorereads

    async def scenario() -> tuple[list[str], list[str], bool]:
        engine = make_async_engine(published.settings.database_url, pool_size=2)
        whole = [c async for c in scorereads.stream_csv(engine, scorereads.PageFilter(), NEW_DAY, batch=97)]
        stream = scorereads.stream_csv(engine, scorereads.PageFilter(), NEW_DAY, batch=50)
        first = [await anext(stream), await anext(stream)]  # header, first batch
        await asyncio.wait_for(asyncio.to_thread(_republish, published.settings.database_url, "rerun"), 30)
        interrupted = False
        try:
            async for _ in stream:
                pass
        except scorereads.ExportInterruptedError:
            interrupted = True
        await engine.dispose()
        return [line for c in whole for line in c.decode().splitlines()], first, interrupted

    lines, first, interrupted = asyncio.run(scenario())
    body = lines[1:]
    assert len(body) == published.new_rows == len({line.split(",")[1] for line in body})
    assert {line.split(",")[5] for line in body} == {"score-api-new"}
    assert len(first[1].decode().splitlines()) == 50
    assert interrupted


def _cursor(values: object) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _raw_cursor(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _raw_cursor('["2017-03-31", ' + "9" * 310 + ', "x"]'),
        _raw_cursor('["2017-03-31", "score-api-new", ' + "9" * 310 + ', "' + "A" * 43 + '="]'),
        _raw_cursor('["2017-03-31", "score-api-new", 1e999, "' + "A" * 43 + '="]'),
        _cursor(["2017-03-31", "score-api-new", 0.5, "A" * 20 + "\x00" + "A" * 22 + "="]),
        _cursor(["2017-03-31", "score-api-new", 0.5, "short"]),
        _cursor(["2017-03-31", "score-api-new", 2.5, "A" * 43 + "="]),
        _cursor(["2017-03-31", 7, 0.5, "A" * 43 + "="]),
        _cursor({"day": "2017-03-31"}),
        _cursor("2017-03-31"),
    ],
)
def test_malformed_cursor_contents_are_422(published: Published, cursor: str) -> None:
    with LiveServer(create_app()) as server:
        response = httpx.get(f"{server.url}/scores", params={"cursor": cursor})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("band", ["lo\x00w", "low; DROP", "x" * 33])
@pytest.mark.parametrize("form", ["json", "csv"])
def test_bad_risk_band_is_422_naming_it(published: Published, band: str, form: str) -> None:
    with LiveServer(create_app()) as server:
        response = httpx.get(f"{server.url}/scores", params={"risk_band": band, "format": form})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "risk_band"]


@pytest.mark.parametrize("form", ["json", "csv"])
def test_min_probability_above_max_is_422(published: Published, form: str) -> None:
    with LiveServer(create_app()) as server:
        response = httpx.get(
            f"{server.url}/scores", params={"min_probability": 0.8, "max_probability": 0.2, "format": form}
        )
        equal = httpx.get(f"{server.url}/scores", params={"min_probability": 0.5, "max_probability": 0.5})
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == ["query", "min_probability"] and "max_probability" in error["msg"]
    assert equal.status_code == 200


def test_a_cursor_of_a_superseded_run_is_410(published: Published) -> None:
    """Pages are pinned to the run of their first page: after a re-publish of the day, the old cursor
    gets a 410 instead of rows of the new run; a fresh first page reads the new run only."""
    with LiveServer(create_app()) as server:
        first = httpx.get(f"{server.url}/scores", params={"limit": 50}).json()
        still = httpx.get(f"{server.url}/scores", params={"limit": 50, "cursor": first["next_cursor"]})
        _republish(published.settings.database_url, "rerun-pinned")
        stale = httpx.get(f"{server.url}/scores", params={"limit": 50, "cursor": first["next_cursor"]})
        fresh = httpx.get(f"{server.url}/scores", params={"limit": 50}).json()
    assert {s["run_id"] for s in first["items"]} == {"score-api-new"}
    assert still.status_code == 200 and {s["run_id"] for s in still.json()["items"]} == {"score-api-new"}
    assert stale.status_code == 410, stale.text
    assert "score-api-new" in stale.json()["detail"] and NEW_DAY.isoformat() in stale.json()["detail"]
    assert {s["run_id"] for s in fresh["items"]} == {"rerun-pinned"} and fresh["next_cursor"] is None
