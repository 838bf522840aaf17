"""Airflow plugin: the churn reports (validation Data Docs, drift reports) inside the Airflow UI, and
links from the scoring task to its published scores and from the drift task to the reports.

A FastAPI app mounted in Airflow's API server at /churn-reports lists the reports in the lake and serves
them; a navigation entry opens it. The lake is the one `CHURN_*` configures (local folder or S3/MinIO).
Like every plugin FastAPI app, it is not behind Airflow's login: expose the API server only where the
reports may be read.
"""

from __future__ import annotations

import html
from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response

reports_app = FastAPI(title="Churn reports", description="Validation and drift reports from the churn lake")


def _lake():
    from churn.lake import Lake
    from churn.settings import get_settings

    return Lake.from_settings(get_settings())


@reports_app.get("/", response_class=HTMLResponse)
def index() -> str:
    """A page linking every report, grouped by kind, newest first."""
    from churn.reports import list_reports

    rows = "".join(
        f'<tr><td>{html.escape(r.kind)}</td><td><a href="{html.escape(r.path)}">{html.escape(r.label)}</a>'
        "</td></tr>"
        for r in list_reports(_lake())
    )
    table = rows or "<tr><td colspan=2>none yet</td></tr>"
    return (
        "<!doctype html><title>Churn reports</title><h1>Churn reports</h1>"
        f"<table><tr><th>kind</th><th>report</th></tr>{table}</table>"
    )


@reports_app.get("/{path:path}")
def report_file(path: str) -> Response:
    """A file of a report (its pages, data and assets)."""
    from churn.reports import ReportNotFoundError, read_report_file

    try:
        body, content_type = read_report_file(_lake(), path)
    except ReportNotFoundError as error:
        raise HTTPException(404, str(error)) from None
    return Response(body, media_type=content_type)


class PublishedScoresLink(BaseOperatorLink):
    """On the nightly scoring task: the published day in the results API."""

    name = "Published scores"

    def get_link(self, operator, *, ti_key) -> str:
        from churn.settings import get_settings

        if operator.task_id != "score_and_publish":
            return ""
        return f"{get_settings().api_public_url.rstrip('/')}/scores?limit=100"


class DriftReportsLink(BaseOperatorLink):
    """On the weekly drift task: the reports page of this plugin (the newest drift report first)."""

    name = "Drift reports"

    def get_link(self, operator, *, ti_key) -> str:
        return "/churn-reports/" if operator.task_id == "drift_report" else ""


class ChurnReportsPlugin(AirflowPlugin):
    """Registers the reports app, its navigation entry and the scoring and drift tasks' links."""

    name = "churn_reports"
    fastapi_apps: ClassVar[list[dict]] = [
        {"app": reports_app, "url_prefix": "/churn-reports", "name": "Churn reports"}
    ]
    external_views: ClassVar[list[dict]] = [
        {"name": "Churn reports", "href": "churn-reports/", "destination": "nav", "category": "browse"}
    ]
    global_operator_extra_links: ClassVar[list[BaseOperatorLink]] = [
        PublishedScoresLink(),
        DriftReportsLink(),
    ]
