"""Request dependencies: what the lifespan set up on the app (settings, database, model, lake, log)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from churn.lake import Lake
from churn.predlog import PredictionLog
from churn.serving import ChampionHolder
from churn.settings import Settings


def get_app_settings(request: Request) -> Settings:
    """The settings the app was started with (read once in the lifespan)."""
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    """The scores-database engine created in the lifespan."""
    return request.app.state.engine


def get_champion(request: Request) -> ChampionHolder:
    """The holder of the served champion (refreshed in the background)."""
    return request.app.state.champion


def get_lake(request: Request) -> Lake:
    """The lake live predictions read Silver from."""
    return request.app.state.lake


def get_prediction_log(request: Request) -> PredictionLog:
    """The append-only log of live predictions."""
    return request.app.state.prediction_log


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ChampionDep = Annotated[ChampionHolder, Depends(get_champion)]
LakeDep = Annotated[Lake, Depends(get_lake)]
PredictionLogDep = Annotated[PredictionLog, Depends(get_prediction_log)]
