"""Liveness, readiness and metrics: what an orchestrator and Prometheus probe (no API key)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import ChampionDep, EngineDep, SettingsDep
from api.metrics import render
from api.security import access_mode
from churn.db import DatabaseUnavailableError, check_async_connection

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


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Alive: answers as long as the process serves requests (no dependency is checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(engine: EngineDep, holder: ChampionDep, settings: SettingsDep) -> Readiness | JSONResponse:
    """Ready: the scores database answers and a champion is loaded. 503 (the process stays up) while
    either is not; /scores keeps working without a model. `model` names the version served and a
    refused newer champion (`kkbox-churn v1; v2 refused`)."""
    database = "ok"
    try:
        await check_async_connection(engine)
    except DatabaseUnavailableError as error:
        log.warning("readiness: %s", error)
        database = "unavailable"
    model = holder.status()
    auth = access_mode(settings)
    if database != "ok" or model == "unavailable":
        body = Readiness(status="unavailable", database=database, model=model, auth=auth)
        return JSONResponse(status_code=503, content=body.model_dump())
    return Readiness(status="ok", database=database, model=model, auth=auth)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics() -> Response:
    """Prometheus exposition (all workers' samples when PROMETHEUS_MULTIPROC_DIR is set)."""
    body, content_type = render()
    return Response(content=body, media_type=content_type)
