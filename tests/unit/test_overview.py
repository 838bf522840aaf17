"""The operator's overview page: what it reads from the lake, the figures it shows, and a database that does
not answer shown on the page instead of failing it. (The page inside Airflow, in a browser, is tested in
tests/browser/test_pages.py.)"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from churn.lake import Lake
from churn.monitoring import overview
from churn.settings import Settings


def lake_with_validations(root: Path) -> Lake:
    lake = Lake(str(root / "lake"))
    for stage, day, passed in [("silver", "2017-04-01", True), ("silver", "2017-04-02", False),
                               ("gold", "2017-03-31", True), ("gold", "train-run-x", False)]:  # fmt: skip
        failures = [] if passed else [{"expectation": "x"}]
        lake.write_json(f"reports/validation/{stage}/{day}/summary.json",
                        {"passed": passed, "evaluated": 30, "failures": failures})  # fmt: skip
    return lake


def test_the_newest_day_of_each_stage_gives_its_verdict(tmp_path: Path) -> None:
    page = overview.Overview()
    overview._validations(lake_with_validations(tmp_path), page)
    assert [(v["stage"], v["label"], v["passed"], v["failures"]) for v in page.validations] == [
        ("gold", "2017-03-31", True, 0),  # a day beats a run-named folder
        ("silver", "2017-04-02", False, 1),
    ]
    assert page.validations[1]["report"] == "reports/validation/silver/2017-04-02/index.html"


def test_an_unreachable_database_and_registry_show_on_the_page(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql+psycopg2://postgres@127.0.0.1:9/none",  # discard port: refused
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'missing' / 'deeper' / 'mlflow.db'}",
        lake_url=str(tmp_path / "lake"),
    )
    lake = lake_with_validations(tmp_path)
    page = overview.collect(settings, lake)
    assert "database" in page.errors and page.publish is None
    html = overview.render(page, reports_prefix="/churn-reports", api_url="http://api", drift_limit=0.3)
    assert "scores database not readable" in html
    assert (
        'href="/churn-reports/reports/validation/silver/2017-04-02/index.html"' in html
    )  # the lake still read


def test_figures_are_rendered_with_links_and_the_drift_chart() -> None:
    page = overview.Overview(
        publish={"score_date": dt.date(2017, 4, 3), "rows_scored": 6491, "model_version": 2, "run_id": "r1"},
        champion={"version": 2, "val_cohort": "2017-03", "val_log_loss": 0.2, "oracle_log_loss": 0.19,
                  "val_roc_auc": 0.9, "ratio": 0.2 / 0.19, "versions": 3},
        drift=[{"week_ending": dt.date(2017, 3, 26), "drift_share": 0.1, "alert": False,
                "drifted_features": [], "report": None},
               {"week_ending": dt.date(2017, 4, 2), "drift_share": 0.5, "alert": True,
                "drifted_features": ["plan_days", "<b>"],
                "report": "reports/drift/week=2017-04-02/index.html"}],
        performance=[{"cohort": "2017-02", "users": 3000, "log_loss": 0.21, "validation_log_loss": 0.2,
                      "roc_auc": 0.88, "degraded": False, "report": None}],
    )  # fmt: skip
    html = overview.render(page, reports_prefix="/churn-reports/", api_url="http://api/", drift_limit=0.3,
                           today=dt.date(2017, 4, 4))  # fmt: skip
    assert (
        "2017-04-03" in html and "6,491 users scored by model v2" in html and "(1 days before today)" in html
    )
    assert "<span data-ratio>1.053x</span>" in html  # log loss vs the oracle
    assert "50% of features drifted" in html and "plan_days, &lt;b&gt;" in html  # escaped
    assert 'href="/churn-reports/reports/drift/week=2017-04-02/index.html"' in html
    assert 'href="http://api/scores?limit=100"' in html
    points = re.search(r'<polyline points="([^"]+)"', html)
    assert points and len(points.group(1).split()) == 2
    assert "<script" not in html and "http" not in html.replace("http://api", "")  # self-contained
