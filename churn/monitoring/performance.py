"""Realised performance: how the published scores of a cohort did once its outcomes are known.

Cohort M (users whose membership expires in month M) is judged on the scores published on its eve (the
last day of M-1, the date the model was validated at; the newest published date of the eve's week when the
eve itself was not scored). Its outcomes are known 30 days after the month's last expiry, so the cohort
is evaluated once Silver's transactions reach that day (and the week being reported is past it). The
figures are compared with the model's own validation log loss: `degradation` = realised / validation - 1.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from churn.data.silver import silver_last_day
from churn.db import upsert
from churn.features import gold
from churn.features.labels import months_between, parse_cohort, snapshot_date
from churn.lake import Lake
from churn.model import registry
from churn.model.evaluation import classification_metrics
from churn.monitoring.monitortables import CohortPerformance
from churn.scores.scoredb import published_runs
from churn.settings import Settings

log = logging.getLogger(__name__)

OUTCOME_DAYS = 30
EVE_WINDOW_DAYS = 7


def matured(cohort: str, known_until: dt.date) -> bool:
    """Whether every outcome of the cohort is decided by `known_until`."""
    return parse_cohort(cohort)[1] + dt.timedelta(days=OUTCOME_DAYS) <= known_until


def eve_run(engine: Engine, cohort: str) -> tuple[dt.date, int] | None:
    """(date, model version) of the published run that scored the cohort: the newest in the eve's week."""
    eve = snapshot_date(cohort)
    runs = published_runs(engine, eve - dt.timedelta(days=EVE_WINDOW_DAYS - 1), eve)
    return (runs[-1].score_date, runs[-1].model_version) if runs else None


def _published_scores(engine: Engine, day: dt.date) -> pd.DataFrame:
    """Every published (msno, probability) of a date."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT msno, churn_probability FROM churn_scores WHERE score_date = :d"), {"d": day}
        ).all()
    return pd.DataFrame(rows, columns=["msno", "churn_probability"])


def _validation_log_loss(settings: Settings, version: int) -> float | None:
    tags = registry.client(settings).get_model_version(settings.model_name, str(version)).tags
    return float(tags["val_log_loss"]) if "val_log_loss" in tags else None


def evaluate_cohort(
    lake: Lake, settings: Settings, engine: Engine, cohort: str, week_ending: dt.date, run_id: str
) -> CohortPerformance | None:
    """The cohort's realised figures, or None when no published run scored its eve."""
    found = eve_run(engine, cohort)
    if found is None:
        return None
    day, version = found
    with engine.connect() as connection:  # runs past retention keep their row, not their scores
        kept = connection.execute(
            text("SELECT 1 FROM churn_scores WHERE score_date = :d LIMIT 1"), {"d": day}
        ).first()
    if kept is None:
        return None
    gold.ensure_labels(lake, settings, cohort, run_id)
    labels = gold.read_labels(lake, cohort).select(["msno", "is_churn"]).to_pandas()
    joined = labels.merge(_published_scores(engine, day), on="msno", how="inner")
    if joined.empty:
        return None
    y = joined["is_churn"].to_numpy()
    figures = classification_metrics(y, joined["churn_probability"].to_numpy(), prefix="")
    validation = _validation_log_loss(settings, version)
    degradation = figures["log_loss"] / validation - 1.0 if validation else None
    roc_auc = None if np.isnan(figures["roc_auc"]) else figures["roc_auc"]
    degraded = degradation is not None and degradation > settings.performance_degradation_threshold
    return CohortPerformance(
        cohort=cohort, score_date=day, model_name=settings.model_name, model_version=version,
        users=len(joined), churn_rate=float(y.mean()), log_loss=figures["log_loss"], roc_auc=roc_auc,
        validation_log_loss=validation, degradation=degradation, degraded=degraded, week_ending=week_ending,
    )  # fmt: skip


def evaluate_matured(
    lake: Lake, settings: Settings, engine: Engine, week_ending: dt.date, run_id: str
) -> list[CohortPerformance]:
    """Every cohort matured by the week's end (and by Silver) that a published run still retained scored."""
    oldest = week_ending - dt.timedelta(days=settings.score_retention_days)
    retained = published_runs(engine, oldest, dt.date.max)
    first = retained[0].score_date if retained else None
    silver = silver_last_day(lake)
    if first is None or silver is None:
        return []
    known_until = min(week_ending, silver)
    start = first + dt.timedelta(days=1)  # the first eve scored is the month's
    results = []
    for cohort in months_between(start, known_until):
        if matured(cohort, known_until):
            result = evaluate_cohort(lake, settings, engine, cohort, week_ending, run_id)
            if result is not None:
                results.append(result)
    return results


def record(engine: Engine, results: list[CohortPerformance]) -> None:
    """Upsert the cohorts' rows (a rerun replaces them)."""
    upsert(engine, "model_performance", "cohort", [r.model_dump() for r in results], stamp="computed_at")
