"""Liveness, readiness and metrics: what an orchestrator and Prometheus probe (no API key)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from api.deps import ChampionDep, EngineDep, SettingsDep
from api.metrics import DatabaseGauges, render
from api.security import access_mode
from churn.db import DatabaseUnavailableError, check_async_connection
from churn.monitoring.monitorreads import latest_drift
from churn.scores.scorereads import Freshness, freshness, newest_published_date

log = logging.getLogger("churn.api")
router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Liveness: the process is up and serving."""

    status: str


class Readiness(BaseModel):
    """Readiness: each dependency ok or failing, the model version, how requests authenticate. Nothing
    about where things live (hosts, users, paths): the reasons go to the log."""

    status: str
    database: str
    model: str
    auth: str
    scores: str = Field(
        description="freshness of the newest published scores: `ok: <date>, N days old`, or `stale: ...` "
        "when older than CHURN_SCORES_MAX_AGE_DAYS or none are published (detail only: stale scores are "
        "still served)"
    )


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Alive: answers as long as the process serves requests (no dependency is checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(
    engine: EngineDep, holder: ChampionDep, settings: SettingsDep, request: Request
) -> Readiness | JSONResponse:
    """Ready: the scores database answers and a champion is loaded. 503 (the process stays up) while
    either is not; /scores keeps working without a model. `model` names the version served and a
    refused newer champion (`kkbox-churn v1; v2 refused`)."""
    database, scores = "ok", "unknown: database unavailable"
    try:
        await check_async_connection(engine)
        async with engine.connect() as connection:
            scores = (await _scores_freshness(connection, request, settings.scores_max_age_days)).describe()
    except (DatabaseUnavailableError, DBAPIError, OSError) as error:
        log.warning("readiness: %s", error)
        database = "unavailable"
    model = holder.status()
    auth = access_mode(settings)
    if database != "ok" or model == "unavailable":
        body = Readiness(status="unavailable", database=database, model=model, auth=auth, scores=scores)
        return JSONResponse(status_code=503, content=body.model_dump())
    return Readiness(status="ok", database=database, model=model, auth=auth, scores=scores)


async def _scores_freshness(connection: AsyncConnection, request: Request, max_age_days: int) -> Freshness:
    """The newest published date's age on the app's `today` (the wall clock's UTC date; tests set their
    own): an operational reading for alerts, never a choice of what is served."""
    return freshness(await newest_published_date(connection), request.app.state.today(), max_age_days)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(engine: EngineDep, request: Request, settings: SettingsDep) -> Response:
    """Prometheus exposition (all workers' samples when PROMETHEUS_MULTIPROC_DIR is set), with
    `churn_scores_age_days` and `churn_drift_share` read from the database for this scrape (left out while
    it does not answer; the scrape still succeeds)."""
    gauges = None
    try:
        async with engine.connect() as connection:  # one connection for both readings
            fresh = await _scores_freshness(connection, request, settings.scores_max_age_days)
            drift = await latest_drift(connection)
        gauges = DatabaseGauges(fresh.age_days, None if drift is None else float(drift["drift_share"]))
    except (DatabaseUnavailableError, DBAPIError, OSError) as error:
        log.warning("metrics: database gauges left out: %s", error)
    body, content_type = render(gauges)
    return Response(content=body, media_type=content_type)
