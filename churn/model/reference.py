"""The reference a registered version carries: a sample of the active population of its validation
snapshot with the model's probabilities, logged next to the model. The weekly drift report compares each
week's inputs and scores with it (`churn.monitoring.drift.load_reference`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from churn.features.population import active_mask
from churn.features.spec import FEATURE_NAMES
from churn.model.pipeline import churn_probability

REFERENCE_DIR = "reference"
REFERENCE_FILE = "features.parquet"
SCORE = "churn_probability"
SAMPLE_ROWS = 5000


def sample_indices(n: int, rows: int, seed: int) -> np.ndarray:
    """`rows` of `n` positions (all when n <= rows), sorted, the same for the same seed."""
    if n <= rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=rows, replace=False))


def reference_sample(features: pa.Table, model: Any, grace_days: int, seed: int) -> pd.DataFrame:
    """The reference saved with a model: the active population of a feature snapshot, sampled, with the
    model's probabilities."""
    active = features.filter(pa.array(active_mask(features, grace_days)))
    frame = active.take(pa.array(sample_indices(active.num_rows, SAMPLE_ROWS, seed))).to_pandas()
    frame = frame[list(FEATURE_NAMES)].reset_index(drop=True)
    frame[SCORE] = churn_probability(model, frame)
    return frame


def log_reference(frame: pd.DataFrame) -> None:
    """Store the reference in the active MLflow run, next to the model."""
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / REFERENCE_FILE
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), REFERENCE_DIR)
