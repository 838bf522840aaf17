"""Nightly bulk scoring: the champion's churn probability for every active user as of D, published.

Population (documented in the README): users with a transaction on or before D whose membership has
not been expired for more than `CHURN_ACTIVE_GRACE_DAYS` days at D (days_to_expiry >= -grace). Users
whose only expiries are corrupt (before 2000, the 1970 quirk) count as active when their last
transaction is at most that many days old.

The model is read once from the registry (`champion` alias), checked against the feature spec this code
builds, and applied to the Gold features as of D in batches; each batch is banded, given its context (revenue
at risk, the plan it is on, and for the users a retention team acts on the model's reasons) and streamed to
the database, which publishes the whole date atomically. The nightly run names the features build it validated
(`features_run_id`): that build is scored or nothing is, never a rebuild no one checked.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn.data.silver import require_silver_covers, silver_version
from churn.db import check_connection, engine_from_settings
from churn.errors import ChurnError
from churn.features import gold
from churn.features.population import active_mask
from churn.features.spec import SPEC_HASH
from churn.lake import Lake
from churn.lineage import airflow_ids, git_commit
from churn.logs import Progress
from churn.model.champion import load_champion
from churn.model.pipeline import churn_probability
from churn.model.reasons import contributions, reasons_json
from churn.scores import scoredb
from churn.scores.bands import band_names, risk_bands
from churn.scores.revenue import price_per_30d, revenue_at_risk
from churn.settings import Settings

log = logging.getLogger(__name__)

BATCH_ROWS = 262_144


@dataclass
class ScoreReport:
    """What a scoring run did: counts, the model used, where it went and how long each phase took."""

    run_id: str
    score_date: dt.date
    model_version: int
    features_run_id: str = ""  # the features build scored (its manifest's run_id)
    users_with_features: int = 0
    rows: int = 0
    bands: dict[str, int] = field(default_factory=dict)
    explained: int = 0  # users whose reasons were stored
    dropped_dates: list[dt.date] = field(default_factory=list)
    abandoned_runs: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _codes(values: np.ndarray, kind: pa.DataType) -> pa.Array:
    """A feature column (float, NaN for missing) as the integer or boolean column it encodes."""
    return pa.array(values, type=pa.float64(), from_pandas=True).cast(kind)


def score_context(
    model: Any, batch: pa.RecordBatch, p: np.ndarray, explain: np.ndarray
) -> dict[str, pa.Array]:
    """What goes beside each score: revenue at risk (`churn.scores.revenue`), the plan columns the pages
    filter on, and the reasons of the users in `explain` (a mask; exact contributions cost far more than
    the prediction, so only for the users a retention team acts on unless asked for all)."""
    frame_columns = {name: batch[name].to_numpy(zero_copy_only=False).astype(np.float64)
                     for name in ("last_paid", "last_plan_days", "last_payment_method", "last_auto_renew",
                                  "city")}  # fmt: skip
    price = price_per_30d(frame_columns["last_paid"], frame_columns["last_plan_days"])
    reasons = pa.nulls(batch.num_rows, pa.string())
    if explain.any():
        chosen = np.flatnonzero(explain)
        found = reasons_json(contributions(model, batch.take(pa.array(chosen)).to_pandas()))
        slot = np.full(batch.num_rows, len(chosen))
        slot[chosen] = np.arange(len(chosen))
        reasons = pc.take(pa.concat_arrays([found, pa.nulls(1, pa.string())]), pa.array(slot))
    return {
        "revenue_at_risk": pa.array(revenue_at_risk(p, price), from_pandas=True),
        "price_per_30d": pa.array(price, from_pandas=True),
        "plan_days": _codes(frame_columns["last_plan_days"], pa.int32()),
        "payment_method": _codes(frame_columns["last_payment_method"], pa.int32()),
        "auto_renew": _codes(frame_columns["last_auto_renew"], pa.bool_()),
        "city": _codes(frame_columns["city"], pa.int32()),
        "reasons": reasons,
    }


def scored_batches(
    model: Any,
    features: pa.Table,
    thresholds: list[float],
    report: ScoreReport,
    done: Progress | None = None,
    reasons: str = "bands",
) -> Iterator[pa.RecordBatch]:
    """Predict, band and explain the table batch by batch (bounded memory), counting bands and predict
    time, and in `done` the rows of each batch once its consumer has taken it (streamed to the database).

    Reasons (`CHURN_REASONS`) are stored for every band above the lowest ("bands": the users a retention
    team acts on), for "all" users, or for "none"."""
    counts = dict.fromkeys(band_names(thresholds), 0)
    for batch in features.to_batches(max_chunksize=BATCH_ROWS):
        started = time.perf_counter()
        p = churn_probability(model, batch.to_pandas())
        bands = risk_bands(p, thresholds)
        explain = np.full(len(p), reasons == "all") if reasons != "bands" else p >= thresholds[0]
        context = score_context(model, batch, p, explain)
        report.explained += int(explain.sum())
        report.seconds["predict"] = report.seconds.get("predict", 0.0) + time.perf_counter() - started
        for name, count in zip(
            *np.unique(bands.to_numpy(zero_copy_only=False), return_counts=True), strict=True
        ):
            counts[str(name)] += int(count)
        yield pa.record_batch([batch["msno"], pa.array(p), bands, *context.values()],
                              names=[*scoredb.SCORE_COLUMNS, *context])  # fmt: skip
        if done is not None:
            done.advance(batch.num_rows)
    report.bands = counts


def score(
    lake: Lake, settings: Settings, score_date: dt.date, run_id: str, features_run_id: str | None = None
) -> ScoreReport:
    """Score every active user as of `score_date` with the champion and publish the date atomically.

    With `features_run_id` (the build the nightly run validated) that build is scored, never rebuilt:
    when the date's features are another build, or that build is stale for the current Silver or
    feature spec (a late drop ingested since), the run is refused (FeaturesBuildError) and nothing is
    published. Without it (the CLI, ad hoc runs) missing or stale features are built first.

    A date Silver cannot answer (after its newest day, before its data) or one the retention would drop
    at once is refused before anything is written: no Gold folder, no run row, no dropped date."""
    require_silver_covers(lake, score_date, "score date")
    if features_run_id is not None:
        gold.require_features_build(lake, score_date, features_run_id)  # before anything is written
    loaded = load_champion(settings)
    version, model = loaded.version, loaded.model
    engine = engine_from_settings(settings)
    check_connection(engine)
    report = ScoreReport(run_id, score_date, version)
    dag_id, dag_run_id = airflow_ids()
    run = scoredb.ScoreRun(
        run_id=run_id, score_date=score_date, model_name=settings.model_name, model_version=version,
        data_version=silver_version(lake), feature_spec_hash=SPEC_HASH, code_version=git_commit(),
        airflow_dag_id=dag_id, airflow_run_id=dag_run_id,
    )  # fmt: skip
    try:
        with scoredb.date_lock(engine, score_date):
            scoredb.check_retention_window(engine, score_date, settings.score_retention_days)
            report.abandoned_runs = scoredb.begin_run(engine, run)
            try:
                started = time.perf_counter()
                if features_run_id is None:
                    gold.ensure_features(lake, settings, score_date, run_id)
                features = gold.read_features(lake, score_date)
                # The build read: the named one, checked again (no rebuild began since), or the one ensured.
                manifest = (gold.require_features_build(lake, score_date, features_run_id) if features_run_id
                            else gold.features_manifest(lake, score_date) or {})  # fmt: skip
                report.features_run_id = str(manifest.get("run_id", ""))
                log.info("scoring features build %s as of %s", report.features_run_id, score_date)
                report.users_with_features = features.num_rows
                features = features.filter(pa.array(active_mask(features, settings.active_grace_days)))
                if features.num_rows == 0:
                    raise ChurnError(
                        f"no active user as of {score_date} ({report.users_with_features} with features): "
                        "refusing to replace published scores with an empty set"
                    )
                report.seconds["features"] = time.perf_counter() - started
                started = time.perf_counter()
                with Progress(f"score {score_date}: predicted and published", features.num_rows) as done:
                    batches = scored_batches(model, features, settings.risk_band_thresholds, report, done,
                                             settings.reasons)  # fmt: skip
                    report.rows, report.dropped_dates = scoredb.publish(
                        engine, run, batches, settings.score_retention_days
                    )
                report.seconds["publish"] = time.perf_counter() - started - report.seconds.get("predict", 0.0)
            except BaseException as error:
                scoredb.fail_run(engine, run_id, f"{type(error).__name__}: {error}")
                raise
        scoredb.record_timings(
            engine, run_id, users_with_features=report.users_with_features,
            **{f"seconds_{k}": round(v, 3) for k, v in report.seconds.items()},
        )  # fmt: skip
    finally:
        engine.dispose()
    return report
