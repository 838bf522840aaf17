"""POST /predict: a live churn probability from the champion, for a known user or for raw events.

The router maps HTTP to one library call (`churn.scores.live.predict`) and its refusals to statuses: a bad
input is a 422 at its field, an unknown user a 404, an unknown Silver a 503.
"""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, HTTPException, Request

from api.deps import CanaryDep, ChampionDep, LakeDep, PredictionLogDep, SettingsDep
from api.metrics import PREDICTIONS, PREDICTIONS_BY_VERSION
from api.schemas import AUTH_RESPONSES, Prediction, PredictRequest, Problem, invalid
from api.security import ApiKey
from churn.scores import live

router = APIRouter(tags=["predict"], dependencies=[ApiKey], responses=AUTH_RESPONSES)


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
    canary: CanaryDep,
    lake: LakeDep,
    prediction_log: PredictionLogDep,
) -> Prediction:
    """Score one user now with the champion and the feature code that built Gold. Runs in the thread
    pool (CPU-bound), so the event loop keeps serving other requests. Only answered predictions are
    logged. A share of users (sticky by msno) is answered by the canary challenger when one is set
    (`churn model canary`); `model_version` and `served_by` say which answered."""
    loaded, role = canary.choose(holder.current(), body.msno)
    try:
        result = live.predict(
            loaded, settings.risk_band_thresholds, msno=body.msno, as_of=body.as_of,
            member=body.member, transactions=body.transactions, user_logs=body.user_logs,
            lake=lake, silver=request.app.state.silver, record=prediction_log,
        )  # fmt: skip
    except live.LiveInputError as error:
        raise invalid(("body", error.field), str(error)) from None
    except live.UnknownUserError as error:
        raise HTTPException(404, str(error)) from None
    except live.SilverUnknownError as error:
        raise HTTPException(503, str(error)) from None
    PREDICTIONS.labels(result.source).inc()
    PREDICTIONS_BY_VERSION.labels(str(result.model_version), role).inc()
    return Prediction(**dataclasses.asdict(result), served_by=role)
