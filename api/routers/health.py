"""Liveness and readiness: what an orchestrator probes before sending traffic."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import EngineDep
from churn.db import DatabaseUnavailableError, check_connection

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Liveness: the process is up and serving."""

    status: str


class Readiness(BaseModel):
    """Readiness: each dependency and whether it is usable."""

    status: str
    database: str


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Alive: answers as long as the process serves requests (no dependency is checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(engine: EngineDep) -> Readiness | JSONResponse:
    """Ready: the scores database answers. 503 (the process stays up) while it does not."""
    try:
        await run_in_threadpool(check_connection, engine)
    except DatabaseUnavailableError as error:
        body = Readiness(status="unavailable", database=str(error))
        return JSONResponse(status_code=503, content=body.model_dump())
    return Readiness(status="ok", database="ok")
