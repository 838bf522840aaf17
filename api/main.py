"""The API application (`api.main:app`): settings and database engine set up once in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.routers import health
from churn.db import engine_from_settings
from churn.logs import configure_logging
from churn.settings import load_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Read settings (a bad value stops start-up) and open the database pool; dispose of it on exit."""
    settings = load_settings()
    configure_logging(settings.log_level)
    app.state.settings = settings
    app.state.engine = engine_from_settings(settings)
    try:
        yield
    finally:
        app.state.engine.dispose()


def create_app() -> FastAPI:
    """Build the application; tests create their own instance with the environment they set."""
    app = FastAPI(
        title="KKBox churn scores",
        version="0.1.0",
        description="Nightly churn probabilities per user, and live predictions with the same model.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    return app


app = create_app()
