"""Pipeline steps as orchestrators call them: plain arguments in (dates as ISO strings), a small JSON-able
summary out, settings read from the environment (`CHURN_*`).

Airflow tasks are one call each into this module; so are the `churn` commands' cores. Nothing here
decides dates: they come from the caller (a DAG's data interval, a CLI flag).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from churn.lake import Lake
from churn.logs import new_run_id, run_context
from churn.settings import get_settings

if TYPE_CHECKING:
    from churn.params import Params


def _lake() -> Lake:
    return Lake.from_settings(get_settings())


def _params(overrides: dict[str, Any] | None) -> Params:
    """The params file of the settings with a run's overrides applied (validated, source named)."""
    from churn.params import load_params, with_overrides

    return with_overrides(load_params(get_settings().params_file), overrides or {})


def ingest(run_id: str | None = None) -> dict[str, Any]:
    """Bronze -> Silver for every source not ingested yet (idempotent)."""
    from churn.ingest import ingest as run_ingest

    settings = get_settings()
    with run_context("ingest", run_id or new_run_id("ingest")) as rid:
        report = run_ingest(_lake(), settings, rid)
    return {"run_id": rid, "sources": len(report.sources), "skipped": len(report.skipped), **report.summary()}


def features(as_of: str, run_id: str | None = None) -> dict[str, Any]:
    """Gold features as of a date, built unless already built from the current Silver and spec.
    `features_run_id` names the build now in place (this run's when `built`): what is validated and
    scored downstream."""
    from churn.gold import ensure_features, features_manifest, features_prefix, parse_date

    day = parse_date(as_of, "as_of")
    lake = _lake()
    with run_context("features", run_id or new_run_id("features", as_of)) as rid:
        built = ensure_features(lake, get_settings(), day, rid)
    build = (features_manifest(lake, day) or {}).get("run_id")
    return {"as_of": as_of, "built": built, "path": lake.uri(features_prefix(day)), "run_id": rid,
            "features_run_id": build}  # fmt: skip


def labels(cohort: str, run_id: str | None = None) -> dict[str, Any]:
    """Gold labels of a cohort, built unless already built from the current Silver."""
    from churn.gold import ensure_labels

    with run_context("labels", run_id or new_run_id("labels", cohort)) as rid:
        built = ensure_labels(_lake(), get_settings(), cohort, rid)
    return {"cohort": cohort, "built": built, "run_id": rid}


def validate(stage: str, as_of: str | None = None, build_run_id: str | None = None) -> dict[str, Any]:
    """Run a stage's expectation suite; raises ValidationFailed (a ChurnError) on a critical failure.
    `build_run_id` (gold) names the features build to check: another or a stale build is refused
    (FeaturesBuildError), before and after the suite, so the verdict is that build's."""
    from churn.gold import parse_date, require_features_build
    from churn.validation import validate as run_validation

    day = parse_date(as_of, "as_of") if as_of else None
    lake = _lake()

    def check_build() -> None:
        if build_run_id is not None and stage == "gold" and day is not None:
            require_features_build(lake, day, build_run_id)

    with run_context("validate", new_run_id("validate", stage)) as rid:
        check_build()
        report = run_validation(lake, stage, day, rid)
        check_build()
    return {"stage": stage, "as_of": as_of, "evaluated": report.evaluated, "warnings": len(report.failures),
            "docs": report.docs_uri, "build_run_id": build_run_id}  # fmt: skip


def training_gold(cohort: str, overrides: dict[str, Any] | None = None) -> list[str]:
    """Labels and eve features of the validation cohort and the training cohorts before it (what
    `train` reads); returns the feature dates, for validation."""
    from churn.training import cohorts_before, snapshot_date

    count = _params(overrides).train.train_cohorts
    days = []
    for month in [*cohorts_before(cohort, count), cohort]:
        labels(month)
        days.append(features(snapshot_date(month).isoformat())["as_of"])
    return days


def train(
    cohort: str,
    overrides: dict[str, Any] | None = None,
    sample_fraction: float = 1.0,
    promote: bool = True,
    run_id: str | None = None,
    allow_short_history: bool = False,
) -> dict[str, Any]:
    """Train on the cohorts before `cohort`, validate on it, register; promote through the gate when
    `promote` (else the version stays challenger). `allow_short_history` trains on a Silver whose history
    is shorter than the training cohorts need (challenger only; see `churn.training.train`)."""
    from churn.training import train as run_training

    settings = get_settings()
    params = _params(overrides)
    with run_context("train", run_id or new_run_id("train", cohort)) as rid:
        result = run_training(_lake(), settings, params, cohort, rid, sample_fraction=sample_fraction,
                              promote=promote, allow_short_history=allow_short_history)  # fmt: skip
    metrics = {k: v for k, v in result.metrics.items() if k.startswith(("val_", "oracle_"))}
    return {"cohort": cohort, "version": result.version, "promoted": result.decision.promote,
            "reason": result.decision.reason, "mlflow_run_id": result.run_id, "metrics": metrics}  # fmt: skip


def score(score_date: str, run_id: str | None = None, features_run_id: str | None = None) -> dict[str, Any]:
    """Score every active user as of the date with the champion and publish the date atomically;
    with `features_run_id` exactly that (validated) features build, refused when it is not current."""
    from churn.gold import parse_date
    from churn.scoring import score as run_scoring

    day: dt.date = parse_date(score_date, "score_date")
    with run_context("score", run_id or new_run_id("score", score_date)) as rid:
        report = run_scoring(_lake(), get_settings(), day, rid, features_run_id=features_run_id)
    return {"score_date": score_date, "run_id": rid, "rows": report.rows, "bands": report.bands,
            "features_run_id": report.features_run_id,
            "model_version": report.model_version, "users_with_features": report.users_with_features,
            "dropped_dates": [d.isoformat() for d in report.dropped_dates]}  # fmt: skip


def drift(week_ending: str, require_last_night: bool = False, run_id: str | None = None) -> dict[str, Any]:
    """The weekly drift report and realised performance (files in the lake, rows in the database);
    `require_last_night` fails while the week's last day is not published (a scheduled run retries)."""
    from churn.gold import parse_date
    from churn.monitoring import weekly

    day = parse_date(week_ending, "week_ending")
    with run_context("drift", run_id or new_run_id("drift", week_ending)) as rid:
        return weekly(_lake(), get_settings(), day, rid, require_last_night)


def check_drift(summary: dict[str, Any]) -> dict[str, Any]:
    """Raise MonitoringAlertError with the figures when the week passed a threshold; else the verdict."""
    from churn.monitoring import check

    check(summary)
    return {"week_ending": summary["week_ending"], "alert": False, "report_uri": summary["report_uri"]}
