"""What goes beside each score (issue 22): reasons, revenue at risk, the plan, on real PostgreSQL.

Reasons are published in the same rows and run as the scores; the stored, the on-request and the live
reasons are the same numbers; revenue at risk is the README's definition; readers of contract 1 keep working.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json

import httpx
import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import text

from api.main import create_app
from churn.db import make_engine
from churn.features.gold import read_features
from churn.lake import Lake
from churn.model.champion import load_champion
from churn.model.pipeline import churn_probability
from churn.model.reasons import contributions, top_reasons
from churn.scores import scoredb, scorereads
from churn.scores.scoring import score, score_context
from tests.api.conftest import NEW_DAY, Published, path_of
from tests.conftest import LiveServer

CONTRACT_1 = ["msno", "score_date", "churn_probability", "risk_band", "model_version", "run_id"]


def _rows(url: str, sql: str, **params: object) -> list[dict]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(r) for r in connection.execute(text(sql), params).mappings()]
    finally:
        engine.dispose()


def _close(a: list[dict], b: list[dict]) -> bool:
    """Two reason lists name the same inputs with values and contributions equal to 1e-9."""
    return len(a) == len(b) and all(
        x["feature"] == y["feature"]
        and abs(x["contribution"] - y["contribution"]) <= 1e-9
        and (x["value"] is None) == (y["value"] is None)
        and (x["value"] is None or abs(x["value"] - y["value"]) <= 1e-9)
        for x, y in zip(a, b, strict=True)
    )


def _rescored_with_half_explained(published: Published, small_lake: Lake) -> float:
    """Re-score the new day with the first band threshold at the median probability (the small lake's
    users are mostly low-risk), so half of them get stored reasons; -> the threshold."""
    url = published.settings.database_url
    median = _rows(
        url,
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY churn_probability) AS m "
        "FROM churn_scores WHERE score_date = :d",
        d=NEW_DAY,
    )[0]["m"]
    settings = published.settings.model_copy(update={"risk_band_thresholds": [median, 0.99]})
    score(small_lake, settings, NEW_DAY, "score-api-explained")
    return median


def test_reasons_are_published_with_their_scores_for_the_bands_acted_on(
    published: Published, small_lake: Lake
) -> None:
    url = published.settings.database_url
    threshold = _rescored_with_half_explained(published, small_lake)
    rows = _rows(
        url,
        "SELECT churn_probability, risk_band, reasons, run_id, revenue_at_risk, price_per_30d "
        "FROM churn_scores WHERE score_date = :d",
        d=NEW_DAY,
    )
    explained = [r for r in rows if r["reasons"] is not None]
    assert len(explained) >= len(rows) // 3
    assert all((r["reasons"] is not None) == (r["churn_probability"] >= threshold) for r in rows)
    assert {r["run_id"] for r in rows} == {"score-api-explained"}  # one run: reasons came with the scores
    for row in explained:
        reasons = row["reasons"] if isinstance(row["reasons"], list) else json.loads(row["reasons"])
        assert 1 <= len(reasons) <= 4
        assert all(set(item) == {"feature", "value", "contribution"} for item in reasons)
    # revenue at risk is the probability times the stored price, wherever the price is known
    priced = [r for r in rows if r["price_per_30d"] is not None]
    assert priced and all(
        r["revenue_at_risk"] == pytest.approx(r["churn_probability"] * r["price_per_30d"], rel=1e-12)
        for r in priced
    )


def test_stored_computed_and_live_reasons_are_the_same_numbers(
    published: Published, small_lake: Lake
) -> None:
    url = published.settings.database_url
    _rescored_with_half_explained(published, small_lake)
    stored = _rows(
        url,
        "SELECT msno FROM churn_scores WHERE score_date = :d AND reasons IS NOT NULL ORDER BY msno LIMIT 1",
        d=NEW_DAY,
    )[0]["msno"]
    low = _rows(
        url,
        "SELECT msno FROM churn_scores WHERE score_date = :d AND reasons IS NULL ORDER BY msno LIMIT 1",
        d=NEW_DAY,
    )[0]["msno"]
    model = load_champion(published.settings).model
    features = read_features(small_lake, NEW_DAY).to_pandas()
    with LiveServer(create_app()) as server:
        answers = {}
        plain = httpx.get(f"{server.url}/scores/{path_of(low)}").json()  # a lookup computes nothing
        for msno in (stored, low):
            nightly = httpx.get(f"{server.url}/scores/{path_of(msno)}", params={"reasons": "compute"})
            live = httpx.post(f"{server.url}/predict", json={"msno": msno, "as_of": NEW_DAY.isoformat()})
            assert nightly.status_code == live.status_code == 200, (nightly.text, live.text)
            assert nightly.headers["churn-scores-contract"] == "2"
            answers[msno] = (nightly.json(), live.json())
    assert plain["reasons"] is None and plain["reasons_source"] is None
    assert answers[stored][0]["reasons_source"] == "stored"
    assert answers[low][0]["reasons_source"] == "computed"  # a low-band user: from that date's Gold
    for msno, (nightly, live) in answers.items():
        assert _close(nightly["reasons"], live["reasons"]), (nightly["reasons"], live["reasons"])
        direct = top_reasons(contributions(model, features[features["msno"] == msno]))[0]
        assert _close(nightly["reasons"], [r.__dict__ for r in direct])
        assert all(r["description"] for r in nightly["reasons"])
        assert live["revenue_at_risk"] == pytest.approx(nightly["revenue_at_risk"], abs=1e-9)
        up = [r["contribution"] for r in nightly["reasons"] if r["contribution"] > 0]
        assert up == sorted(up, reverse=True) and len(up) <= 3


def test_revenue_at_risk_of_hand_made_users_is_as_documented() -> None:
    """price_per_30d = last amount paid / plan days x 30; revenue_at_risk = probability x that; unknown
    (NULL) where the plan has no days or the amount is unknown."""
    batch = pa.record_batch(
        {
            "last_paid": [149.0, 35.0, 0.0, 99.0, np.nan, 1788.0],
            "last_plan_days": [30.0, 7.0, 30.0, 0.0, 30.0, 360.0],
            "last_payment_method": [41.0, 38.0, 40.0, np.nan, 41.0, 36.0],
            "last_auto_renew": [1.0, 0.0, 1.0, 0.0, np.nan, 0.0],
            "city": [1.0, 13.0, 5.0, 1.0, 22.0, 4.0],
        }
    )
    p = np.array([0.5, 0.2, 0.9, 0.7, 0.4, 0.1])
    context = score_context(None, batch, p, np.zeros(6, dtype=bool))
    assert context["price_per_30d"].to_pylist() == pytest.approx([149.0, 150.0, 0.0, None, None, 149.0])
    assert context["revenue_at_risk"].to_pylist() == pytest.approx([74.5, 30.0, 0.0, None, None, 14.9])
    assert context["plan_days"].to_pylist() == [30, 7, 30, 0, 30, 360]
    assert context["payment_method"].to_pylist() == [41, 38, 40, None, 41, 36]
    assert context["auto_renew"].to_pylist() == [True, False, True, False, None, False]
    assert context["reasons"].null_count == 6  # nobody asked to be explained


def _publish_hand_made(url: str, day: dt.date) -> list[str]:
    users = [f"{chr(65 + i) * 43}=" for i in range(8)]
    batch = pa.record_batch(
        {
            "msno": users,
            "churn_probability": [0.5, 0.2, 0.9, 0.7, 0.4, 0.1, 0.3, 0.3],
            "risk_band": ["medium", "low", "high", "high", "medium", "low", "medium", "medium"],
            "revenue_at_risk": [74.5, 30.0, 0.0, None, None, 14.9, None, 30.0],
            "price_per_30d": [149.0, 150.0, 0.0, None, None, 149.0, None, 100.0],
            "plan_days": [30, 7, 30, 0, 30, 360, 0, 30],
            "payment_method": [41, 38, 40, None, 41, 36, 40, 40],
            "auto_renew": [True, False, True, False, None, False, False, False],
            "city": [1, 13, 5, 1, 22, 4, 1, 1],
            "reasons": ['[{"feature":"days_to_expiry","value":-3.0,"contribution":1.25}]', *[None] * 7],
        }
    )
    engine = make_engine(url)
    run = scoredb.ScoreRun(
        run_id="score-hand-made", score_date=day, model_name="kkbox-churn", model_version=1
    )
    with scoredb.date_lock(engine, day):
        scoredb.begin_run(engine, run)
        scoredb.publish(engine, run, [batch], 3650)
    engine.dispose()
    return users


def test_pages_and_csv_sort_and_filter_by_revenue_at_risk(published: Published) -> None:
    day = NEW_DAY + dt.timedelta(days=1)
    users = _publish_hand_made(published.settings.database_url, day)
    base = {"score_date": day.isoformat(), "sort": "revenue_at_risk"}
    with LiveServer(create_app()) as server:
        seen, cursor = [], None
        while True:
            page = httpx.get(
                f"{server.url}/scores", params=base | {"limit": 1} | ({"cursor": cursor} if cursor else {})
            ).json()
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        filtered = httpx.get(
            f"{server.url}/scores", params=base | {"min_revenue_at_risk": 20, "auto_renew": "true"}
        ).json()
        by_plan = httpx.get(f"{server.url}/scores", params=base | {"plan_days": 30, "city": 22}).json()
        export = httpx.get(f"{server.url}/scores", params=base | {"format": "csv", "payment_method": 41})
        wrong_order = httpx.get(
            f"{server.url}/scores",
            params={"score_date": day.isoformat(), "cursor": cursor or _first_cursor(server.url, base)},
        )
    # highest revenue first (a tie at 30.0 by msno), unknown revenue last (then by msno); one row a page,
    # so the cursors cross the tie and the unknown group
    order = [users[i] for i in (0, 1, 7, 5, 2, 3, 4, 6)]
    assert [s["msno"] for s in seen] == order
    assert _export(published.settings.database_url, day) == order  # the export's keyset, 2 rows a batch
    assert [s["msno"] for s in filtered["items"]] == [users[0]]
    assert [s["msno"] for s in by_plan["items"]] == [users[4]]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [r["msno"] for r in rows] == [users[0], users[4]]
    assert rows[0]["revenue_at_risk"] == "74.5" and rows[1]["revenue_at_risk"] == ""
    assert json.loads(rows[0]["reasons"])[0]["feature"] == "days_to_expiry"
    assert seen[0]["reasons"][0]["description"].startswith("membership expiry minus D")
    assert wrong_order.status_code == 422  # a revenue cursor on a probability page


def _export(url: str, day: dt.date) -> list[str]:
    """The msnos of the revenue-ordered CSV export of a day, read in batches of two rows."""
    import asyncio

    from churn.db import make_async_engine

    async def read() -> str:
        engine = make_async_engine(url, pool_size=2)
        filters = scorereads.PageFilter(score_date=day, sort="revenue_at_risk")
        try:
            return b"".join([c async for c in scorereads.stream_csv(engine, filters, day, batch=2)]).decode()
        finally:
            await engine.dispose()

    return [row["msno"] for row in csv.DictReader(io.StringIO(asyncio.run(read())))]


def _first_cursor(url: str, params: dict) -> str:
    return httpx.get(f"{url}/scores", params=params | {"limit": 1}).json()["next_cursor"]


def test_readers_of_contract_1_keep_working(published: Published) -> None:
    """The six original columns and JSON fields keep their names, order and types; the view answers the
    old query; a contract-1 cursor (four values) still pages; a writer of the three score columns alone
    still publishes (the old day of the fixture is one)."""
    url = published.settings.database_url
    old_sql = _rows(
        url, f"SELECT {', '.join(CONTRACT_1)} FROM latest_scores WHERE msno = :m", m=published.both
    )
    assert list(old_sql[0]) == CONTRACT_1
    old_day = _rows(
        url,
        "SELECT reasons, revenue_at_risk FROM churn_scores WHERE msno = :m AND score_date < :d",
        m=published.both,
        d=NEW_DAY,
    )
    assert old_day == [{"reasons": None, "revenue_at_risk": None}]
    with LiveServer(create_app()) as server:
        one = httpx.get(f"{server.url}/scores/{path_of(published.both)}").json()
        first = httpx.get(f"{server.url}/scores", params={"limit": 1}).json()
        last = first["items"][0]
        old_cursor = scorereads.encode_cursor(
            scorereads.Cursor(NEW_DAY, last["run_id"], last["churn_probability"], last["msno"])
        )
        legacy = json.loads(base64.urlsafe_b64decode(old_cursor + "=="))[:4]
        four = base64.urlsafe_b64encode(json.dumps(legacy).encode()).decode().rstrip("=")
        second = httpx.get(f"{server.url}/scores", params={"limit": 1, "cursor": four})
    assert list(one)[:6] == CONTRACT_1
    assert isinstance(one["churn_probability"], float) and isinstance(one["model_version"], int)
    assert second.status_code == 200 and second.json()["items"][0]["msno"] != last["msno"]


def test_a_failed_publish_keeps_the_published_reasons(published: Published, small_lake: Lake) -> None:
    url = published.settings.database_url
    before = _rows(
        url,
        "SELECT msno, churn_probability, reasons FROM churn_scores WHERE score_date = :d ORDER BY msno",
        d=NEW_DAY,
    )
    model = load_champion(published.settings).model
    features = read_features(small_lake, NEW_DAY)

    def batches():  # the first batch with reasons for all, then the model fails
        batch = features.to_batches(max_chunksize=200)[0]
        p = churn_probability(model, batch.to_pandas())
        context = score_context(model, batch, p, np.ones(len(p), dtype=bool))
        yield pa.record_batch(
            [batch["msno"], pa.array(p), pa.array(["high"] * len(p)), *context.values()],
            names=[*scoredb.SCORE_COLUMNS, *context],
        )
        raise RuntimeError("the model fell over")

    engine = make_engine(url)
    run = scoredb.ScoreRun(
        run_id="score-broken", score_date=NEW_DAY, model_name="kkbox-churn", model_version=1
    )
    with scoredb.date_lock(engine, NEW_DAY), pytest.raises(RuntimeError, match="fell over"):
        scoredb.begin_run(engine, run)
        scoredb.publish(engine, run, batches(), 3650)
    engine.dispose()
    after = _rows(
        url,
        "SELECT msno, churn_probability, reasons FROM churn_scores WHERE score_date = :d ORDER BY msno",
        d=NEW_DAY,
    )
    assert after == before
