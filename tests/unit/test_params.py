"""params.yaml: the repository's file is valid; mistakes are named by file and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from churn.errors import ChurnError
from churn.model.params import load_params, with_overrides

REPO = Path(__file__).resolve().parents[2]


def test_repository_params_file_is_valid() -> None:
    params = load_params(REPO / "params.yaml")
    assert "none" in params.train.samplers
    assert params.flat()["lightgbm.learning_rate"] == params.lightgbm.learning_rate


def test_bad_value_names_the_field(tmp_path: Path) -> None:
    text = (REPO / "params.yaml").read_text().replace("calibration: sigmoid", "calibration: platt")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(
        ChurnError, match=re.escape("params.yaml: train.calibration: Input should be 'sigmoid' or 'isotonic'")
    ):
        load_params(path)


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text().replace("num_leaves:", "num_leafs:"))
    with pytest.raises(ChurnError, match=re.escape("lightgbm.num_leafs: Extra inputs are not permitted")):
        load_params(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ChurnError, match=re.escape("nope.yaml: params file not found")):
        load_params(tmp_path / "nope.yaml")


def test_overrides_apply_and_are_validated() -> None:
    params = load_params(REPO / "params.yaml")
    changed = with_overrides(params, {"lightgbm.num_leaves": 31, "train.samplers": ["none"]})
    assert changed.lightgbm.num_leaves == 31 and changed.train.samplers == ["none"]
    assert params.lightgbm.num_leaves != 31 or params.train.samplers != ["none"]  # the original is untouched
    with pytest.raises(
        ChurnError, match=re.escape("overrides: lightgbm.num_leaves: Input should be greater")
    ):
        with_overrides(params, {"lightgbm.num_leaves": 1})
    with pytest.raises(ChurnError, match=re.escape("use section.name")):
        with_overrides(params, {"num_leaves": 31})
