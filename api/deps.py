"""Request dependencies: what the lifespan set up on the app (settings, database, model, lake, log).

All are `async def`: FastAPI runs a plain `def` dependency in the thread pool, a hop per dependency per
request that costs more than the lookup itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from churn.lake import Lake
from churn.model.canary import CanaryHolder
from churn.model.serving import ChampionHolder
from churn.monitoring.predlog import PredictionLog
from churn.scores.scorereads import NewestDate
from churn.settings import Settings


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was started with (read once in the lifespan)."""
    return request.app.state.settings


async def get_engine(request: Request) -> AsyncEngine:
    """The scores-database engine (async: reads never leave the event loop) created in the lifespan."""
    return request.app.state.engine


async def get_newest_date(request: Request) -> NewestDate:
    """This worker's cache of the newest published date (the hot lookup binds it)."""
    return request.app.state.newest_date


async def get_champion(request: Request) -> ChampionHolder:
    """The holder of the served champion (refreshed in the background)."""
    return request.app.state.champion


async def get_canary(request: Request) -> CanaryHolder:
    """The holder of the canary (the challenger answering a share of live predictions)."""
    return request.app.state.canary


async def get_lake(request: Request) -> Lake:
    """The lake live predictions read Silver from."""
    return request.app.state.lake


async def get_prediction_log(request: Request) -> PredictionLog:
    """The append-only log of live predictions."""
    return request.app.state.prediction_log


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
NewestDateDep = Annotated[NewestDate, Depends(get_newest_date)]
ChampionDep = Annotated[ChampionHolder, Depends(get_champion)]
CanaryDep = Annotated[CanaryHolder, Depends(get_canary)]
LakeDep = Annotated[Lake, Depends(get_lake)]
PredictionLogDep = Annotated[PredictionLog, Depends(get_prediction_log)]
