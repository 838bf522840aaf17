"""POST /predict: a live churn probability from the champion, for a known user or for raw events."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Request

from api.deps import ChampionDep, LakeDep, PredictionLogDep, SettingsDep
from api.metrics import PREDICTIONS
from api.schemas import Prediction, PredictRequest, Problem
from api.security import ApiKey
from churn.features import FEATURE_NAMES
from churn.live import features_from_events, features_of_user
from churn.pipeline import churn_probability
from churn.scoring import risk_bands

router = APIRouter(tags=["predict"], dependencies=[ApiKey])


def _events_day(body: PredictRequest) -> dt.date:
    """Default as-of of raw events: their latest date (the caller sent what it knows up to then)."""
    days = [t.transaction_date for t in body.transactions or []] + [log.date for log in body.user_logs or []]
    return max(days)


@router.post(
    "/predict",
    response_model=Prediction,
    responses={404: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}},
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
    pool (CPU-bound), so the event loop keeps serving other requests."""
    loaded = holder.current()
    if body.from_events:
        source = "events"
        as_of = body.as_of or _events_day(body)
        frame = features_from_events(
            body.member, body.transactions or [], body.user_logs or [], as_of, body.msno
        )
        if frame.empty:
            raise HTTPException(422, f"transactions: none dated on or before as_of {as_of}")
    else:
        source = "lake"
        as_of = body.as_of or request.app.state.silver_day
        if as_of is None:
            raise HTTPException(503, "the lake has no Silver data yet: give as_of or ingest first")
        frame = features_of_user(lake, body.msno or "", as_of)
        if frame.empty:
            raise HTTPException(404, f"no transaction of this msno on or before {as_of}")
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
