"""Models registered before a code change must still load and predict the same.

`tests/fixtures/model-before-layout/` is an MLflow model saved (skops, with its trusted types) by the code
as it stood before churn's modules moved into layer sub-packages: its files name
`churn.pipeline.FeatureFrame`. `probe.json` is a feature frame and `expected.json` what that model gave
for it then.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from churn.model.pipeline import churn_probability

MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "model-before-layout"


def test_a_model_saved_before_the_layout_change_loads_and_predicts_as_it_did() -> None:
    import mlflow.sklearn

    assert "churn.pipeline.FeatureFrame" in (MODEL / "model" / "MLmodel").read_text()
    model = mlflow.sklearn.load_model(str(MODEL / "model"))
    probe = pd.read_json(MODEL / "probe.json", orient="split").astype(np.float32)
    expected = json.loads((MODEL / "expected.json").read_text())
    np.testing.assert_allclose(churn_probability(model, probe), expected, rtol=1e-6)
