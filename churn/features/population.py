"""Who is scored: the active population of a feature table, one rule for nightly scoring, the drift
reference and the weekly samples.

Users with a transaction on or before D whose membership has not been expired for more than
`CHURN_ACTIVE_GRACE_DAYS` days at D (days_to_expiry >= -grace). Users whose only expiries are corrupt
(before 2000, the 1970 quirk) count as active when their last transaction is at most that many days old.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def active_mask(features: pa.Table, grace_days: int) -> np.ndarray:
    """Which users of a feature table are in the scored population (the module docstring)."""
    to_expiry = features["days_to_expiry"].to_numpy(zero_copy_only=False)
    since = features["days_since_transaction"].to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(to_expiry), since <= grace_days, to_expiry >= -grace_days)
