"""The API application (`api.main:app`).

The lifespan reads settings, opens the database pool, loads the champion and the newest Silver day, and
starts a background task that picks up a new champion (and new Silver days) without a restart. Errors
are JSON: 503 while the database or the model is unavailable (the process stays up and recovers by
itself), 422 naming the field, 413 for an oversized body, 401/403 for API keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.limits import BodyLimitMiddleware
from api.metrics import MODEL_VERSION, MetricsMiddleware
from api.routers import docs, health, models, monitoring, predict, retention, scores
from api.schemas import add_head_routes, invalid, validation_details
from api.security import access_mode
from churn.db import DatabaseUnavailableError, make_async_engine, redact
from churn.lake import Lake
from churn.logs import configure_logging
from churn.model.canary import CanaryHolder
from churn.model.champion import ModelUnavailableError
from churn.model.serving import ChampionHolder
from churn.monitoring.predlog import PredictionLog
from churn.scores.live import SilverDays
from churn.scores.scorereads import CursorError, NewestDate
from churn.settings import load_settings

log = logging.getLogger("churn.api")


def _read_silver_days(app: FastAPI) -> None:
    """Silver's newest day (the latest as_of /predict answers for) and first user-log day (the features'
    coverage bound), read from the parts' statistics here rather than on every request."""
    try:
        app.state.silver = SilverDays.read(app.state.lake)
    except Exception as error:  # an unreachable lake must not stop the scores API
        log.warning("cannot read Silver's dates: %s", error)
        app.state.silver = SilverDays()


async def _refresh_forever(app: FastAPI, seconds: float) -> None:
    """Every `seconds`: swap in a new champion if the alias moved, follow the canary, re-read the newest
    Silver day, and write out the buffered prediction log (so a quiet worker does not sit on its rows)."""
    while True:
        await asyncio.sleep(seconds)
        await run_in_threadpool(app.state.champion.refresh)
        try:  # a canary that cannot be followed must not stop the champion's refresh
            await run_in_threadpool(app.state.canary.refresh)
        except Exception as error:
            log.warning("cannot follow the canary: %s", error)
        await run_in_threadpool(_read_silver_days, app)
        try:
            await run_in_threadpool(app.state.prediction_log.flush)
        except Exception as error:  # the lake being away must not stop the loop; the rows stay buffered
            log.warning("cannot write the prediction log: %s", error)
        with contextlib.suppress(ModelUnavailableError):
            MODEL_VERSION.set(app.state.champion.current().version)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Set up shared state; a bad setting (or no API key without the explicit opt-out) stops start-up, a
    missing model or database does not."""
    settings = load_settings()
    configure_logging(settings.log_level)
    if access_mode(settings) == "anonymous":
        log.warning("serving without API keys: CHURN_API_ALLOW_ANONYMOUS=true, anyone who reaches the port "
                    "reads every score")  # fmt: skip
    app.state.settings = settings
    app.state.engine = make_async_engine(settings.database_url, pool_size=settings.api_db_pool_size)
    app.state.newest_date = NewestDate()
    app.state.lake = Lake.from_settings(settings)
    app.state.prediction_log = PredictionLog(app.state.lake, settings.prediction_log_flush_rows)
    app.state.champion = ChampionHolder(settings)
    app.state.canary = CanaryHolder(settings)
    await run_in_threadpool(app.state.champion.refresh)
    with contextlib.suppress(Exception):  # logged by the holder; the API serves the champion meanwhile
        await run_in_threadpool(app.state.canary.refresh)
    await run_in_threadpool(_read_silver_days, app)
    with contextlib.suppress(ModelUnavailableError):
        MODEL_VERSION.set(app.state.champion.current().version)
    refresher = asyncio.create_task(_refresh_forever(app, settings.model_refresh_seconds))
    # Everything loaded so far (libraries, the model) lives as long as the process: keep the cyclic GC
    # from re-scanning it on every full collection, which otherwise pauses requests for ~100 ms.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await run_in_threadpool(app.state.prediction_log.flush)
        await app.state.engine.dispose()


async def _database_down(request: Request, error: Exception) -> JSONResponse:
    reason = (
        str(getattr(error, "orig", error)).strip().splitlines()[0] if str(error) else type(error).__name__
    )
    log.warning(
        "scores database unavailable (%s): %s", redact(request.app.state.settings.database_url), reason
    )
    return JSONResponse(status_code=503, content={"detail": "scores database unavailable"})


async def _model_unavailable(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(error)})


async def _bad_cursor(request: Request, error: Exception) -> JSONResponse:
    return await _invalid_request(request, invalid(["query", "cursor"], str(error)))


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422 body, but one the request's input echoed in it (a NaN or Infinity, a lone surrogate)
    cannot turn into a 500. Every 422 is rendered here."""
    errors = error.errors() if isinstance(error, RequestValidationError) else []
    return JSONResponse(status_code=422, content={"detail": validation_details(errors)})


async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
    """FastAPI's answer to an HTTPException, except a JSON body the parser refused with a ValueError (an
    integer past Python's digit limit, bytes that are not UTF-8): that is bad input, a 422 naming the body,
    where FastAPI would say 400 "error parsing the body"."""
    cause = error.__cause__
    if error.status_code == 400 and isinstance(cause, ValueError):
        reason = str(cause).split(";")[0]
        return await _invalid_request(request, invalid(["body"], f"the JSON body cannot be read: {reason}"))
    return await http_exception_handler(request, error)


def create_app() -> FastAPI:
    """Build the application; tests create their own instance with the environment they set."""
    app = FastAPI(
        title="KKBox churn scores",
        version="1.0.0",
        description="Nightly churn probabilities per user, and live predictions with the same model.",
        lifespan=lifespan,
        docs_url=None,  # served by api.routers.docs from the pinned local Swagger UI files
        redoc_url=None,
    )
    # the date freshness readings are taken on (readiness, /metrics); tests replace it
    app.state.today = lambda: dt.datetime.now(dt.UTC).date()
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(scores.router)
    app.include_router(predict.router)
    app.include_router(models.router)
    app.include_router(monitoring.router)
    app.include_router(retention.router)
    app.add_exception_handler(DBAPIError, _database_down)
    app.add_exception_handler(PoolTimeoutError, _database_down)  # every pooled connection stayed busy
    app.add_exception_handler(DatabaseUnavailableError, _database_down)
    # asyncpg raises these unwrapped: refused/reset, connect timeout, unknown host
    for error_type in (ConnectionError, TimeoutError, socket.gaierror):
        app.add_exception_handler(error_type, _database_down)
    app.add_exception_handler(ModelUnavailableError, _model_unavailable)
    app.add_exception_handler(CursorError, _bad_cursor)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(
        StarletteHTTPException,
        _http_error,  # type: ignore[arg-type]  # Starlette types every handler as taking Exception
    )
    add_head_routes(app.router)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(MetricsMiddleware)
    return app


app = create_app()
