"""Liveness, readiness and metrics: what an orchestrator and Prometheus probe (no API key)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import ChampionDep, EngineDep
from api.metrics import render
from churn.db import DatabaseUnavailableError, check_async_connection
from churn.serving import ModelUnavailableError

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Liveness: the process is up and serving."""

    status: str


class Readiness(BaseModel):
    """Readiness: each dependency and whether it is usable."""

    status: str
    database: str
    model: str


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Alive: answers as long as the process serves requests (no dependency is checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(engine: EngineDep, holder: ChampionDep) -> Readiness | JSONResponse:
    """Ready: the scores database answers and a champion is loaded. 503 (the process stays up) while
    either is not; /scores keeps working without a model."""
    database, model = "ok", "ok"
    try:
        await check_async_connection(engine)
    except DatabaseUnavailableError as error:
        database = str(error)
    try:
        loaded = holder.current()
        model = f"{loaded.name} v{loaded.version}"
    except ModelUnavailableError as error:
        model = f"unavailable: {error}"
    if database != "ok" or model.startswith("unavailable"):
        body = Readiness(status="unavailable", database=database, model=model)
        return JSONResponse(status_code=503, content=body.model_dump())
    return Readiness(status="ok", database=database, model=model)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics() -> Response:
    """Prometheus exposition (all workers' samples when PROMETHEUS_MULTIPROC_DIR is set)."""
    body, content_type = render()
    return Response(content=body, media_type=content_type)
