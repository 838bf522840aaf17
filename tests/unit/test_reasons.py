"""Reasons with a score: exact contributions of the base booster, the strongest kept, stored as JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from churn.features.spec import DERIVED, DESCRIPTIONS, FEATURE_NAMES
from churn.model.params import Params
from churn.model.pipeline import INPUT_NAMES, build_pipeline, calibrate, churn_probability, fit_pipeline
from churn.model.reasons import DOWN, UP, contributions, parse_reasons, raw_score, reasons_json, top_reasons


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {name: rng.random(rows) * 10 for name in FEATURE_NAMES}
    data["city"] = rng.integers(1, 4, rows).astype(float)
    data["secs_7d"][: rows // 10] = np.nan  # missing values have contributions too
    return pd.DataFrame(data)


@pytest.fixture(scope="module")
def model(params: Params) -> object:
    data = frame(3000, seed=5)
    rng = np.random.default_rng(5)
    y = (rng.random(3000) < 0.03 + 0.3 * (data["days_to_expiry"] < 2) + 0.1 * (data["city"] == 2)).astype(int)
    fit, stop, cal = slice(0, 1800), slice(1800, 2400), slice(2400, 3000)
    pipeline = fit_pipeline(build_pipeline("none", params), data[fit], y[fit], data[stop], y[stop], 10,
                            resampled=False)  # fmt: skip
    return calibrate(pipeline, data[cal], y[cal], "sigmoid")


def test_contributions_plus_base_value_equal_the_base_models_log_odds(model: object) -> None:
    users = frame(200, seed=6)
    found = contributions(model, users)
    assert found.terms.shape == (200, len(INPUT_NAMES))
    assert np.allclose(found.terms.sum(axis=1) + found.base, raw_score(model, users), rtol=0, atol=1e-9)
    # and the log-odds are the ones the calibrated probability is a monotone function of
    order = np.argsort(raw_score(model, users))
    assert np.all(np.diff(churn_probability(model, users)[order]) >= -1e-12)


def test_top_reasons_are_the_strongest_terms_in_order_with_their_values(model: object) -> None:
    users = frame(50, seed=7)
    found = contributions(model, users)
    for i, reasons in enumerate(top_reasons(found)):
        up = [r for r in reasons if r.direction == "up"]
        down = [r for r in reasons if r.direction == "down"]
        assert len(up) <= UP and len(down) <= DOWN and reasons == [*up, *down]
        terms = found.terms[i]
        positive = np.sort(terms[terms > 0])[::-1][:UP]
        assert [r.contribution for r in up] == pytest.approx(list(positive), abs=0)
        if (terms < 0).any():
            assert down[0].contribution == terms.min()
        for reason in reasons:
            column = INPUT_NAMES.index(reason.feature)
            assert reason.description == DESCRIPTIONS[reason.feature]
            derived = reason.feature not in FEATURE_NAMES
            expected = found.values[i, column] if derived else users[reason.feature][i]
            if np.isnan(expected):
                assert reason.value is None
            else:
                assert reason.value == pytest.approx(expected, rel=1e-6)  # the model reads float32


def test_every_model_input_has_a_description() -> None:
    assert set(DESCRIPTIONS) == set(INPUT_NAMES)
    assert all(DESCRIPTIONS[d.name] for d in DERIVED)


def test_stored_json_reads_back_to_the_same_reasons_and_is_null_where_not_kept(model: object) -> None:
    users = frame(80, seed=8)
    found = contributions(model, users)
    keep = np.arange(80) % 3 != 0
    stored = reasons_json(found, keep).to_pylist()
    direct = top_reasons(found)
    for i, text in enumerate(stored):
        if not keep[i]:
            assert text is None
            continue
        assert isinstance(json.loads(text), list)
        assert parse_reasons(text) == direct[i]  # exact: the text reads back to the same doubles
    assert parse_reasons(None) is None
