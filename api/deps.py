"""Request dependencies: the settings and the database engine held by the running app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from churn.settings import Settings


def get_app_settings(request: Request) -> Settings:
    """The settings the app was started with (read once in the lifespan)."""
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    """The scores-database engine created in the lifespan."""
    return request.app.state.engine


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
