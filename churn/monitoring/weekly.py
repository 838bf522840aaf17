"""The weekly monitoring run: drift report into the lake, realised performance, summary rows, the check.

`weekly(lake, settings, week_ending, run_id)` writes `reports/drift/week=<D>/index.html` (scoring inputs
against the champion's reference), `live.html` when /predict was used that week, and `summary.json`;
upserts the `drift_reports` row and the `model_performance` rows of the cohorts matured by then, and
prunes the prediction log to the `CHURN_PREDICTION_LOG_RETENTION_DAYS` days ending on the week's end
(counted in the summary). A rerun of a week replaces its files and rows. A week ending after Silver's
newest day is refused before anything is written. `check(summary)` raises with the figures when a
threshold is passed, which is how the weekly DAG run "says so loudly".
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from dataclasses import asdict
from typing import Any

from sqlalchemy import Engine

from churn.data.silver import require_silver_covers
from churn.db import check_connection, engine_from_settings, is_postgres, upsert
from churn.errors import ChurnError
from churn.lake import Lake
from churn.lineage import airflow_ids
from churn.model.champion import champion_version
from churn.monitoring import drift, performance, predlog
from churn.monitoring.monitortables import DriftRow
from churn.scores.scoredb import published_runs
from churn.settings import Settings

log = logging.getLogger(__name__)


class MonitoringAlertError(ChurnError):
    """A weekly check failed: drift or realised performance past its threshold (figures in the message)."""


def report_prefix(week_ending: dt.date) -> str:
    """Where a week's report files live in the lake."""
    return f"{drift.REPORTS}/week={week_ending.isoformat()}"


def json_ready(value: Any) -> Any:
    """Plain JSON data: dates as ISO text, NaN and infinities as null (Evidently gives NaN statistics for
    tiny samples; JSONB and strict JSON readers refuse them)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _write_row(engine: Engine, row: DriftRow, extra: dict[str, Any]) -> None:
    """Upsert the week's drift_reports row: the public columns, and `extra` (summary, run ids)."""
    values = {**row.model_dump(), **extra}
    if not is_postgres(engine):  # arrays and JSON are text on SQLite
        values.update(score_dates=json.dumps(json_ready(values["score_dates"])),
                      drifted_features=json.dumps(values["drifted_features"]))  # fmt: skip
    values["summary"] = json.dumps(json_ready(values["summary"]), allow_nan=False)
    upsert(engine, "drift_reports", "week_ending", [values], stamp="created_at", jsonb=("summary",))


def weekly(
    lake: Lake, settings: Settings, week_ending: dt.date, run_id: str, require_last_night: bool = False
) -> dict[str, Any]:
    """Run the week's drift report and realised performance; returns the JSON summary (also stored).

    Only the runs scored by the current champion are compared with its reference (a mid-week promotion
    would otherwise show the old model's scores as drift). `require_last_night` refuses a week whose last
    day is not published yet (the scheduled run retries until the night's scoring has landed)."""
    started = time.perf_counter()
    require_silver_covers(lake, week_ending, "week ending")
    engine = engine_from_settings(settings)
    check_connection(engine)
    try:
        days = drift.week_of(week_ending)
        runs = published_runs(engine, days[0], days[-1])
        if not runs:
            raise drift.DriftError(f"no published scoring run in the week {days[0]}..{week_ending}")
        if require_last_night and runs[-1][0] != week_ending:
            raise drift.DriftError(f"the week's last night ({week_ending}) is not published yet")
        version = champion_version(settings)
        runs = [run for run in runs if run[2] == version]
        if not runs:
            raise drift.DriftError(f"no run of the week {days[0]}..{week_ending} was scored by the champion "
                                   f"v{version}")  # fmt: skip
        reference = drift.load_reference(settings, version)
        seed = week_ending.toordinal()
        current = drift.scoring_sample(lake, engine, runs, settings.active_grace_days, seed)
        snapshot, scoring = drift.compare(reference, current, settings.drift_share_threshold)
        prefix = report_prefix(week_ending)
        lake.write_html(f"{prefix}/index.html", snapshot.get_html_str(as_iframe=False))
        live = drift.live_sample(lake, days, seed)
        live_summary = None
        if len(live) >= drift.LIVE_MIN_ROWS:
            live_snapshot, live_summary = drift.compare(reference, live, settings.drift_share_threshold)
            lake.write_html(f"{prefix}/live.html", live_snapshot.get_html_str(as_iframe=False))
        elif lake.exists(f"{prefix}/live.html"):
            lake.remove(f"{prefix}/live.html")  # a rerun after the log was pruned: no stale page
        retention = settings.prediction_log_retention_days
        pruned = predlog.prune(lake, week_ending, retention)  # after live_sample has read the week
        prediction_log = {"retention_days": retention, "removed_partitions": len(pruned),
                          "kept_from": week_ending - dt.timedelta(days=retention - 1)}  # fmt: skip
        cohorts = performance.evaluate_matured(lake, settings, engine, week_ending, run_id)
        performance.record(engine, cohorts)
        degraded = [c for c in cohorts if c.degraded]
        summary: dict[str, Any] = {
            "week_ending": week_ending.isoformat(),
            "model": {"name": settings.model_name, "version": version},
            "score_dates": [run.score_date.isoformat() for run in runs],
            "scoring": asdict(scoring),
            "live": asdict(live_summary) if live_summary else None,
            "performance": [c.model_dump() for c in cohorts],
            "prediction_log": prediction_log,
            "thresholds": {"drift_share": settings.drift_share_threshold,
                           "feature_distance": drift.FEATURE_THRESHOLD,
                           "performance_degradation": settings.performance_degradation_threshold},
            "alert": scoring.dataset_drift or bool(degraded),
            "report_uri": lake.uri(f"{prefix}/index.html"),
            "run_id": run_id,
            "seconds": round(time.perf_counter() - started, 2),
        }  # fmt: skip
        summary = json_ready(summary)  # the same plain JSON in the lake, the row and XCom
        lake.write_json(f"{prefix}/summary.json", summary)
        row = DriftRow(
            week_ending=week_ending, model_name=settings.model_name, model_version=version,
            score_dates=[run.score_date for run in runs], reference_rows=scoring.rows_reference,
            current_rows=scoring.rows_current, live_rows=len(live), drift_share=scoring.share,
            drifted_features=scoring.drifted, dataset_drift=scoring.dataset_drift,
            score_drift=scoring.score_distance, live_drift_share=live_summary.share if live_summary else None,
            performance_alert=bool(degraded), alert=summary["alert"], report_uri=summary["report_uri"],
        )  # fmt: skip
        _write_row(engine, row, {"summary": summary, "churn_run_id": run_id,
                                 "airflow_run_id": airflow_ids()[1] or None})  # fmt: skip
    finally:
        engine.dispose()
    log.info("drift %s: share %.2f (%d of %d features), alert %s -> %s", week_ending, scoring.share,
             len(scoring.drifted), len(scoring.distances), summary["alert"],
             summary["report_uri"])  # fmt: skip
    return summary


def check(summary: dict[str, Any]) -> None:
    """Raise MonitoringAlertError naming every threshold the week passed (nothing when none)."""
    problems = []
    scoring, limits = summary["scoring"], summary["thresholds"]
    if scoring["dataset_drift"]:
        problems.append(
            f"{len(scoring['drifted'])} of {len(scoring['distances'])} features drifted "
            f"(share {scoring['share']:.2f} >= {limits['drift_share']}): {', '.join(scoring['drifted'])}"
        )
    for cohort in summary["performance"]:
        if cohort["degraded"]:
            problems.append(
                f"cohort {cohort['cohort']} realised log loss {cohort['log_loss']:.4f} vs validation "
                f"{cohort['validation_log_loss']:.4f} (+{cohort['degradation']:.1%} > "
                f"{limits['performance_degradation']:.0%})"
            )
    if problems:
        raise MonitoringAlertError(f"week ending {summary['week_ending']}: " + "; ".join(problems)
                              + f" (report: {summary['report_uri']})")  # fmt: skip
