"""The champion, loaded one way for everyone: alias -> version -> model + metadata, refused when this
code cannot serve it.

Nightly scoring, the API (through `churn.model.serving.ChampionHolder`), the training gate and the weekly
monitoring all ask here, so a version one of them refuses is refused by all of them, with the same reason:
a champion trained on another feature spec would be fed features it was not trained on (same names,
other meaning), which no error would ever show.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from churn.errors import ChurnError
from churn.features.spec import SPEC_HASH
from churn.model import registry
from churn.model.pipeline import inner_pipeline
from churn.settings import Settings


class ModelUnavailableError(ChurnError):
    """No champion can be used (none registered, or the one named cannot be served); the message is
    safe to answer with (no paths or hosts)."""


class FeatureSpecError(ModelUnavailableError):
    """The version was trained on another feature spec than this code builds."""


@dataclass(frozen=True)
class LoadedModel:
    """A loaded registered version and what callers report about it."""

    name: str
    version: int
    model: Any
    features: list[str]
    trained_at: dt.datetime
    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def champion_version(settings: Settings) -> int:
    """The version the champion alias names; ModelUnavailableError when there is none."""
    version = registry.alias_version(settings, registry.CHAMPION)
    if version is None:
        raise ModelUnavailableError(
            f"{settings.model_name} has no champion yet: run `churn train --cohort YYYY-MM` first"
        )
    return version


def spec_problem(version: int, tags: dict[str, str]) -> str | None:
    """Why a version cannot be served by this code (trained on another feature spec), None when it can;
    the remedy is in the text."""
    spec = tags.get("feature_spec_hash")
    if spec and spec != SPEC_HASH:
        return (f"v{version} was trained on feature spec {spec}, this code builds {SPEC_HASH}: retrain "
                "(`churn train`) or promote a version trained on the current spec")  # fmt: skip
    return None


def load_version(settings: Settings, version: int) -> LoadedModel:
    """One registered version with its metadata; FeatureSpecError (before the artifact is read) for one
    of another feature spec. Registry and artifact failures propagate: a caller decides whether an outage
    stops it (scoring, training) or keeps what it has (the API)."""
    client = registry.client(settings)
    details = client.get_model_version(settings.model_name, str(version))
    tags = dict(details.tags)
    problem = spec_problem(version, tags)
    if problem:
        raise FeatureSpecError(problem)
    model = registry.load_model(settings, version)
    metrics = client.get_run(details.run_id).data.metrics if details.run_id else {}
    return LoadedModel(
        name=settings.model_name,
        version=version,
        model=model,
        features=list(inner_pipeline(model).named_steps["features"].features),
        trained_at=dt.datetime.fromtimestamp(details.creation_timestamp / 1000, dt.UTC),
        run_id=details.run_id or "",
        metrics={k: v for k, v in metrics.items() if k.startswith(("val_", "oracle_"))},
        tags=tags,
    )


def load_champion(settings: Settings) -> LoadedModel:
    """The champion alias's version, loaded and checked (`champion_version`, `load_version`)."""
    return load_version(settings, champion_version(settings))
