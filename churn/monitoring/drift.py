"""Weekly drift report: this week's model inputs against the champion's reference, with Evidently.

The reference is saved with the model when it is trained (`reference/features.parquet` in its MLflow
run): a sample of the scoring population on the validation cohort's eve (active users, the same rule as a
scoring night) with the model's probabilities. Comparing like with like matters: the labelled training
cohorts are users whose membership expires in one month, a different population from "every active user",
and would show drift where there is none.

The current data is what the week's published nightly runs scored (their Gold features and published
probabilities, sampled evenly across the days) and, separately, the live /predict inputs of the week from
the prediction log. Both frames are sampled (`SAMPLE_ROWS`) so the HTML, which embeds its plots' data,
stays a few MB whatever the population.

Drift per feature: normalised Wasserstein distance for numeric features, Jensen-Shannon distance for the
categorical codes, a feature drifts at >= 0.1 (Evidently's defaults for large samples, fixed here so the
verdict does not change with the sample size); the dataset drifts when the share of drifted features
reaches `CHURN_DRIFT_SHARE_THRESHOLD`.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
from sqlalchemy import Engine, bindparam, text

from churn.errors import ChurnError
from churn.features import gold
from churn.features.population import active_mask
from churn.features.spec import CATEGORICAL, FEATURE_NAMES
from churn.lake import Lake
from churn.model import registry
from churn.model.reference import REFERENCE_DIR, REFERENCE_FILE, SAMPLE_ROWS, SCORE, sample_indices
from churn.monitoring.predlog import PREFIX as PREDICTION_LOG
from churn.settings import Settings

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

log = logging.getLogger(__name__)

LIVE_MIN_ROWS = 50  # fewer live predictions in a week say nothing about drift
FEATURE_THRESHOLD = 0.1
REPORTS = "reports/drift"


class DriftError(ChurnError):
    """The drift report cannot be made (no reference, no published scores in the week, missing inputs)."""


@dataclass
class DriftSummary:
    """What one comparison found: per-feature distances, the drifted ones, the share, the verdict."""

    rows_reference: int
    rows_current: int
    distances: dict[str, float]
    drifted: list[str]
    share: float
    dataset_drift: bool
    score_distance: float | None = None
    score_stats: dict[str, float] = field(default_factory=dict)


def load_reference(settings: Settings, version: int) -> pd.DataFrame:
    """The reference saved with a registered version; DriftError when that version has none."""
    import mlflow
    from mlflow.exceptions import MlflowException

    model_version = registry.client(settings).get_model_version(settings.model_name, str(version))
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=model_version.run_id,
                artifact_path=f"{REFERENCE_DIR}/{REFERENCE_FILE}",
                dst_path=folder,
                tracking_uri=settings.mlflow_tracking_uri,
            )
        except (MlflowException, OSError) as error:
            raise DriftError(
                f"{settings.model_name} v{version} has no drift reference "
                f"({REFERENCE_DIR}/{REFERENCE_FILE} in MLflow run {model_version.run_id}): "
                f"train a model with this code ({type(error).__name__})"
            ) from None
        reference = pd.read_parquet(local)
    missing = [name for name in [*FEATURE_NAMES, SCORE] if name not in reference.columns]
    if missing:
        raise DriftError(f"the reference of {settings.model_name} v{version} lacks {', '.join(missing)} "
                         "(trained on another feature spec): retrain or promote a current model")  # fmt: skip
    return reference


def week_of(week_ending: dt.date) -> list[dt.date]:
    """The seven dates of the week that ends on `week_ending`, oldest first."""
    return [week_ending - dt.timedelta(days=offset) for offset in range(6, -1, -1)]


def scoring_sample(
    lake: Lake, engine: Engine, runs: Sequence[tuple[dt.date, str, int]], grace_days: int, seed: int
) -> pd.DataFrame:
    """The week's scoring inputs: per published date an even share of the scored users, their Gold
    features as of that date and the probability the run published for them."""
    per_day = -(-SAMPLE_ROWS // len(runs))
    query = text(
        "SELECT msno, churn_probability FROM churn_scores WHERE score_date = :d AND msno IN :m"
    ).bindparams(bindparam("m", expanding=True))
    frames = []
    for day, run_id, _ in runs:
        prefix = gold.features_prefix(day)
        if not lake.exists(f"{prefix}/_manifest.json"):
            raise DriftError(f"the Gold features scored by run {run_id} are gone: {lake.uri(prefix)}")
        features = gold.read_features(lake, day)
        active = features.filter(pa.array(active_mask(features, grace_days)))
        picked = active.take(pa.array(sample_indices(active.num_rows, per_day, seed + day.toordinal())))
        frame = picked.to_pandas()
        with engine.connect() as connection:
            scores: dict[str, float] = dict(
                connection.execute(query, {"d": day, "m": frame["msno"].tolist()}).all()
            )
        frame[SCORE] = frame["msno"].map(scores)
        frame = frame[frame[SCORE].notna()]  # users the run did not score (another grace setting)
        frames.append(frame[[*FEATURE_NAMES, SCORE]].assign(score_date=day))
    return pd.concat(frames, ignore_index=True)


def live_sample(lake: Lake, days: list[dt.date], seed: int) -> pd.DataFrame:
    """The week's live /predict inputs from the prediction log (empty when there were none)."""
    tables = [
        lake.read_parquet(f"{PREDICTION_LOG}/as_of={day.isoformat()}", columns=[*FEATURE_NAMES, SCORE])
        for day in days
        if lake.glob(f"{PREDICTION_LOG}/as_of={day.isoformat()}/*.parquet")
    ]
    if not tables:
        return pd.DataFrame(columns=[*FEATURE_NAMES, SCORE])
    table = pa.concat_tables(tables)
    return table.take(pa.array(sample_indices(table.num_rows, SAMPLE_ROWS, seed))).to_pandas()


def compare(
    reference: pd.DataFrame, current: pd.DataFrame, share_threshold: float
) -> tuple[Snapshot, DriftSummary]:
    """Run the Evidently report (data drift of every feature, drift and summary of the probability) and
    read its verdict back."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset, ValueStats

    # a feature with no value on one side cannot be compared (Evidently refuses empty columns): it is left
    # out and the share is over the features measured
    measured = [n for n in FEATURE_NAMES if reference[n].notna().any() and current[n].notna().any()]
    if not measured:
        raise DriftError("no feature has values on both sides: nothing to compare")
    numeric = [name for name in measured if name not in CATEGORICAL]
    categorical = [name for name in measured if name in CATEGORICAL]
    definition = DataDefinition(numerical_columns=[*numeric, SCORE], categorical_columns=categorical)
    columns = [*measured, SCORE]
    report = Report([
        DataDriftPreset(columns=measured, drift_share=share_threshold, num_method="wasserstein",
                        cat_method="jensenshannon", num_threshold=FEATURE_THRESHOLD,
                        cat_threshold=FEATURE_THRESHOLD),
        ValueDrift(column=SCORE, method="wasserstein", threshold=FEATURE_THRESHOLD),
        ValueStats(column=SCORE),
    ])  # fmt: skip
    try:
        snapshot = report.run(
            current_data=Dataset.from_pandas(
                current[columns].reset_index(drop=True), data_definition=definition
            ),
            reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
        )
    except (ValueError, TypeError) as error:
        raise DriftError(f"Evidently cannot compare the frames: {error}") from error
    distances: dict[str, float] = {}
    score_distance, stats = None, {}
    for metric in snapshot.dict()["metrics"]:
        config, value = metric["config"], metric["value"]
        kind = config["type"].rsplit(":", 1)[-1]
        if kind == "ValueDrift" and config["column"] == SCORE:
            score_distance = float(value)
        elif kind == "ValueDrift":
            distances[config["column"]] = float(value)
        elif config.get("column") == SCORE and isinstance(value, int | float):
            name = kind.removesuffix("Value").lower()
            stats[f"{name}_{config['quantile']}" if "quantile" in config else name] = float(value)
    drifted = sorted(name for name, value in distances.items() if value >= FEATURE_THRESHOLD)
    share = len(drifted) / len(measured)
    summary = DriftSummary(len(reference), len(current), distances, drifted, share, share >= share_threshold,
                           score_distance, stats)  # fmt: skip
    return snapshot, summary
