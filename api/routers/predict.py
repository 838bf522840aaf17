"""POST /predict: a live churn probability from the champion, for a known user or for raw events."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from fastapi import APIRouter, HTTPException, Request

from api.deps import ChampionDep, LakeDep, PredictionLogDep, SettingsDep
from api.metrics import PREDICTIONS
from api.schemas import AUTH_RESPONSES, Prediction, PredictRequest, Problem, invalid
from api.security import ApiKey
from churn.features import FEATURE_NAMES
from churn.lake import Lake
from churn.live import ConflictingEventsError, features_from_events, features_of_user
from churn.pipeline import churn_probability
from churn.scoring import risk_bands

router = APIRouter(tags=["predict"], dependencies=[ApiKey], responses=AUTH_RESPONSES)


def _events_day(body: PredictRequest) -> dt.date:
    """The newest date of raw events: their default as-of, and the latest one they can answer for."""
    days = [t.transaction_date for t in body.transactions or []] + [log.date for log in body.user_logs or []]
    return max(days)


def _from_events(body: PredictRequest) -> tuple[dt.date, pd.DataFrame]:
    """(as_of, features) of raw events; an as_of past the newest event would be a guess about days the
    caller sent nothing for, so it is refused, as are conflicting rows of one day."""
    newest = _events_day(body)
    as_of = body.as_of or newest
    if as_of > newest:
        raise invalid(("body", "as_of"), f"as_of {as_of} is after the newest event ({newest})")
    try:
        frame = features_from_events(
            body.member, body.transactions or [], body.user_logs or [], as_of, body.msno
        )
    except ConflictingEventsError as error:
        raise invalid(("body", "user_logs"), str(error)) from None
    if frame.empty:
        raise invalid(("body", "transactions"), f"no transaction dated on or before as_of {as_of}")
    return as_of, frame


def _from_lake(
    body: PredictRequest, lake: Lake, silver_day: dt.date | None, logs_from: dt.date | None
) -> tuple[dt.date, pd.DataFrame]:
    """(as_of, features) of a known user from Silver; Silver cannot answer past its newest day (the
    prediction would be made up and logged as if it were real)."""
    if silver_day is None:
        raise HTTPException(503, "the newest Silver day is unknown (no Silver data yet, or the lake is away)")
    as_of = body.as_of or silver_day
    if as_of > silver_day:
        raise invalid(("body", "as_of"), f"as_of {as_of} is after the newest Silver day ({silver_day})")
    frame = features_of_user(lake, body.msno or "", as_of, logs_from)
    if frame.empty:
        raise HTTPException(404, f"no transaction of this msno on or before {as_of}")
    return as_of, frame


@router.post(
    "/predict",
    response_model=Prediction,
    responses={404: {"model": Problem}, 503: {"model": Problem}},
)
def predict(
    body: PredictRequest,
    request: Request,
    settings: SettingsDep,
    holder: ChampionDep,
    lake: LakeDep,
    prediction_log: PredictionLogDep,
) -> Prediction:
    """Score one user now with the champion and the feature code that built Gold. Runs in the thread
    pool (CPU-bound), so the event loop keeps serving other requests. Only answered predictions are
    logged."""
    loaded = holder.current()
    if body.from_events:
        source = "events"
        as_of, frame = _from_events(body)
    else:
        source = "lake"
        as_of, frame = _from_lake(body, lake, request.app.state.silver_day, request.app.state.logs_from)
    probability = float(churn_probability(loaded.model, frame)[0])
    band = str(risk_bands([probability], settings.risk_band_thresholds)[0])
    PREDICTIONS.labels(source).inc()
    prediction_log.append({
        "requested_at": dt.datetime.now(dt.UTC), "source": source, "msno": body.msno, "as_of": as_of,
        "model_version": loaded.version, "churn_probability": probability,
        **{name: float(frame.iloc[0][name]) for name in FEATURE_NAMES},
    })  # fmt: skip
    return Prediction(msno=body.msno, as_of=as_of, churn_probability=probability, risk_band=band,
                      model_version=loaded.version, source=source)  # fmt: skip
