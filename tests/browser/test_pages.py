"""The pages people use after `make demo`, in headless chromium with the network blocked: Airflow's login,
DAG list and training trigger form (its run completed by the real scheduler), Browse > Churn reports and
Churn overview, the Data Docs and drift reports, and the API's /docs."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest

from tests.browser.conftest import DEMO_DAYS, DEMO_TIMEOUT, Demo, Offline, login, shoot

# the first test waits for `make demo` (the session fixture) within its own timeout
pytestmark = [pytest.mark.slow, pytest.mark.timeout(DEMO_TIMEOUT + 300)]

QUICK_TRIAL = {"train.samplers": ["none"], "lightgbm.n_estimators": 100}
SCHEDULES = {
    "churn_ingest": "0 1 * * *",
    "churn_nightly_scoring": "0 2 * * *",
    "churn_weekly_drift": "0 3 * * 1",
}


def reports_frame(page: Any, path: str) -> Any:
    """The plugin page embedded in the UI (an iframe on /churn-reports/...)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for frame in page.frames:
            if frame is not page.main_frame and f"/churn-reports/{path}" in frame.url:
                frame.wait_for_load_state()
                return frame
        page.wait_for_timeout(200)
    raise AssertionError(f"no embedded /churn-reports/{path} frame in {[f.url for f in page.frames]}")


def test_login_then_the_dag_list_shows_every_dag_with_its_schedule(
    page: Any, demo: Demo, offline: Offline
) -> None:
    page.goto(f"{demo.airflow_url}/dags")
    page.wait_for_url("**/auth/login**")  # the UI asks for a login first
    login(page, demo)
    page.goto(f"{demo.airflow_url}/dags")
    for dag_id in ("churn_ingest", "churn_nightly_scoring", "churn_training", "churn_weekly_drift"):
        page.get_by_role("link", name=dag_id, exact=True).wait_for()
    body = page.inner_text("body")
    for schedule in SCHEDULES.values():
        assert schedule in body
    shoot(page, "dag-list")
    assert offline.refused == []


def test_training_form_renders_every_param_and_its_run_completes(
    page: Any, demo: Demo, offline: Offline
) -> None:
    client = demo.client()
    params = client.wait_for_dag("churn_training")["params"]
    before = {r["dag_run_id"] for r in client.runs("churn_training")}
    login(page, demo)
    page.goto(f"{demo.airflow_url}/dags/churn_training")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Run Parameters").wait_for()
    form = dialog.inner_text()
    for name, param in params.items():
        assert name in form, f"Param {name} missing from the trigger form"
        assert param["description"] in form, f"Param {name}'s description missing from the trigger form"
    values = dialog.locator("input").evaluate_all("inputs => inputs.map(i => i.value)")
    assert params["cohort"]["value"] in values  # the Params' defaults fill the form
    # a quick trial, as a user would ask for one: a share of the training users, fewer trees, one sampler
    fraction = dialog.locator("input[type=number], input[inputmode=decimal]").first
    fraction.fill("0.3")
    dialog.locator(".monaco-editor").first.click()  # the overrides' JSON editor
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(json.dumps(QUICK_TRIAL))
    shoot(page, "training-trigger-form")
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    deadline = time.monotonic() + 60
    while not (new := {r["dag_run_id"] for r in client.runs("churn_training")} - before):
        assert time.monotonic() < deadline, "the form's Trigger created no run"
        time.sleep(1)
    run_id = new.pop()
    conf = client._call("GET", f"/dags/churn_training/dagRuns/{run_id}")["conf"]
    assert conf["sample_fraction"] == 0.3 and conf["overrides"] == QUICK_TRIAL and conf["cohort"] == "2017-03"
    assert client.wait("churn_training", run_id, timeout=600) == "success", client.failure_logs(
        "churn_training", run_id
    )
    page.goto(f"{demo.airflow_url}/dags/churn_training/runs/{run_id}")
    page.get_by_text("success").first.wait_for()
    shoot(page, "training-run")
    assert offline.refused == []


def test_browse_churn_reports_lists_validation_and_drift_and_opens_one(
    page: Any, demo: Demo, offline: Offline
) -> None:
    login(page, demo)
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Churn reports").click()
    frame = reports_frame(page, "")
    listing = frame.inner_text("body")
    assert f"silver/{DEMO_DAYS[-1]}" in listing and f"gold/{DEMO_DAYS[-1]}" in listing
    assert f"week={DEMO_DAYS[-1]}" in listing
    shoot(page, "churn-reports")
    frame.get_by_role("link", name=f"week={DEMO_DAYS[-1]}").click()
    drift = reports_frame(page, "reports/drift/")
    drift.wait_for_load_state("networkidle")
    assert "Drift" in drift.inner_text("body") or "drift" in drift.inner_text("body")
    shoot(page, "drift-report")
    assert offline.refused == []


def test_data_docs_render_offline(page: Any, demo: Demo, offline: Offline) -> None:
    login(page, demo)
    page.goto(f"{demo.airflow_url}/churn-reports/reports/validation/silver/{DEMO_DAYS[-1]}/index.html")
    page.wait_for_load_state("networkidle")
    # the scripts ran (jQuery, bootstrap-table filled the results table) and Bootstrap styled the page
    assert page.evaluate("typeof window.jQuery") == "function"
    rows = page.locator("table tbody tr")
    assert rows.count() >= 3, page.inner_text("body")[:500]  # one validation result per Silver table
    assert "silver.members" in page.inner_text("body")
    assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith("-apple-system")
    shoot(page, "data-docs-index")
    page.get_by_role("link", name="silver.members").first.click()
    page.wait_for_load_state("networkidle")
    assert "Expectation" in page.inner_text("body")
    shoot(page, "data-docs-suite")
    assert offline.refused == []


def test_overview_shows_the_night_the_champion_validation_and_drift(
    page: Any, demo: Demo, offline: Offline
) -> None:
    assert httpx.get(f"{demo.airflow_url}/churn-reports/overview").status_code == 401  # behind the login
    login(page, demo)
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Churn overview").click()
    frame = reports_frame(page, "overview")
    text = frame.inner_text("body")
    assert DEMO_DAYS[-1] in frame.inner_text("#publish")
    assert re.search(r"v\d+", frame.inner_text("#champion"))
    assert re.fullmatch(r"\d\.\d{3}x", frame.inner_text("[data-ratio]")), text  # log loss vs oracle
    for stage in ("silver", "gold"):
        assert frame.locator(f"[data-stage={stage}]").inner_text().count("passed") == 1
    assert f"week ending {DEMO_DAYS[-1]}" in frame.inner_text("#drift")
    assert frame.locator("#drift svg polyline").count() == 1
    shoot(page, "overview")
    # every link on the page leads somewhere that answers (reports through the plugin, the API)
    for href in frame.locator("a").evaluate_all("links => links.map(a => a.href)"):
        headers = {"X-API-Key": demo.api_key} if href.startswith(demo.api_url) else {}
        answer = page.request.get(href, headers=headers)
        assert answer.status == 200, f"{href}: {answer.status}"
    assert offline.refused == []


def test_api_docs_load_offline(page: Any, demo: Demo, offline: Offline) -> None:
    page.goto(f"{demo.api_url}/docs")
    page.get_by_text("/scores/{msno}").first.wait_for()
    assert "KKBox churn scores" in page.inner_text("body")
    shoot(page, "api-docs")
    assert offline.refused == []
