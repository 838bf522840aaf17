"""Request and response models of the API (the OpenAPI document is generated from these)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from churn.events import MemberEvent, TransactionEvent, UserLogEvent

MSNO_PATTERN = r"^[A-Za-z0-9+/]{43}=$"
Msno = Annotated[str, Field(pattern=MSNO_PATTERN, description="KKBox user id: 44 base64 characters")]
MAX_TRANSACTIONS = 2_000
MAX_LOG_ROWS = 10_000


class Score(BaseModel):
    """One published nightly score."""

    msno: str
    score_date: dt.date
    churn_probability: float = Field(ge=0.0, le=1.0)
    risk_band: str
    model_version: int
    run_id: str


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

    model_config = ConfigDict(extra="forbid")

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


class ChampionModel(BaseModel):
    """The model that scores and predicts now."""

    name: str
    version: int
    trained_at: dt.datetime
    run_id: str
    val_cohort: str | None
    metrics: dict[str, float]
    features: list[str]


class Problem(BaseModel):
    """An error: what went wrong, in one line."""

    detail: str


class DriftReport(BaseModel):
    """The newest weekly drift summary: the week's scoring inputs against the champion's reference."""

    week_ending: dt.date
    model_name: str
    model_version: int
    score_dates: list[dt.date]
    reference_rows: int
    current_rows: int
    live_rows: int
    drift_share: float = Field(ge=0.0, le=1.0, description="share of features whose distance passed 0.1")
    drifted_features: list[str]
    dataset_drift: bool
    score_drift: float | None = Field(description="Wasserstein distance (normed) of the probabilities")
    live_drift_share: float | None
    performance_alert: bool
    alert: bool
    report_uri: str
    created_at: dt.datetime


class CohortPerformance(BaseModel):
    """Realised performance of a cohort's published scores once its outcomes are known."""

    cohort: str
    score_date: dt.date
    model_name: str
    model_version: int
    users: int
    churn_rate: float
    log_loss: float
    roc_auc: float | None
    validation_log_loss: float | None
    degradation: float | None = Field(description="realised log loss / validation log loss - 1")
    degraded: bool
    week_ending: dt.date
    computed_at: dt.datetime


class PerformanceList(BaseModel):
    """Matured cohorts, newest first."""

    cohorts: list[CohortPerformance]
