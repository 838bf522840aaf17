"""MLflow tracking and the model registry: where models are logged, which one is champion, and why.

The registered model (`CHURN_MODEL_NAME`, default kkbox-churn) carries two aliases: `champion` (what
scoring and the API load) and `challenger` (the newest version that did not beat the champion). Every
alias change made here is also written to the version's tags, so the registry itself says who promoted a
version, when, and on what figures.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn.errors import ChurnError
from churn.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"
CANARY_TAG = "canary_share"  # the share of live predictions the challenger answers (churn.model.canary)


@dataclass(frozen=True)
class Decision:
    """The outcome of the promotion gate and the figures it was decided on."""

    promote: bool
    reason: str
    challenger_log_loss: float
    champion_log_loss: float | None
    champion_version: int | None


def decide_promotion(
    challenger_log_loss: float,
    champion_log_loss: float | None,
    margin: float,
    champion_version: int | None = None,
) -> Decision:
    """Promote when there is no champion, or the challenger's log loss on the same cohort is lower than
    the champion's by more than `margin` (relative: 0.01 = 1% lower). A tie keeps the champion."""
    if champion_log_loss is None:
        return Decision(True, "no champion to beat", challenger_log_loss, None, champion_version)
    bar = champion_log_loss * (1.0 - margin)
    if challenger_log_loss < bar:
        reason = (
            f"log loss {challenger_log_loss:.5f} beats champion v{champion_version}'s "
            f"{champion_log_loss:.5f} by more than the {margin:.1%} margin"
        )
        return Decision(True, reason, challenger_log_loss, champion_log_loss, champion_version)
    reason = (
        f"log loss {challenger_log_loss:.5f} does not beat champion v{champion_version}'s "
        f"{champion_log_loss:.5f} by the {margin:.1%} margin (needs < {bar:.5f})"
    )
    return Decision(False, reason, challenger_log_loss, champion_log_loss, champion_version)


def _prepare_local_store(uri: str) -> None:
    """Create the folder of a local SQLite store (MLflow does not)."""
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def client(settings: Settings) -> MlflowClient:
    """An MLflow client on the configured tracking and registry store (also set as MLflow's default)."""
    import mlflow

    _prepare_local_store(settings.mlflow_tracking_uri)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    return mlflow.MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)


def experiment_id(settings: Settings) -> str:
    """The experiment named like the model, created with the configured artifact location if new."""
    mlflow_client = client(settings)
    existing = mlflow_client.get_experiment_by_name(settings.model_name)
    if existing is not None:
        return existing.experiment_id
    location = settings.mlflow_artifact_location
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", location):  # a path (mlflow-artifacts:/, s3://: URIs)
        path = Path(location).resolve()
        path.mkdir(parents=True, exist_ok=True)
        location = path.as_uri()
    return mlflow_client.create_experiment(settings.model_name, artifact_location=location)


def alias_version(settings: Settings, alias: str) -> int | None:
    """The version number holding an alias, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return int(client(settings).get_model_version_by_alias(settings.model_name, alias).version)
    except MlflowException as error:
        if error.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}:
            return None
        raise


def previous_champions(settings: Settings, below: int) -> list[int]:
    """Versions under `below` that were champion once (a `promotion.decision` tag of "promoted" or
    "promoted by hand", written by every promotion made here), newest first: where a server falls back to
    when the aliased version cannot be loaded."""
    mlflow_client = client(settings)
    versions = mlflow_client.search_model_versions(f"name = '{settings.model_name}'")
    promoted = [
        int(v.version)
        for v in versions
        if int(v.version) < below and v.tags.get("promotion.decision", "").startswith("promoted")
    ]
    return sorted(promoted, reverse=True)


def load_model(settings: Settings, version: int | str) -> Any:
    """The fitted scikit-learn model of a registered version (a number or an alias)."""
    import mlflow.sklearn

    client(settings)
    reference = f"@{version}" if isinstance(version, str) and not version.isdigit() else f"/{version}"
    return mlflow.sklearn.load_model(f"models:/{settings.model_name}{reference}")


def _stamp(mlflow_client: MlflowClient, name: str, version: int, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, str(version), key, value)


def _now() -> str:
    """Audit timestamp of an alias change (records when it happened; never used to choose data)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def apply_decision(settings: Settings, version: int, decision: Decision) -> None:
    """Move the aliases as the gate decided and record the decision on the version."""
    mlflow_client = client(settings)
    name = settings.model_name
    tags = {"promotion.decision": "promoted" if decision.promote else "kept champion",
            "promotion.reason": decision.reason, "promotion.at": _now()}  # fmt: skip
    if decision.champion_log_loss is not None:
        tags["promotion.champion_val_log_loss"] = f"{decision.champion_log_loss:.6f}"
        tags["promotion.champion_version"] = str(decision.champion_version)
    _stamp(mlflow_client, name, version, tags)
    if decision.promote:
        mlflow_client.set_registered_model_alias(name, CHAMPION, str(version))
        if alias_version(settings, CHALLENGER) == version:
            mlflow_client.delete_registered_model_alias(name, CHALLENGER)
    else:
        mlflow_client.set_registered_model_alias(name, CHALLENGER, str(version))


def promote(settings: Settings, version: int) -> int | None:
    """Make `version` champion by hand (roll forward or back); returns the previous champion's version."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(settings)
    name = settings.model_name
    try:
        mlflow_client.get_model_version(name, str(version))
    except MlflowException:
        raise ChurnError(f"{name} has no version {version} (see `churn model list`)") from None
    previous = alias_version(settings, CHAMPION)
    mlflow_client.set_registered_model_alias(name, CHAMPION, str(version))
    if alias_version(settings, CHALLENGER) == version:
        mlflow_client.delete_registered_model_alias(name, CHALLENGER)
    _stamp(mlflow_client, name, version, {
        "promotion.decision": "promoted by hand", "promotion.at": _now(),
        "promotion.reason": f"churn model promote --version {version}"
        + (f" (champion was v{previous})" if previous else ""),
    })  # fmt: skip
    return previous


def set_canary_share(settings: Settings, share: float) -> int:
    """Let the challenger answer `share` of live predictions (0 stops it); -> its version. ChurnError
    without a challenger or for a share outside [0, 1]."""
    if not 0.0 <= share <= 1.0:
        raise ChurnError(f"the canary share must be between 0 and 1, got {share}")
    version = alias_version(settings, CHALLENGER)
    if version is None:
        raise ChurnError(f"{settings.model_name} has no challenger: train one (`churn train --no-promote`)")
    _stamp(client(settings), settings.model_name, version, {CANARY_TAG: repr(share), "canary.at": _now()})
    return version


LISTED_METRICS = ("val_log_loss", "val_roc_auc", "val_ece", "oracle_log_loss")


def list_versions(settings: Settings) -> list[dict[str, Any]]:
    """Every registered version, newest first, with aliases, validation cohort and key metrics."""
    mlflow_client = client(settings)
    versions = mlflow_client.search_model_versions(f"name = '{settings.model_name}'")
    if not versions:
        return []
    # search results do not carry aliases on every store: read them from the registered model
    aliases: dict[str, list[str]] = {}
    for alias, number in mlflow_client.get_registered_model(settings.model_name).aliases.items():
        aliases.setdefault(str(number), []).append(alias)
    rows = []
    for version in sorted(versions, key=lambda v: int(v.version), reverse=True):
        metrics = mlflow_client.get_run(version.run_id).data.metrics if version.run_id else {}
        rows.append({
            "version": int(version.version),
            "aliases": sorted(aliases.get(str(version.version), [])),
            "val_cohort": version.tags.get("val_cohort", ""),
            "created": dt.datetime.fromtimestamp(version.creation_timestamp / 1000, dt.UTC).isoformat(
                timespec="seconds"
            ),
            **{name: metrics.get(name) for name in LISTED_METRICS},
            "run_id": version.run_id,
        })  # fmt: skip
    return rows
