"""Airflow plugin: the churn reports (validation Data Docs, drift reports) inside the Airflow UI, and
links from the scoring task to its published scores and from the drift task to the reports.

A FastAPI app mounted in Airflow's API server at /churn-reports lists the reports in the lake and serves
them; a navigation entry opens it. The lake is the one `CHURN_*` configures (local folder or S3/MinIO).

Airflow does not authenticate plugin apps (a mounted app inherits none of the core API's dependencies), and
the reports hold users' data (Data Docs show offending values, drift reports embed users' features), so
every page depends on Airflow's own `get_user` (the JWT of the UI's `_token` cookie or an
`Authorization: Bearer` header) and asks the configured auth manager whether that user may read the
plugin's custom view "Churn reports". Anonymous requests get Airflow's 401, like its REST API, rather than
a redirect: the pages are opened from the Airflow UI, whose login already set the cookie, and a 401 leaves
no redirect target to abuse.
"""

from __future__ import annotations

import html
from typing import ClassVar

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response

REPORTS_VIEW = "Churn reports"
URL_PREFIX = "/churn-reports"
ASSETS_PREFIX = f"{URL_PREFIX}/_assets"


def require_report_reader(user: GetUserDep) -> None:
    """Refuse users the auth manager does not let read the reports (anonymous ones already got a 401)."""
    if not get_auth_manager().is_authorized_custom_view(method="GET", resource_name=REPORTS_VIEW, user=user):
        raise HTTPException(403, f"not allowed to read {REPORTS_VIEW}")


reports_app = FastAPI(
    title="Churn reports",
    description="Validation and drift reports from the churn lake (Airflow login required)",
    dependencies=[Depends(require_report_reader)],
    # FastAPI's own docs routes would bypass the app's dependencies: none
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


def _lake():
    from churn.lake import Lake
    from churn.settings import get_settings

    return Lake.from_settings(get_settings())


@reports_app.get("/", response_class=HTMLResponse)
def index() -> str:
    """A page linking every report, grouped by kind, newest first."""
    from churn.monitoring.reports import list_reports

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


@reports_app.get("/overview", response_class=HTMLResponse)
def overview() -> str:
    """The operator's first page: last publish, champion, validation verdicts, drift, realised performance."""
    import datetime as dt

    from churn.monitoring import overview as page
    from churn.settings import get_settings

    settings = get_settings()
    return page.render(
        page.collect(settings, _lake()),
        reports_prefix=URL_PREFIX,
        api_url=settings.api_public_url,
        drift_limit=settings.drift_share_threshold,
        today=dt.datetime.now(dt.UTC).date(),  # display only: how old the published day is
    )


@reports_app.get("/_assets/{path:path}")
def asset_file(path: str) -> Response:
    """A browser file the Data Docs pages load (the pinned local copy of their CDN files)."""
    from churn.webassets import AssetNotFoundError, read_asset

    try:
        body, content_type = read_asset(path)
    except AssetNotFoundError as error:
        raise HTTPException(404, str(error)) from None
    return Response(body, media_type=content_type, headers={"Cache-Control": "max-age=86400"})


@reports_app.get("/{path:path}")
def report_file(path: str) -> Response:
    """A file of a report (its pages, data and assets); HTML pages load their CDN files from `_assets`."""
    from churn.monitoring.reports import ReportNotFoundError, read_report_file
    from churn.webassets import offline_html

    try:
        body, content_type = read_report_file(_lake(), path)
    except ReportNotFoundError as error:
        raise HTTPException(404, str(error)) from None
    if content_type.startswith("text/html"):
        body = offline_html(body.decode("utf-8"), ASSETS_PREFIX).encode("utf-8")
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
        {"app": reports_app, "url_prefix": URL_PREFIX, "name": "Churn reports"}
    ]
    external_views: ClassVar[list[dict]] = [
        # embedded in the UI (an iframe at /plugin/<url_route>), the pages opened with the UI's login
        {
            "name": "Churn overview",
            "href": f"{URL_PREFIX}/overview",
            "url_route": "churn-overview",
            "destination": "nav",
            "category": "browse",
        },
        {
            "name": "Churn reports",
            "href": f"{URL_PREFIX}/",
            "url_route": "churn-reports",
            "destination": "nav",
            "category": "browse",
        },
    ]
    global_operator_extra_links: ClassVar[list[BaseOperatorLink]] = [
        PublishedScoresLink(),
        DriftReportsLink(),
    ]
