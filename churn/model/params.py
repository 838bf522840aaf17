"""Training hyperparameters from `params.yaml`, validated, so a typo stops a run before any work.

The same file is DVC's params file, so a change to it is both logged to MLflow (every field becomes a run
param) and tracked by DVC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from churn.errors import ChurnError


class TrainParams(BaseModel):
    """What data the model sees and how its probabilities are corrected."""

    model_config = ConfigDict(extra="forbid")

    train_cohorts: int = Field(ge=1, le=36)
    samplers: list[Literal["none", "random_under", "random_over"]] = Field(min_length=1)
    sampling_ratio: float = Field(gt=0.0, le=1.0)
    early_stopping_share: float = Field(gt=0.0, lt=0.5)
    calibration_share: float = Field(gt=0.0, lt=0.5)
    calibration: Literal["sigmoid", "isotonic"]
    selection_share: float = Field(default=0.5, gt=0.0, lt=1.0)
    seed: int


class LightGBMParams(BaseModel):
    """LightGBM's own parameters (early_stopping_rounds goes to the early-stopping callback)."""

    model_config = ConfigDict(extra="forbid")

    n_estimators: int = Field(ge=1)
    learning_rate: float = Field(gt=0.0, le=1.0)
    num_leaves: int = Field(ge=2)
    min_child_samples: int = Field(ge=1)
    subsample: float = Field(gt=0.0, le=1.0)
    subsample_freq: int = Field(ge=0)
    colsample_bytree: float = Field(gt=0.0, le=1.0)
    reg_lambda: float = Field(ge=0.0)
    early_stopping_rounds: int = Field(ge=1)


class PipelineParams(BaseModel):
    """What the DVC pipeline generates and trains on (dvc.yaml's stages read these)."""

    model_config = ConfigDict(extra="forbid")

    profile: str = "tiny"
    seed: int = 7
    cohort: str = Field(default="2017-03", pattern=r"^\d{4}-\d{2}$")


class Params(BaseModel):
    """The whole params file."""

    model_config = ConfigDict(extra="forbid")

    train: TrainParams
    lightgbm: LightGBMParams
    pipeline: PipelineParams = Field(default_factory=PipelineParams)

    def flat(self) -> dict[str, Any]:
        """`section.key` -> value, the form MLflow params take."""
        return {
            f"{section}.{key}": value
            for section, values in self.model_dump().items()
            for key, value in values.items()
        }


def _validated(data: Any, source: str) -> Params:
    """Params from plain data; every problem named as `<source>: section.field: message`."""
    try:
        return Params.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        raise ChurnError(f"{source}: {problems}") from None


def load_params(path: str | Path) -> Params:
    """Read and validate a params file; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise ChurnError(f"{path}: params file not found (set CHURN_PARAMS_FILE or run from the repo root)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ChurnError(f"{path}: not valid YAML: {error}") from None
    return _validated(raw, str(path))


def with_overrides(params: Params, overrides: dict[str, Any]) -> Params:
    """Params with `{"lightgbm.num_leaves": 31, "train.samplers": ["none"]}`-style overrides applied and
    validated like the file (an unknown key or bad value names itself)."""
    data = params.model_dump()
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if section not in data or not name:
            raise ChurnError(f"override {key!r}: use section.name with section train or lightgbm")
        data[section][name] = value
    return _validated(data, "overrides")
