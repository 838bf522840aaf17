"""Request and response models of the API (the OpenAPI document is generated from these)."""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.utils import generate_unique_id
from pydantic import BaseModel, ConfigDict, Field, model_validator

from churn.data.events import MSNO_PATTERN, MemberEvent, TransactionEvent, UserLogEvent
from churn.monitoring import monitortables
from churn.monitoring.monitortables import DriftRow

RISK_BAND_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"  # the names `churn.scores.bands.band_names` gives
Msno = Annotated[str, Field(pattern=MSNO_PATTERN, description="KKBox user id: 44 base64 characters")]
MAX_TRANSACTIONS = 2_000
MAX_LOG_ROWS = 10_000


class Reason(BaseModel):
    """One input's share of the score: the base model's contribution in log-odds (> 0 raises the churn
    probability), the user's value as the model read it (null: missing)."""

    feature: str
    description: str
    value: float | None
    contribution: float


class Score(BaseModel):
    """One published nightly score (contract 2: the first six fields are contract 1's, unchanged; the
    rest were appended)."""

    msno: str
    score_date: dt.date
    churn_probability: float = Field(ge=0.0, le=1.0)
    risk_band: str
    model_version: int
    run_id: str
    revenue_at_risk: float | None = Field(
        None, description="churn_probability x price_per_30d: the expected loss over the next 30 days"
    )
    price_per_30d: float | None = Field(
        None, description="the last transaction's amount paid / plan days x 30 (null: a plan without days)"
    )
    plan_days: int | None = Field(None, description="payment_plan_days of the last transaction")
    payment_method: int | None = Field(None, description="payment_method_id of the last transaction")
    auto_renew: bool | None = Field(None, description="is_auto_renew of the last transaction")
    city: int | None = None
    reasons: list[Reason] | None = Field(
        None, description="top 3 inputs raising the probability, then the one lowering it most"
    )
    reasons_source: Literal["stored", "computed"] | None = Field(
        None, description="stored with the score, or computed from that date's Gold features on request"
    )


class ScorePage(BaseModel):
    """A page of one day's scores, highest probability first; pass `next_cursor` as `cursor` for more."""

    score_date: dt.date | None
    items: list[Score]
    next_cursor: str | None


class ScoreHistory(BaseModel):
    """A user's published scores by date, newest first."""

    msno: str
    scores: list[Score]


class PredictRequest(BaseModel):
    """Either a known user (`msno`, optional `as_of`: features from the lake) or raw events in KKBox field
    names (`member`, `transactions`, `user_logs`; `msno` optional, only echoed and logged)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    msno: Msno | None = None
    as_of: dt.date | None = None
    member: MemberEvent | None = None  # type: ignore[valid-type]
    transactions: list[TransactionEvent] | None = Field(default=None, max_length=MAX_TRANSACTIONS)  # type: ignore[valid-type]
    user_logs: list[UserLogEvent] | None = Field(default=None, max_length=MAX_LOG_ROWS)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _one_form(self) -> PredictRequest:
        has_events = self.member is not None or self.transactions is not None or self.user_logs is not None
        if not has_events and self.msno is None:
            raise ValueError(
                "give either msno (features from the lake) or events (member, transactions, user_logs)"
            )
        if has_events and not self.transactions:
            raise ValueError("transactions: raw events need at least one transaction")
        return self

    @property
    def from_events(self) -> bool:
        """True for the raw-events form."""
        return self.transactions is not None


class Prediction(BaseModel):
    """A live churn probability from the champion."""

    msno: str | None
    as_of: dt.date
    churn_probability: float = Field(ge=0.0, le=1.0)
    risk_band: str
    model_version: int
    source: Literal["lake", "events"]
    revenue_at_risk: float | None = None
    price_per_30d: float | None = None
    reasons: list[Reason]
    served_by: Literal["champion", "canary"] = Field(
        "champion", description="the champion, or the challenger answering a share of users (canary)"
    )


class ChampionModel(BaseModel):
    """The model that scores and predicts now."""

    name: str
    version: int
    trained_at: dt.datetime
    run_id: str
    val_cohort: str | None
    metrics: dict[str, float]
    features: list[str]
    refused: str | None = Field(None, description="a newer champion version this server refused, and why")


class Problem(BaseModel):
    """An error: what went wrong, in one line."""

    detail: str


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No X-API-Key header (API keys are configured)"},
    403: {"model": Problem, "description": "The X-API-Key is not one of CHURN_API_KEYS"},
}
"""The answers of the API-key check, documented on every route behind it."""


def invalid(location: Sequence[str | int], message: str) -> RequestValidationError:
    """A 422 raised by hand, in the body FastAPI gives a request that fails validation (the documented
    HTTPValidationError): `{"detail": [{"loc": [...], "msg": ..., "type": "value_error"}]}`."""
    return RequestValidationError([{"type": "value_error", "loc": tuple(location), "msg": message}])


def _json_safe(value: Any) -> Any:
    """A value as strict UTF-8 JSON can carry it: a NaN or Infinity the client sent comes back as its
    literal's text, a lone surrogate (a `\\ud800` escape JSON allows, UTF-8 cannot encode) as its escape's
    text; encoding either as it is would turn the 422 into a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_json_safe(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def validation_details(errors: Sequence[Any]) -> list[Any]:
    """The `detail` list of a 422 as FastAPI encodes it, made safe to encode as strict JSON."""
    return _json_safe(jsonable_encoder(list(errors)))


def add_head_routes(router: APIRouter) -> None:
    """Answer HEAD on every GET route as GET does (the server sends the headers, not the body), each as
    its own documented operation with its own operationId. Call after every route is included."""
    for route in list(router.routes):
        if isinstance(route, APIRoute) and route.methods == {"GET"}:
            head = copy.copy(route)
            head.methods = {"HEAD"}
            head.operation_id = None
            head.unique_id = generate_unique_id(head)
            head.summary = f"{route.summary or route.name.replace('_', ' ').title()} (headers only)"
            head.description = f"As GET {route.path}, without the body."
            router.routes.append(head)


class DriftReport(DriftRow):
    """The newest weekly drift summary: the week's scoring inputs against the champion's reference."""

    created_at: dt.datetime


class CohortPerformance(monitortables.CohortPerformance):
    """Realised performance of a cohort's published scores once its outcomes are known."""

    computed_at: dt.datetime


class PerformanceList(BaseModel):
    """Matured cohorts, newest first."""

    cohorts: list[CohortPerformance]
