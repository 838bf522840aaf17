"""Training: learn from the cohorts before M, validate on cohort M, register, and gate the promotion.

Time-based evaluation: features of cohort M are taken on its eve (the last day of month M-1), and the
model learns only from labels knowable on that eve (expiry + 30 days <= eve: cohorts up to M-2, see
`labels.training_cohorts`), so validation is what the nightly job will face when it retrains. Within the
training cohorts, users (not rows: a user appears in several cohorts) are split by a stable hash into
fitting, early-stopping and calibration users.

The validation cohort's users are split too, by another stable hash: the selection users choose among
the candidates (every sampler in params.yaml, fitted and calibrated; the lowest log loss wins) and face
the promotion gate; the figures reported as `val_*` come from the other users, which no choice has seen.
The run logs both, the candidates' figures and the splits (`splits.json`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import version as package_version
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churn.data import kkbox
from churn.data.silver import silver_days_per_month, silver_version
from churn.errors import ChurnError
from churn.features import gold
from churn.features.labels import knowable_on, month_of, parse_cohort, snapshot_date, training_cohorts
from churn.features.spec import FEATURE_NAMES, SPEC_HASH
from churn.lake import Lake
from churn.lineage import airflow_ids, dvc_data_version, git_commit
from churn.logs import Progress
from churn.model import registry
from churn.model.champion import FeatureSpecError, load_version
from churn.model.evaluation import classification_metrics, plots
from churn.model.params import Params
from churn.model.pipeline import (
    FeatureFrameError,
    build_pipeline,
    calibrate,
    churn_probability,
    fit_pipeline,
    inner_pipeline,
)
from churn.model.reference import log_reference, reference_sample
from churn.settings import Settings

log = logging.getLogger(__name__)

ORACLE_PREFIX = "synth/oracle"
MODEL_REQUIREMENTS = ("lightgbm", "scikit-learn", "imbalanced-learn", "pandas", "numpy", "scipy", "skops")
# The model is stored with skops (no pickle: loading runs no code); these are the only non-standard types
# it may construct. A new type in the pipeline must be added here on purpose.
SKOPS_TRUSTED_TYPES = [
    "churn.model.pipeline.FeatureFrame", "collections.OrderedDict", "imblearn.pipeline.Pipeline",
    "imblearn.under_sampling._prototype_selection._random_under_sampler.RandomUnderSampler",
    "imblearn.over_sampling._random_over_sampler.RandomOverSampler",
    "lightgbm.basic.Booster", "lightgbm.sklearn.LGBMClassifier", "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration", "sklearn.isotonic.IsotonicRegression",
    "sklearn.frozen._frozen.FrozenEstimator", "sklearn.calibration.CalibratedClassifierCV",
]  # fmt: skip


class ShortHistoryError(ChurnError):
    """Silver lacks the history a leak-free training needs; the message names the files that hold it."""


@dataclass
class TrainResult:
    """What a training run produced: the registered version, its figures and the gate's decision."""

    run_id: str
    version: int
    sampler: str
    metrics: dict[str, float]
    decision: registry.Decision
    model: Any = None
    train_cohorts: list[str] = field(default_factory=list)


HISTORY_TABLES = {"transactions": "transactions", "user_logs": "user logs"}
COVERED_DAY_SHARE = 0.5


def history_gaps(lake: Lake, cohorts: list[str]) -> dict[str, list[str]]:
    """Per cohort, the history tables Silver does not cover on its eve (empty when all are covered).

    The rule: a cohort's features are taken on its eve, the last day of the month before, so that month
    must hold rows of the table on at least half of its days (`COVERED_DAY_SHARE`). Counting days with
    data, not the earliest date, is what makes it robust: one stray early row (or a few) is not a
    history, while a real table (transactions and logs every day) covers whole months; the cost is one
    pass over the date column of each Silver part (see `silver.silver_days_per_month`). The "v2" set of the
    Kaggle dump covers March 2017 only, so no eve before it is covered."""
    coverage = {table: silver_days_per_month(lake, table) for table in HISTORY_TABLES}
    gaps = {}
    for cohort in cohorts:
        eve = snapshot_date(cohort)
        lacking = [
            what for table, what in HISTORY_TABLES.items()
            if coverage[table].get(month_of(eve), 0) < COVERED_DAY_SHARE * eve.day
        ]  # fmt: skip
        if lacking:
            gaps[cohort] = lacking
    return gaps


def describe_gaps(gaps: dict[str, list[str]]) -> str:
    """'2017-01 (eve 2016-12-31): no transactions, user logs in 2016-12; ...' (the tag and the messages)."""
    return "; ".join(
        f"{cohort} (eve {snapshot_date(cohort)}): no {', '.join(lacking)} in {snapshot_date(cohort):%Y-%m}"
        for cohort, lacking in gaps.items()
    )


def _history_files(gaps: dict[str, list[str]]) -> str:
    tables = [t for t, what in HISTORY_TABLES.items() if any(what in lacking for lacking in gaps.values())]
    return (
        f"{' and '.join(kkbox.TABLES[t].dump_files[0] for t in tables)} of the Kaggle dump "
        f"({kkbox.HISTORY_START}..{kkbox.DUMP_V1_END}) or daily drops: add them to Bronze and run "
        "`churn ingest`"
    )


def short_history_error(
    lake: Lake, cohort: str, train_cohorts: list[str], gaps: dict[str, list[str]], trainable: list[str]
) -> ShortHistoryError:
    """The refusal of a training Silver cannot support: the missing history and the files that hold it.
    With no training cohort (or no validation cohort) whose eve has transactions there is nothing to
    train on at all, so the opt-in is not offered and the message says what the lake still allows."""
    first, last = train_cohorts[0], train_cohorts[-1]
    intro = (
        f"training on cohorts {first}..{last} (validated on {cohort}) takes features on each cohort's eve "
        f"({snapshot_date(first)}..{snapshot_date(cohort)}), but Silver lacks: {describe_gaps(gaps)}"
    )
    if not trainable or "transactions" in gaps.get(cohort, []):
        released = [f"{name} for {month}" for name, month in kkbox.RELEASED_COHORTS.items()
                    if lake.exists(f"bronze/{name}")]  # fmt: skip
        return ShortHistoryError(
            f"no leak-free training is possible on this lake: {intro}. --allow-short-history cannot help: "
            "there is no cohort with a history to train or validate on. This lake supports ingest, labels "
            f"(released: {', '.join(released) or 'none'}), features and scoring with a champion trained "
            f"elsewhere. The history is in {_history_files(gaps)}"
        )
    return ShortHistoryError(
        f"cannot train without leaking or inventing: {intro}. That history is in {_history_files(gaps)}; "
        f"or pass --allow-short-history to train on what is there (cohorts {', '.join(trainable)}; "
        "features Silver cannot see are missing; registered as challenger, never promoted automatically)"
    )


def ensure_gold(lake: Lake, settings: Settings, cohort: str, run_id: str) -> None:
    """Build the cohort's labels and its eve's features unless up to date with Silver and the spec."""
    gold.ensure_labels(lake, settings, cohort, run_id)
    gold.ensure_features(lake, settings, snapshot_date(cohort), run_id)


def labelled_frame(lake: Lake, cohort: str, *, with_msno: bool = True) -> pd.DataFrame:
    """A cohort's labels joined to its eve's features. Users without features as of the eve are kept
    (all features missing): dropping them would flatter the evaluation.

    The join runs in Arrow and the features arrive as float32 (what the model reads, see
    `FeatureFrame.transform`); without `with_msno` the 44-character key, which training never reads,
    stays out of pandas. At the real size that halves the frame (issue 18's training budget)."""
    labels = gold.read_labels(lake, cohort).select(["msno", "user_id", "is_churn", "expiry_date"])
    if pc.count_distinct(labels["msno"]).as_py() != labels.num_rows:
        raise ChurnError(f"Gold labels of cohort {cohort} hold a user more than once")
    features = gold.read_features(lake, snapshot_date(cohort)).select(["msno", *FEATURE_NAMES])
    features = features.cast(
        pa.schema([pa.field("msno", features.schema.field("msno").type),
                   *(pa.field(name, pa.float32()) for name in FEATURE_NAMES)])
    )  # fmt: skip
    order = "__label_row"
    labels = labels.append_column(order, pa.array(np.arange(labels.num_rows, dtype=np.int64)))
    joined = labels.join(features, keys="msno", join_type="left outer")
    if joined.num_rows != labels.num_rows:
        raise ChurnError(f"Gold features as of {snapshot_date(cohort)} hold a user more than once")
    joined = joined.sort_by(order).drop_columns([order] + ([] if with_msno else ["msno"]))
    # The expiry the label's gap is measured from, as a day number; unknown for released labels outside
    # the rule's cohort, then the month's last day (no cohort user expires later: never too early).
    month_end = (parse_cohort(cohort)[1] - kkbox.EPOCH).days
    expiry = pc.fill_null(pc.cast(joined["expiry_date"], pa.int32()), month_end)
    joined = joined.drop_columns(["expiry_date"]).append_column("label_expiry", expiry)
    frame = joined.to_pandas(split_blocks=True, self_destruct=True)
    frame["cohort"] = cohort
    return frame


def knowable_training_frame(
    lake: Lake, cohort: str, train_cohorts: list[str]
) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """The training cohorts' labelled users whose label is knowable on the validation cohort's eve, with
    per cohort the rows read and kept (for the run's `splits.json`)."""
    eve = snapshot_date(cohort)
    frames, counts = [], {}
    for month in train_cohorts:
        frame = labelled_frame(lake, month, with_msno=False)
        known = knowable_on(frame["label_expiry"].to_numpy(), eve)
        counts[month] = {"rows": len(frame), "knowable": int(known.sum())}
        frames.append(frame[known])
    return pd.concat(frames, ignore_index=True), counts


def validation_split(val: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(selection users, reported users) of the validation cohort, by a stable hash of the user key (its
    own seed, so not the training split's shares)."""
    selection = user_fraction(val["user_id"].to_numpy(), params.train.seed + 2) < params.train.selection_share
    return val[selection].reset_index(drop=True), val[~selection].reset_index(drop=True)


def user_fraction(user_id: np.ndarray, seed: int) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) per user (a 64-bit mix of the key and the seed)."""
    mixed = user_id.astype(np.uint64) ^ np.uint64(seed * 0x9E3779B97F4A7C15 % 2**64)
    with np.errstate(over="ignore"):
        mixed = (mixed ^ (mixed >> np.uint64(31))) * np.uint64(0xBF58476D1CE4E5B9)
        mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        mixed ^= mixed >> np.uint64(33)
    return (mixed >> np.uint64(11)).astype(np.float64) / float(2**53)


def oracle_probabilities(lake: Lake, cohort: str) -> pd.DataFrame | None:
    """The generator's true churn probabilities for a cohort, when the data is generated."""
    prefix = f"{ORACLE_PREFIX}/cohort={cohort}"
    if not lake.glob(f"{prefix}/*.parquet"):
        return None
    return lake.read_parquet(prefix).select(["msno", "churn_probability"]).to_pandas()


def lineage_tags(lake: Lake, cohort: str, train_cohorts: list[str]) -> dict[str, str]:
    """Tags that trace a model to code, data, features and the Airflow run that made it."""
    dag_id, dag_run_id = airflow_ids()
    return {
        "git_commit": git_commit(),
        "data_version": silver_version(lake),
        "dvc_data_version": dvc_data_version(),
        "feature_spec_hash": SPEC_HASH,
        "val_cohort": cohort,
        "train_cohorts": ",".join(train_cohorts),
        "airflow_dag_id": dag_id,
        "airflow_run_id": dag_run_id,
    }


def _champion_log_loss(
    settings: Settings, val: pd.DataFrame, y_val: np.ndarray
) -> tuple[float | None, int | None, str]:
    """The current champion's log loss on the same validation frame (None when it cannot score it)."""
    from sklearn.metrics import log_loss

    champion = registry.alias_version(settings, registry.CHAMPION)
    if champion is None:
        return None, None, "no champion"
    try:  # a registry outage or an unreadable artifact must fail the run, not promote
        model = load_version(settings, champion).model
    except FeatureSpecError as error:  # scoring refuses it: it cannot compete, the new version can
        log.warning("champion %s", error)
        return None, champion, f"champion {error}"
    try:
        p = np.clip(churn_probability(model, val), 1e-15, 1 - 1e-15)
    except FeatureFrameError as error:  # built for other features: incompatible, it cannot compete
        log.warning("champion v%s cannot score this frame: %s", champion, error)
        return None, champion, f"champion v{champion} cannot score this frame: {error}"
    return float(log_loss(y_val, p, labels=[0, 1])), champion, "evaluated"


def _fit_candidates(
    params: Params, train: pd.DataFrame, selection: pd.DataFrame
) -> tuple[dict[str, Any], dict[str, float]]:
    """Fit and calibrate one model per sampler; returns the models and their figures on the validation
    cohort's selection users (the only ones a choice may look at)."""
    from sklearn.metrics import log_loss

    share = user_fraction(train["user_id"].to_numpy(), params.train.seed)
    stop = share < params.train.early_stopping_share
    cal = (share >= params.train.early_stopping_share) & (
        share < params.train.early_stopping_share + params.train.calibration_share
    )
    fit = ~(stop | cal)
    y = train["is_churn"].to_numpy()
    y_sel = selection["is_churn"].to_numpy()
    models: dict[str, Any] = {}
    figures: dict[str, float] = {"rows_fit": float(fit.sum()), "rows_early_stopping": float(stop.sum()),
                                 "rows_calibration": float(cal.sum())}  # fmt: skip
    samplers = list(params.train.samplers)
    with Progress("training candidates", len(samplers), "candidates", interval_seconds=0) as done:
        for number, sampler in enumerate(samplers, 1):
            log.info("candidate %d of %d: sampler %s, fitting on %s rows", number, len(samplers), sampler,
                     f"{int(fit.sum()):,}")  # fmt: skip
            started = time.perf_counter()
            pipeline = fit_pipeline(
                build_pipeline(sampler, params), train[fit], y[fit], train[stop], y[stop],
                params.lightgbm.early_stopping_rounds, resampled=sampler != "none",
            )  # fmt: skip
            raw = np.clip(churn_probability(pipeline, selection), 1e-15, 1 - 1e-15)
            model = calibrate(pipeline, train[cal], y[cal], params.train.calibration)
            p = np.clip(churn_probability(model, selection), 1e-15, 1 - 1e-15)
            models[sampler] = model
            figures[f"selection_log_loss_{sampler}"] = float(log_loss(y_sel, p, labels=[0, 1]))
            figures[f"selection_log_loss_{sampler}_uncalibrated"] = float(log_loss(y_sel, raw, labels=[0, 1]))
            figures[f"best_iteration_{sampler}"] = float(pipeline.named_steps["model"].best_iteration_ or 0)
            figures[f"fit_seconds_{sampler}"] = round(time.perf_counter() - started, 3)
            log.info(
                "sampler %s: selection log loss %.5f (uncalibrated %.5f)",
                sampler,
                figures[f"selection_log_loss_{sampler}"],
                figures[f"selection_log_loss_{sampler}_uncalibrated"],
            )
            done.advance()
    return models, figures


def model_requirements() -> list[str]:
    """Pinned pip requirements of the model artifact (inferring them costs seconds per model)."""
    return [f"{name}=={package_version(name)}" for name in MODEL_REQUIREMENTS]


def _evaluate(lake: Lake, cohort: str, val: pd.DataFrame, p: np.ndarray) -> dict[str, float]:
    """Validation metrics, and the oracle's when the cohort was generated (how far from the best)."""
    y_val = val["is_churn"].to_numpy()
    metrics = classification_metrics(y_val, p)
    metrics["rows_val"] = float(len(val))
    metrics["val_churn_rate"] = float(y_val.mean())
    metrics["val_rows_without_features"] = float(val["last_plan_days"].isna().sum())
    oracle = oracle_probabilities(lake, cohort)
    if oracle is not None:
        joined = val[["msno", "is_churn"]].merge(oracle, on="msno", how="inner")
        truth = classification_metrics(
            joined["is_churn"].to_numpy(), joined["churn_probability"].to_numpy(), prefix="oracle_"
        )
        metrics["oracle_log_loss"] = truth["oracle_log_loss"]
        metrics["oracle_roc_auc"] = truth["oracle_roc_auc"]
        metrics["val_log_loss_over_oracle"] = metrics["val_log_loss"] / truth["oracle_log_loss"]
    return metrics


def _gate(settings: Settings, val: pd.DataFrame, log_loss_value: float) -> registry.Decision:
    """The promotion decision against the champion scored on the same frame (the selection users)."""
    champion_ll, champion_version, how = _champion_log_loss(settings, val, val["is_churn"].to_numpy())
    if how not in {"evaluated", "no champion"}:
        return registry.Decision(True, how, log_loss_value, None, champion_version)
    return registry.decide_promotion(log_loss_value, champion_ll, settings.promotion_margin, champion_version)


def _log_and_register(
    settings: Settings, run_params: dict[str, Any], tags: dict[str, str], model: Any, val: pd.DataFrame,
    p: np.ndarray, metrics: dict[str, float], decision: registry.Decision, reference: pd.DataFrame,
    splits: dict[str, Any],
) -> tuple[str, int]:  # fmt: skip
    """One MLflow run: params, plots, the model (registered) with its drift reference, metrics, the
    decision. -> (run id, version)."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    booster = inner_pipeline(model).named_steps["model"].booster_
    importance = dict(zip(booster.feature_name(), booster.feature_importance("gain").tolist(), strict=True))
    features = val[list(FEATURE_NAMES)]
    title = f"cohort {tags['val_cohort']}"
    experiment = registry.experiment_id(settings)
    with mlflow.start_run(experiment_id=experiment, run_name=f"train-{tags['val_cohort']}", tags=tags) as run:
        mlflow.log_params(run_params)
        for name, figure in plots(val["is_churn"].to_numpy(), p, importance, title).items():
            mlflow.log_figure(figure, f"plots/{name}")
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(features.head(100), p[:100]),
            input_example=features.head(5),
            pip_requirements=model_requirements(),
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            registered_model_name=settings.model_name,
        )
        version = int(info.registered_model_version)
        log_reference(reference)
        mlflow.log_metrics(metrics)
        mlflow.set_tags(
            {
                "promotion.decision": "promoted" if decision.promote else "kept champion",
                "promotion.reason": decision.reason,
                "registered_version": str(version),
            }
        )
        mlflow.log_dict({**asdict(decision), "version": version, "margin": settings.promotion_margin},
                        "promotion.json")  # fmt: skip
        mlflow.log_dict(splits, "splits.json")
    mlflow_client = registry.client(settings)
    for key, value in {**tags, "val_log_loss": f"{metrics['val_log_loss']:.6f}"}.items():
        mlflow_client.set_model_version_tag(settings.model_name, str(version), key, value)
    return run.info.run_id, version


def train(
    lake: Lake,
    settings: Settings,
    params: Params,
    cohort: str,
    run_id: str,
    sample_fraction: float = 1.0,
    promote: bool = True,
    allow_short_history: bool = False,
) -> TrainResult:
    """Train on the cohorts before `cohort`, validate on it, register the best candidate, gate it.

    `sample_fraction` < 1 trains on that share of the training users (a stable hash: quick trial runs);
    the validation cohort is never sampled. With `promote` False the version is registered as
    challenger whatever its figures (the gate's figures are still computed and logged).

    A Silver that does not cover every cohort's eve (`history_gaps`) stops the run (ShortHistoryError)
    before anything is built. Without any training cohort whose eve has transactions, or without them on
    the validation cohort's eve (the "v2" set alone), no training exists and `allow_short_history` does
    not change that. Otherwise `allow_short_history` trains on the cohorts whose eve has transactions
    (the others are left out) with the listening features Silver cannot see missing; the figures are
    then not comparable with a full-history model's, so the version is registered as challenger, tagged
    `short_history`, and only a manual `churn model promote` makes it champion.
    """
    if not 0.0 < sample_fraction <= 1.0:
        raise ChurnError(f"sample_fraction must be in (0, 1], got {sample_fraction}")
    started = time.perf_counter()
    train_cohorts = training_cohorts(cohort, params.train.train_cohorts)
    gaps = history_gaps(lake, [*train_cohorts, cohort])
    trainable = [month for month in train_cohorts if "transactions" not in gaps.get(month, [])]
    if gaps and (not allow_short_history or not trainable or "transactions" in gaps.get(cohort, [])):
        raise short_history_error(lake, cohort, train_cohorts, gaps, trainable)  # before building anything
    short_history = describe_gaps(gaps)
    train_cohorts = trainable
    for month in [*train_cohorts, cohort]:
        ensure_gold(lake, settings, month, run_id)
    train_frame, knowable = knowable_training_frame(lake, cohort, train_cohorts)
    if sample_fraction < 1.0:
        keep = user_fraction(train_frame["user_id"].to_numpy(), params.train.seed + 1) < sample_fraction
        train_frame = train_frame[keep].reset_index(drop=True)
    selection, val = validation_split(labelled_frame(lake, cohort), params)
    for name, frame in (("training", train_frame), ("validation selection", selection),
                        ("validation reported", val)):  # fmt: skip
        if frame["is_churn"].nunique() < 2:
            raise ChurnError(
                f"the {name} users have {len(frame)} labelled users of one class only (training: labels "
                f"knowable on {snapshot_date(cohort)} of cohorts {', '.join(train_cohorts)})"
            )

    models, figures = _fit_candidates(params, train_frame, selection)
    sampler = min(models, key=lambda name: figures[f"selection_log_loss_{name}"])
    model = models[sampler]
    p = churn_probability(model, val)
    metrics = {**figures, **_evaluate(lake, cohort, val, p), "rows_train": float(len(train_frame)),
               "rows_selection": float(len(selection)),
               "rows_train_unknowable": float(sum(c["rows"] - c["knowable"] for c in knowable.values())),
               "selection_log_loss": figures[f"selection_log_loss_{sampler}"]}  # fmt: skip
    decision = _gate(settings, selection, metrics["selection_log_loss"])
    if not promote and decision.promote:
        decision = registry.Decision(False, f"promotion disabled by the caller (gate: {decision.reason})",
                                     decision.challenger_log_loss, decision.champion_log_loss,
                                     decision.champion_version)  # fmt: skip
    if short_history:
        decision = registry.Decision(False, f"short history ({short_history}): challenger only, "
                                     f"gate: {decision.reason}", decision.challenger_log_loss,
                                     decision.champion_log_loss, decision.champion_version)  # fmt: skip
    tags = {**lineage_tags(lake, cohort, train_cohorts), "churn_run_id": run_id, "sampler": sampler}
    if short_history:
        tags["short_history"] = short_history
    run_params = {
        **params.flat(),
        "sampler": sampler,
        "val_cohort": cohort,
        "train_cohorts": ",".join(train_cohorts),
        "promotion_margin": settings.promotion_margin,
        "sample_fraction": sample_fraction,
        "promote_requested": promote,
        "allow_short_history": allow_short_history,
    }
    metrics["train_seconds"] = round(time.perf_counter() - started, 3)
    reference = reference_sample(gold.read_features(lake, snapshot_date(cohort)), model,
                                       settings.active_grace_days, params.train.seed)  # fmt: skip
    splits = {
        "eve": str(snapshot_date(cohort)),
        "training": {"rule": "expiry + 30 days <= eve", "cohorts": knowable,
                     "sample_fraction": sample_fraction, "rows": len(train_frame),
                     "fit": int(metrics["rows_fit"]), "early_stopping": int(metrics["rows_early_stopping"]),
                     "calibration": int(metrics["rows_calibration"])},
        "validation": {"cohort": cohort, "hash_seed": params.train.seed + 2,
                       "selection_share": params.train.selection_share, "selection_rows": len(selection),
                       "reported_rows": len(val), "selection_uses": ["sampler choice", "promotion gate"],
                       "reported_uses": ["val_* metrics"]},
    }  # fmt: skip
    mlflow_run, version = _log_and_register(settings, run_params, tags, model, val, p, metrics, decision,
                                            reference, splits)  # fmt: skip
    registry.apply_decision(settings, version, decision)
    return TrainResult(mlflow_run, version, sampler, metrics, decision, model, train_cohorts)
