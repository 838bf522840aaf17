"""The experiment's artifact location: a URI (the compose stack's proxied `mlflow-artifacts:/`, s3://) is
kept as given; a plain path becomes an absolute file URI."""

from __future__ import annotations

from pathlib import Path

import pytest

from churn.model import registry
from churn.settings import Settings


@pytest.mark.parametrize(
    "location", ["mlflow-artifacts:/churn", "s3://mlflow/artifacts", "relative/artifacts"]
)
def test_artifact_location_of_a_new_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, location: str
) -> None:
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = Settings(mlflow_tracking_uri=store, mlflow_artifact_location=location)
    experiment = registry.client(settings).get_experiment(registry.experiment_id(settings))
    expected = (tmp_path / location).as_uri() if location.startswith("relative") else location
    assert experiment.artifact_location == expected
