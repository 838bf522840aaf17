"""The rows of the monitoring tables (`drift_reports`, `model_performance`), stated once.

The weekly run writes them, the API reads and answers them (its schemas extend these models), so a
column added here reaches the writer, the reader's SELECT and the OpenAPI document together; the SQL
migrations in sql/003_monitoring.*.sql create the columns. Light on purpose (pydantic only): the API
imports it without the batch stack.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class DriftRow(BaseModel):
    """A week's drift summary: the week's scoring inputs against the champion's reference."""

    model_config = ConfigDict(frozen=True)

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
    report_uri: str | None = Field(
        description="the HTML report's path relative to the lake (None: elsewhere)"
    )


class CohortPerformance(BaseModel):
    """Realised performance of a cohort's published scores once its outcomes are known (a
    `model_performance` row)."""

    model_config = ConfigDict(frozen=True)

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


# What a reader selects from drift_reports: the row's columns and when it was written.
DRIFT_FIELDS = ", ".join([*DriftRow.model_fields, "created_at"])
