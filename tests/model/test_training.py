"""Training end to end on a small generated lake, with a real MLflow store (SQLite + local artifacts).

One module-scoped store sees four trainings in order, which exercises the gate in both directions:
a weak model (first: promoted), a strong one (beats it: promoted), the weak one again (does not beat the
strong champion: challenger), then a manual rollback.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import mlflow.artifacts
import numpy as np
import pytest

from churn.data.silver import silver_version
from churn.errors import ChurnError
from churn.features.labels import RENEWAL_WINDOW_DAYS, snapshot_date
from churn.features.spec import FEATURE_NAMES, SPEC_HASH
from churn.lake import Lake
from churn.model import registry
from churn.model.params import Params
from churn.model.pipeline import FeatureFrameError, churn_probability
from churn.model.training import (
    TrainResult,
    knowable_training_frame,
    labelled_frame,
    lineage_tags,
    train,
    validation_split,
)
from churn.settings import Settings

COHORT = "2017-03"
METRICS = ("val_log_loss", "val_roc_auc", "val_pr_auc", "val_brier", "val_ece", "val_lift_top_decile",
           "oracle_log_loss", "oracle_roc_auc", "selection_log_loss", "selection_log_loss_none",
           "selection_log_loss_random_under")  # fmt: skip


@pytest.fixture(scope="module")
def setup(small_lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, Settings]:
    root = tmp_path_factory.mktemp("training")
    settings = Settings(
        lake_url=small_lake.url,
        silver_buckets=4,
        dask_workers=1,
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        mlflow_artifact_location=str(root / "artifacts"),
    )
    return small_lake, settings


def weak(params: Params) -> Params:
    """The same pipeline with two stumps that may not split (no leaf can hold a million users): the base
    rate, calibrated. Clearly worse, still a valid model."""
    weakened = {"n_estimators": 2, "num_leaves": 2, "min_child_samples": 1_000_000}
    return params.model_copy(update={"lightgbm": params.lightgbm.model_copy(update=weakened)})


@pytest.fixture(scope="module")
def runs(setup: tuple[Lake, Settings], params: Params) -> dict[str, TrainResult]:
    lake, settings = setup
    results = {"weak": train(lake, settings, weak(params), COHORT, "t-weak")}
    # better than the weak champion, but the caller forbids promotion
    results["held-back"] = train(lake, settings, params, COHORT, "t-held-back", promote=False)
    results["strong"] = train(lake, settings, params, COHORT, "t-strong")
    results["weak-again"] = train(lake, settings, weak(params), COHORT, "t-weak-again")
    results["sampled"] = train(
        lake, settings, params, COHORT, "t-sampled", sample_fraction=0.5, promote=False
    )
    return results


def _client(settings: Settings) -> Any:
    return registry.client(settings)


def test_run_logs_all_metrics_plots_and_lineage(
    setup: tuple[Lake, Settings], runs: dict[str, TrainResult]
) -> None:
    lake, settings = setup
    result = runs["strong"]
    run = _client(settings).get_run(result.run_id)
    for name in METRICS:
        assert np.isfinite(run.data.metrics[name]), name
    candidates = [run.data.metrics[f"selection_log_loss_{name}"] for name in ("none", "random_under")]
    assert run.data.metrics["selection_log_loss"] == min(candidates)
    assert run.data.params["sampler"] == result.sampler
    assert run.data.params["train_cohorts"] == "2016-12,2017-01"  # 2017-02's labels mature in March
    artifacts = {a.path for a in _client(settings).list_artifacts(result.run_id, "plots")}
    assert artifacts == {f"plots/{n}.png" for n in ("roc", "pr", "calibration", "feature_importance")}
    tags = run.data.tags
    assert tags["feature_spec_hash"] == SPEC_HASH
    assert tags["data_version"] == silver_version(lake)
    assert len(tags["git_commit"]) in {40, len("unknown")}
    version = _client(settings).get_model_version(settings.model_name, str(result.version))
    assert version.tags["val_cohort"] == COHORT
    assert version.tags["data_version"] == silver_version(lake)


def test_model_round_trips_through_mlflow_with_identical_probabilities(
    setup: tuple[Lake, Settings], runs: dict[str, TrainResult]
) -> None:
    lake, settings = setup
    result = runs["strong"]
    val = labelled_frame(lake, COHORT)
    loaded = registry.load_model(settings, result.version)
    assert np.array_equal(churn_probability(loaded, val), churn_probability(result.model, val))
    folder = mlflow.artifacts.download_artifacts(f"models:/{settings.model_name}/{result.version}")
    requirements = (Path(folder) / "requirements.txt").read_text()
    assert "lightgbm==" in requirements and "scikit-learn==" in requirements


def test_loaded_model_names_a_missing_or_mistyped_column(
    setup: tuple[Lake, Settings], runs: dict[str, TrainResult]
) -> None:
    lake, settings = setup
    loaded = registry.load_model(settings, "champion")
    val = labelled_frame(lake, COHORT)
    with pytest.raises(FeatureFrameError, match="missing column\\(s\\): days_to_expiry"):
        loaded.predict_proba(val.drop(columns=["days_to_expiry"]))
    with pytest.raises(FeatureFrameError, match="column 'n_lapses' has dtype object"):
        loaded.predict_proba(val.assign(n_lapses=val["n_lapses"].astype(str)))


def test_gate_promotes_first_and_better_models_and_keeps_the_champion_against_a_worse_one(
    setup: tuple[Lake, Settings], runs: dict[str, TrainResult]
) -> None:
    _, settings = setup
    first, strong, again = runs["weak"], runs["strong"], runs["weak-again"]
    assert first.decision.promote and first.decision.reason == "no champion to beat"
    assert strong.decision.promote
    assert strong.decision.champion_version == first.version
    assert strong.metrics["selection_log_loss"] < strong.decision.champion_log_loss
    assert not again.decision.promote
    assert again.decision.champion_log_loss == pytest.approx(strong.metrics["selection_log_loss"])
    assert registry.alias_version(settings, registry.CHAMPION) == strong.version
    assert registry.alias_version(settings, registry.CHALLENGER) in {again.version, runs["sampled"].version}
    tags = _client(settings).get_model_version(settings.model_name, str(again.version)).tags
    assert tags["promotion.decision"] == "kept champion"
    assert f"champion v{strong.version}" in tags["promotion.reason"]
    promotion = _client(settings).download_artifacts(again.run_id, "promotion.json")
    assert '"promote": false' in Path(promotion).read_text()


def test_manual_promotion_rolls_back_and_forward(
    setup: tuple[Lake, Settings], runs: dict[str, TrainResult]
) -> None:
    _, settings = setup
    strong, first = runs["strong"], runs["weak"]
    try:
        assert registry.promote(settings, first.version) == strong.version
        assert registry.alias_version(settings, registry.CHAMPION) == first.version
        listed = {row["version"]: row for row in registry.list_versions(settings)}
        assert listed[first.version]["aliases"] == ["champion"]
        assert listed[strong.version]["val_log_loss"] == pytest.approx(strong.metrics["val_log_loss"])
    finally:
        registry.promote(settings, strong.version)
    assert registry.alias_version(settings, registry.CHAMPION) == strong.version
    with pytest.raises(ChurnError, match="has no version 99"):
        registry.promote(settings, 99)


def test_airflow_run_is_tagged(setup: tuple[Lake, Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    lake, _ = setup
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "churn_train")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__2017-04-01")
    tags = lineage_tags(lake, COHORT, ["2017-02"])
    assert (tags["airflow_dag_id"], tags["airflow_run_id"]) == ("churn_train", "manual__2017-04-01")


def test_feature_list_of_the_signature_is_the_spec(
    setup: tuple[Lake, Settings], runs: dict[str, TrainResult]
) -> None:
    _, settings = setup
    from mlflow.models import get_model_info

    info = get_model_info(f"models:/{settings.model_name}/{runs['strong'].version}")
    assert info.signature.inputs.input_names() == list(FEATURE_NAMES)


def test_promotion_can_be_held_back_and_training_users_sampled(
    setup: tuple[Lake, Settings], runs: dict[str, TrainResult]
) -> None:
    _, settings = setup
    held, full, sampled = runs["held-back"], runs["strong"], runs["sampled"]
    assert not held.decision.promote and held.decision.reason.startswith("promotion disabled by the caller")
    assert held.metrics["val_log_loss"] < runs["weak"].metrics["val_log_loss"]  # the gate alone would promote
    assert registry.alias_version(settings, registry.CHAMPION) == full.version
    assert 0.4 * full.metrics["rows_train"] < sampled.metrics["rows_train"] < 0.6 * full.metrics["rows_train"]
    assert sampled.metrics["rows_val"] == full.metrics["rows_val"]  # validation is never sampled
    run = _client(settings).get_run(sampled.run_id)
    assert run.data.params["sample_fraction"] == "0.5" and run.data.params["promote_requested"] == "False"


def test_the_train_command_takes_overrides_a_sample_and_no_promotion(setup: tuple[Lake, Settings]) -> None:
    """`churn train` reaches every option of the training step (the DAG's form has them too)."""
    from tests.unit.test_cli import run_churn

    lake, settings = setup
    env = {"CHURN_LAKE_URL": lake.url, "CHURN_SILVER_BUCKETS": "4", "CHURN_DASK_WORKERS": "1",
           "CHURN_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
           "CHURN_MLFLOW_ARTIFACT_LOCATION": settings.mlflow_artifact_location,
           "CHURN_PARAMS_FILE": str(Path(__file__).resolve().parents[2] / "params.yaml")}  # fmt: skip
    champion = registry.alias_version(settings, registry.CHAMPION)
    options = ["--no-promote", "--sample-fraction", "0.5", "--set", "lightgbm.num_leaves=4",
               "--set", "train.samplers=[none]", "--set", "train.train_cohorts=2"]  # fmt: skip
    result = run_churn("train", "--cohort", COHORT, *options, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "(sampler none," in result.stdout and "challenger: promotion disabled by the caller" in result.stdout
    )
    run_id = result.stdout.rsplit("(MLflow run ", 1)[1].split(",")[0]
    logged = _client(settings).get_run(run_id).data.params
    assert (logged["sample_fraction"], logged["lightgbm.num_leaves"], logged["promote_requested"]) == (
        "0.5", "4", "False")  # fmt: skip
    assert registry.alias_version(settings, registry.CHAMPION) == champion
    bad = run_churn("train", "--cohort", COHORT, "--set", "lightgbm.no_such=1", env=env)
    assert bad.returncode == 1 and "lightgbm.no_such" in bad.stderr, bad.stderr


def _splits(settings: Settings, result: TrainResult) -> dict[str, Any]:
    return mlflow.artifacts.load_dict(f"runs:/{result.run_id}/splits.json")


def test_no_training_label_matures_after_the_validation_eve(
    setup: tuple[Lake, Settings], runs: dict[str, TrainResult], params: Params
) -> None:
    lake, settings = setup
    result = runs["strong"]
    eve = (snapshot_date(COHORT) - dt.date(1970, 1, 1)).days
    frame, counts = knowable_training_frame(lake, COHORT, result.train_cohorts)
    assert len(frame) == result.metrics["rows_train"] > 500  # what training read, exactly
    assert (frame["label_expiry"] + RENEWAL_WINDOW_DAYS <= eve).all()
    # Not vacuous: the last training cohort (January) has expiries too late to be known on February 28.
    january = labelled_frame(lake, "2017-01", with_msno=False)
    assert (
        (january["label_expiry"] + RENEWAL_WINDOW_DAYS > eve).sum()
        == counts["2017-01"]["rows"] - counts["2017-01"]["knowable"]
        > 0
    )
    assert "2017-02" not in result.train_cohorts  # M-1: none of its labels is known on M's eve
    assert _splits(settings, result)["training"]["cohorts"] == counts


def test_reported_metrics_come_from_users_never_used_for_selection(
    setup: tuple[Lake, Settings], runs: dict[str, TrainResult], params: Params
) -> None:
    from sklearn.metrics import log_loss

    lake, settings = setup
    result = runs["strong"]
    selection, reported = validation_split(labelled_frame(lake, COHORT), params)
    assert set(selection["user_id"]).isdisjoint(reported["user_id"]) and len(selection) > 100
    on_reported = log_loss(reported["is_churn"], churn_probability(result.model, reported), labels=[0, 1])
    on_selection = log_loss(selection["is_churn"], churn_probability(result.model, selection), labels=[0, 1])
    assert result.metrics["val_log_loss"] == pytest.approx(on_reported, rel=1e-9)
    assert result.metrics["selection_log_loss"] == pytest.approx(on_selection, rel=1e-9)
    assert result.decision.challenger_log_loss == result.metrics["selection_log_loss"]  # the gate's figure
    assert result.metrics["rows_val"] == len(reported) and result.metrics["rows_selection"] == len(selection)
    split = _splits(settings, result)["validation"]
    assert (split["selection_rows"], split["reported_rows"]) == (len(selection), len(reported))
