"""The model's first step: clear errors for frames that do not match, cleaning, derived columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.errors import ChurnError
from churn.features.spec import DERIVED, FEATURE_NAMES
from churn.model.params import Params
from churn.model.pipeline import (
    FeatureFrame,
    FeatureFrameError,
    build_pipeline,
    calibrate,
    churn_probability,
    fit_pipeline,
    make_sampler,
)


def frame(rows: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {name: rng.random(rows) * 10 for name in FEATURE_NAMES}
    data["city"] = rng.integers(1, 4, rows).astype(float)
    data["msno"] = [f"user{i}" for i in range(rows)]  # extra columns are ignored
    return pd.DataFrame(data)


def test_missing_column_is_named() -> None:
    step = FeatureFrame().fit(frame())
    with pytest.raises(FeatureFrameError, match="missing column\\(s\\): last_paid, secs_7d"):
        step.transform(frame().drop(columns=["secs_7d", "last_paid"]))


def test_wrong_dtype_is_named() -> None:
    step = FeatureFrame().fit(frame())
    bad = frame().assign(tenure_days=lambda f: f["tenure_days"].astype(str))
    with pytest.raises(FeatureFrameError, match="column 'tenure_days' has dtype object; expected a number"):
        step.transform(bad)


def test_not_a_frame_is_refused() -> None:
    with pytest.raises(FeatureFrameError, match="pandas DataFrame"):
        FeatureFrame().fit(frame()[list(FEATURE_NAMES)].to_numpy())


def test_cleaning_derived_columns_and_unseen_categories() -> None:
    train = frame()
    step = FeatureFrame().fit(train)
    new = frame(3, seed=1)
    new.loc[0, "secs_7d"] = np.inf
    new.loc[1, "last_plan_days"] = 0.0
    new.loc[2, "city"] = 99.0  # a city code training never saw
    out = step.transform(new)
    assert list(out.columns) == [*FEATURE_NAMES, *(d.name for d in DERIVED)]
    assert np.isnan(out.loc[0, "secs_7d"])
    assert np.isnan(out.loc[1, "paid_per_plan_day"])  # no division by a zero plan length
    assert out.loc[2, "paid_per_plan_day"] == pytest.approx(
        new.loc[2, "last_paid"] / new.loc[2, "last_plan_days"]
    )
    assert isinstance(out["city"].dtype, pd.CategoricalDtype)
    assert pd.isna(out.loc[2, "city"])
    assert out["city"].cat.categories.tolist() == sorted(train["city"].unique().tolist())


def test_unknown_sampler_is_refused() -> None:
    with pytest.raises(ChurnError, match="unknown sampler 'smite'"):
        make_sampler("smite", 0.2, 1)


def test_sampler_applies_only_while_fitting_and_calibration_restores_the_rate(params: Params) -> None:
    rng = np.random.default_rng(3)
    data = frame(3000, seed=3)
    y = (rng.random(3000) < 0.05 + 0.1 * (data["secs_7d"] < 2)).astype(int)
    fit, stop, cal = slice(0, 1800), slice(1800, 2400), slice(2400, 3000)
    pipeline = fit_pipeline(
        build_pipeline("random_under", params), data[fit], y[fit], data[stop], y[stop], 10, resampled=True
    )
    raw = churn_probability(pipeline, data)
    assert len(raw) == len(data)  # the sampler did not drop rows at prediction time
    assert raw.mean() > 1.3 * y.mean()  # undersampled training inflates the probabilities...
    model = calibrate(pipeline, data[cal], y[cal], "sigmoid")
    assert abs(churn_probability(model, data).mean() - y.mean()) < 0.02  # ...and calibration undoes it


def test_model_input_is_one_float32_frame_with_the_same_values() -> None:
    """At the real size every float64 copy of the training frame costs gigabytes: the model reads float32,
    and the values (ratios, cleaning) are those of the float64 arithmetic rounded once."""
    train = frame(200)
    out = FeatureFrame().fit(train).transform(train)
    numeric = [name for name in out.columns if name not in FeatureFrame().categorical]
    assert {str(out[name].dtype) for name in numeric} == {"float32"}
    expected = train["last_paid"] / train["last_plan_days"].where(train["last_plan_days"] != 0)
    assert np.allclose(out["paid_per_plan_day"], expected.astype(np.float32), rtol=1e-6, equal_nan=True)
    assert out["city"].dtype == "category" and out["city"].notna().all()
