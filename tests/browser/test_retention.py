"""The retention page after `make demo`, in headless chromium with the network blocked: sign in with the
demo's API key, filters change the rows, the export matches the page, a user page opens with its chart."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.browser.conftest import DEMO_TIMEOUT, Demo, Offline, shoot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(DEMO_TIMEOUT + 300)]


def _rows(page: Any) -> list[dict[str, str]]:
    """The list's rows as the reader sees them: user id, band, reasons in words."""
    return page.eval_on_selector_all(
        "#scores tbody tr",
        "rows => rows.map(r => ({msno: r.dataset.msno, band: r.children[2].innerText,"
        " why: r.children[8].innerText}))",
    )


def test_retention_list_filters_export_and_user_page(page: Any, demo: Demo, offline: Offline) -> None:
    page.goto(f"{demo.api_url}/retention/")
    assert page.url.endswith("/retention/login")  # no session: the form
    page.fill("input[name=api_key]", demo.api_key)
    page.click("button[type=submit]")
    page.wait_for_selector("#scores")
    everyone = _rows(page)
    assert everyone and all(row["msno"] for row in everyone)
    shoot(page, "retention-list")

    page.select_option("select[name=risk_band]", "low")
    page.click("button[type=submit]")
    page.wait_for_selector("#scores")
    low = _rows(page)
    assert low and {row["band"] for row in low} == {"low"}
    assert [row["msno"] for row in low] != [row["msno"] for row in everyone]

    page.select_option("select[name=sort]", "revenue_at_risk")
    page.click("button[type=submit]")
    page.wait_for_selector("#scores")
    by_revenue = _rows(page)
    assert {row["band"] for row in by_revenue} == {"low"}  # the filter stays with the order

    href = page.locator("#export").get_attribute("href")  # relative to the list: export?<the filters>
    export = page.request.get(page.url.split("?")[0] + href)  # the browser's session cookie goes with it
    assert export.status == 200 and export.headers["content-type"].startswith("text/csv")
    exported = list(csv.DictReader(io.StringIO(export.text())))
    assert [r["msno"] for r in exported[: len(by_revenue)]] == [row["msno"] for row in by_revenue]
    assert {r["risk_band"] for r in exported} == {"low"}

    page.locator("a.user").first.click()
    page.wait_for_selector("#chart svg")
    assert page.inner_text("#msno") == by_revenue[0]["msno"]
    assert page.locator("#reasons li").count() >= 1  # stored, or computed from that day's Gold
    assert page.locator("#history tbody tr").count() >= 1
    shoot(page, "retention-user")
    assert offline.refused == []
