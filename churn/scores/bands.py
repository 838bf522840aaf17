"""Risk bands: the names a probability's band has, one rule for the nightly scores and /predict.

`CHURN_RISK_BAND_THRESHOLDS` (increasing) cut the probability range; a probability equal to a threshold
belongs to the band above it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

BAND_NAMES = {1: ("low", "high"), 2: ("low", "medium", "high"), 3: ("low", "medium", "high", "very_high")}


def band_names(thresholds: list[float]) -> tuple[str, ...]:
    """Names of the risk bands that `thresholds` (increasing) cut the probability range into."""
    return BAND_NAMES.get(len(thresholds), tuple(f"band_{i}" for i in range(len(thresholds) + 1)))


def risk_bands(p: npt.ArrayLike, thresholds: list[float]) -> pa.Array:
    """The band of each probability: below the first threshold is the lowest band; a probability equal
    to a threshold belongs to the band above it."""
    names = pa.array(band_names(thresholds))
    return pc.take(names, pa.array(np.searchsorted(np.asarray(thresholds), p, side="right")))
