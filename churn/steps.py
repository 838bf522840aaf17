"""Pipeline steps as orchestrators call them: plain arguments in (dates as ISO strings), a small JSON-able
summary out, settings read from the environment (`CHURN_*`).

Airflow tasks are one call each into this module, and so is each `churn` pipeline command. Nothing here
decides dates: they come from the caller (a DAG's data interval, a CLI flag).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from churn.lake import Lake
from churn.logs import new_run_id, run_context
from churn.settings import get_settings

if TYPE_CHECKING:
    from churn.model.params import Params


def _lake() -> Lake:
    return Lake.from_settings(get_settings())


def _params(overrides: dict[str, Any] | None, params_file: str | None = None) -> Params:
    """The params file (the settings' unless named) with a run's overrides applied (validated, source
    named)."""
    from churn.model.params import load_params, with_overrides

    return with_overrides(load_params(params_file or get_settings().params_file), overrides or {})


def ingest(run_id: str | None = None, force: bool = False) -> dict[str, Any]:
    """Bronze -> Silver for every source not ingested yet (idempotent; every source with `force`)."""
    from churn.data.ingest import ingest as run_ingest

    settings = get_settings()
    lake = _lake()
    with run_context("ingest", run_id or new_run_id("ingest")) as rid:
        report = run_ingest(lake, settings, rid, force=force)
    summary = report.summary()
    return {"run_id": rid, "sources": len(report.sources), "skipped": len(report.skipped),
            "tables": summary["tables"], "missing": report.missing, "unpacked": report.unpacked,
            "seconds": summary["seconds"], "silver": lake.uri("silver")}  # fmt: skip


def labels(cohort: str, run_id: str | None = None, force: bool = False) -> dict[str, Any]:
    """Gold labels of a cohort, built unless already built from the current Silver (always with
    `force`); the manifest's figures are those of the build now in place."""
    from churn.features.gold import ensure_labels, labels_manifest, labels_prefix
    from churn.features.labels import parse_cohort

    parse_cohort(cohort)
    lake = _lake()
    with run_context("labels", run_id or new_run_id("labels", cohort)) as rid:
        built = ensure_labels(lake, get_settings(), cohort, rid, force=force)
    manifest = labels_manifest(lake, cohort)
    return {"cohort": cohort, "built": built, "run_id": rid, "labels_run_id": manifest.get("run_id"),
            "rows": manifest["rows"], "source": manifest["source"],
            "rule_agreement": manifest.get("rule_agreement", "absent"),
            "seconds": manifest["seconds"], "path": lake.uri(labels_prefix(cohort))}  # fmt: skip


def features(as_of: str, run_id: str | None = None, force: bool = False) -> dict[str, Any]:
    """Gold features as of a date, built unless already built from the current Silver and spec (always
    with `force`). `features_run_id` names the build now in place (this run's when `built`): what is
    validated and scored downstream."""
    from churn.features.gold import ensure_features, features_manifest, features_prefix, parse_date

    day = parse_date(as_of, "as_of")
    lake = _lake()
    with run_context("features", run_id or new_run_id("features", as_of)) as rid:
        built = ensure_features(lake, get_settings(), day, rid, force=force)
    manifest = features_manifest(lake, day) or {}
    return {"as_of": as_of, "built": built, "path": lake.uri(features_prefix(day)), "run_id": rid,
            "features_run_id": manifest.get("run_id"), "rows": manifest.get("rows"),
            "features": len(manifest.get("features", [])), "spec_hash": manifest.get("spec_hash"),
            "seconds": manifest.get("seconds")}  # fmt: skip


def validate(stage: str, as_of: str | None = None, build_run_id: str | None = None) -> dict[str, Any]:
    """Run a stage's expectation suite; raises ValidationFailed (a ChurnError) on a critical failure.
    `build_run_id` (gold) names the features build to check: another or a stale build is refused
    (FeaturesBuildError), before and after the suite, so the verdict is that build's."""
    from churn.features.gold import parse_date, require_features_build
    from churn.quality.validation import validate as run_validation

    day = parse_date(as_of, "as_of") if as_of else None
    lake = _lake()

    def check_build() -> None:
        if build_run_id is not None and stage == "gold" and day is not None:
            require_features_build(lake, day, build_run_id)

    with run_context("validate", new_run_id("validate", stage)) as rid:
        check_build()
        report = run_validation(lake, stage, day, rid)
        check_build()
    return {"stage": stage, "as_of": as_of, "label": report.label, "evaluated": report.evaluated,
            "rows": report.rows, "warnings": len(report.failures),
            "failures": [f.line() for f in report.failures], "docs": report.docs_uri,
            "seconds": round(report.seconds, 3), "build_run_id": build_run_id}  # fmt: skip


def training_gold(cohort: str, overrides: dict[str, Any] | None = None) -> list[str]:
    """Labels and eve features of the validation cohort and the training cohorts before it (what
    `train` reads); returns the feature dates, for validation."""
    from churn.features.labels import snapshot_date, training_cohorts

    count = _params(overrides).train.train_cohorts
    days = []
    for month in [*training_cohorts(cohort, count), cohort]:
        labels(month)
        days.append(features(snapshot_date(month).isoformat())["as_of"])
    return days


def gold(cohort: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """`training_gold` and the Gold suite over each of its feature dates: the data `train` reads, built
    and checked (a critical failure raises ValidationFailed)."""
    started = time.perf_counter()
    days = training_gold(cohort, overrides)
    evaluated = sum(validate("gold", day)["evaluated"] for day in days)
    return {"cohort": cohort, "days": days, "evaluated": evaluated,
            "seconds": round(time.perf_counter() - started, 3)}  # fmt: skip


def train(
    cohort: str,
    overrides: dict[str, Any] | None = None,
    sample_fraction: float = 1.0,
    promote: bool = True,
    run_id: str | None = None,
    allow_short_history: bool = False,
    params_file: str | None = None,
) -> dict[str, Any]:
    """Train on the cohorts before `cohort`, validate on it, register; promote through the gate when
    `promote` (else the version stays challenger). `overrides` change params of `params_file` (default
    CHURN_PARAMS_FILE), e.g. `{"lightgbm.num_leaves": 31}`; `allow_short_history` trains on a Silver
    whose history is shorter than the training cohorts need (challenger only; see
    `churn.model.training.train`)."""
    from churn.features.labels import parse_cohort
    from churn.model.training import train as run_training

    parse_cohort(cohort)
    settings = get_settings()
    params = _params(overrides, params_file)
    with run_context("train", run_id or new_run_id("train", cohort)) as rid:
        result = run_training(_lake(), settings, params, cohort, rid, sample_fraction=sample_fraction,
                              promote=promote, allow_short_history=allow_short_history)  # fmt: skip
    metrics = {k: v for k, v in result.metrics.items() if k.startswith(("val_", "oracle_"))}
    return {"cohort": cohort, "model_name": settings.model_name, "version": result.version,
            "promoted": result.decision.promote, "reason": result.decision.reason,
            "mlflow_run_id": result.run_id, "sampler": result.sampler, "train_cohorts": result.train_cohorts,
            "rows_train": int(result.metrics["rows_train"]), "train_seconds": result.metrics["train_seconds"],
            "metrics": metrics}  # fmt: skip


def score(score_date: str, run_id: str | None = None, features_run_id: str | None = None) -> dict[str, Any]:
    """Score every active user as of the date with the champion and publish the date atomically;
    with `features_run_id` exactly that (validated) features build, refused when it is not current."""
    from churn.features.gold import parse_date
    from churn.scores.scoring import score as run_scoring

    day: dt.date = parse_date(score_date, "score_date")
    settings = get_settings()
    with run_context("score", run_id or new_run_id("score", score_date)) as rid:
        report = run_scoring(_lake(), settings, day, rid, features_run_id=features_run_id)
    return {"score_date": score_date, "run_id": rid, "rows": report.rows, "bands": report.bands,
            "features_run_id": report.features_run_id, "model_name": settings.model_name,
            "model_version": report.model_version, "users_with_features": report.users_with_features,
            "explained": report.explained, "dropped_dates": [d.isoformat() for d in report.dropped_dates],
            "abandoned_runs": report.abandoned_runs,
            "seconds": {name: round(value, 3) for name, value in report.seconds.items()}}  # fmt: skip


def drift(week_ending: str, require_last_night: bool = False, run_id: str | None = None) -> dict[str, Any]:
    """The weekly drift report and realised performance (files in the lake, rows in the database);
    `require_last_night` fails while the week's last day is not published (a scheduled run retries)."""
    from churn.features.gold import parse_date
    from churn.monitoring.weekly import weekly

    day = parse_date(week_ending, "week_ending")
    with run_context("drift", run_id or new_run_id("drift", week_ending)) as rid:
        return weekly(_lake(), get_settings(), day, rid, require_last_night)


def drift_alert(summary: dict[str, Any]) -> str | None:
    """The alert of a `drift` summary (every threshold the week passed, with figures), None when none."""
    from churn.monitoring.weekly import MonitoringAlertError, check

    try:
        check(summary)
    except MonitoringAlertError as alert:
        return str(alert)
    return None


def check_drift(summary: dict[str, Any]) -> dict[str, Any]:
    """Raise MonitoringAlertError with the figures when the week passed a threshold; else the verdict."""
    from churn.monitoring.weekly import check

    check(summary)
    return {"week_ending": summary["week_ending"], "alert": False, "report_uri": summary["report_uri"]}
