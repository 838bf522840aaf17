"""/retention over HTTP: sign-in and sessions, filters, the export, the user page, escaping.

(The page in a real browser, offline, is tests/browser/test_retention.py.)
"""

from __future__ import annotations

import csv
import io
import re

import httpx
import pytest

from api.main import create_app
from churn.scores import retention
from tests.api.conftest import NEW_DAY, Published, path_of
from tests.conftest import LiveServer


def _msnos(html: str) -> list[str]:
    return re.findall(r'<tr data-msno="([^"]+)"', html)


def _typed(row: dict[str, str]) -> dict[str, object]:
    return {"msno": row["msno"], "city": int(row["city"]) if row["city"] else None,
            "revenue_at_risk": float(row["revenue_at_risk"]) if row["revenue_at_risk"] else None}  # fmt: skip


def test_pages_need_a_key_or_a_session_and_the_login_sets_one(
    published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_API_KEYS", "first-key,second-key")
    with LiveServer(create_app()) as server:
        anonymous = httpx.get(f"{server.url}/retention/")
        wrong = httpx.post(f"{server.url}/retention/login", data={"api_key": "nope"})
        with httpx.Client(base_url=server.url) as browser:
            signed = browser.post("/retention/login", data={"api_key": "second-key"})
            cookie = signed.cookies.get(retention.SESSION_COOKIE)
            after = browser.get("/retention/")
            export = browser.get("/retention/export")
        forged = httpx.get(f"{server.url}/retention/", cookies={retention.SESSION_COOKIE: "9999999999.00"})
        by_header = httpx.get(f"{server.url}/retention/", headers={"X-API-Key": "first-key"})
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/retention/login"
    assert wrong.status_code == 403 and "not one of the API keys" in wrong.text
    assert signed.status_code == 303 and cookie and "second-key" not in cookie
    set_cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/retention" in set_cookie
    assert after.status_code == 200 and _msnos(after.text)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert forged.status_code == 303
    assert by_header.status_code == 200
    # a session ends with its key: removing the key from the configuration ends the session
    assert retention.session_valid(cookie, ["second-key"])
    assert not retention.session_valid(cookie, ["first-key"])
    assert not retention.session_valid(retention.session_cookie("k", now=0), ["k"])  # expired


def test_filters_change_the_rows_and_the_export_is_the_apis(published: Published) -> None:
    with LiveServer(create_app()) as server:
        everyone = httpx.get(f"{server.url}/retention/").text
        whole = httpx.get(f"{server.url}/scores", params={"format": "csv"}).text
        day = [_typed(r) for r in csv.DictReader(io.StringIO(whole))]
        city = next(s["city"] for s in day if s["city"] is not None)
        by_city = httpx.get(f"{server.url}/retention/", params={"city": city, "plan_days": ""}).text
        by_revenue = httpx.get(f"{server.url}/retention/", params={"sort": "revenue_at_risk"}).text
        export = httpx.get(f"{server.url}/retention/export", params={"city": city})
        api_export = httpx.get(f"{server.url}/scores", params={"city": city, "format": "csv"})
        user = _msnos(everyone)[0]
        user_page = httpx.get(f"{server.url}/retention/users/{path_of(user)}")
        missing = httpx.get(f"{server.url}/retention/users/{path_of(published.unknown)}")
        bad = httpx.get(f"{server.url}/retention/", params={"city": "<script>"})
    in_city = [s["msno"] for s in day if s["city"] == city]
    assert _msnos(by_city) == in_city[:50] and set(_msnos(by_city)) != set(_msnos(everyone))
    expected = sorted(day, key=lambda s: (-(s["revenue_at_risk"] if s["revenue_at_risk"] is not None else -1),
                                          s["msno"]))  # fmt: skip
    assert _msnos(by_revenue) == [s["msno"] for s in expected[:50]]
    assert export.text == api_export.text
    assert [r["msno"] for r in csv.DictReader(io.StringIO(export.text))] == in_city
    assert user_page.status_code == 200 and user in user_page.text and "<svg" in user_page.text
    assert NEW_DAY.isoformat() in user_page.text
    assert 'data-feature="' in user_page.text  # reasons, stored or computed from that day's Gold
    assert missing.status_code == 404
    assert bad.status_code == 422


def test_values_from_the_database_are_escaped_in_the_page() -> None:
    """Autoescaping is on: a description or id holding markup is shown as text, never as markup."""
    row = {"msno": "<b>x</b>", "churn_probability": 0.5, "risk_band": "<i>high</i>", "revenue_at_risk": None,
           "plan_days": None, "payment_method": None, "auto_renew": None, "city": None,
           "reasons": [{"feature": "f", "description": "<script>alert(1)</script>", "value": 1.0,
                        "contribution": 0.3}]}  # fmt: skip
    html = retention.render_list(day="2017-04-01", rows=[row], filters={}, next_query=None, export_query="",
                                 bands=("low",), user_path=lambda m: m)  # fmt: skip
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>x</b>" not in html and "<i>high</i>" not in html
    chart = retention.history_chart([{"score_date": "<x>", "churn_probability": 0.5}])
    assert "<x>" not in chart and "&lt;x&gt;" in chart


def test_a_malformed_session_cookie_is_no_session() -> None:
    for cookie in ("²³.ab", "9" * 5000 + ".ab", ".", "abc.def", ""):
        assert not retention.session_valid(cookie, ["k"])


def test_reason_words_and_the_chart_escape_nothing_they_should_not() -> None:
    words = retention.reason_words(
        {"feature": "days_to_expiry", "description": "membership expiry minus D", "value": -3.0,
         "contribution": 0.8}
    )  # fmt: skip
    assert words == "membership expiry minus D: -3 (raises the risk)"
    assert "missing" in retention.reason_words({"description": "x", "value": None, "contribution": -0.1})
    chart = retention.history_chart([{"score_date": "2017-04-01", "churn_probability": 0.25},
                                     {"score_date": "2017-03-31", "churn_probability": 0.5}])  # fmt: skip
    # oldest on the left: the first point is 2017-03-31's 0.5, drawn higher (smaller y) than the second
    first, second = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', chart)
    assert float(first[0]) < float(second[0]) and float(first[1]) < float(second[1])
