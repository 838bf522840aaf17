"""What a user's risk is worth: the revenue at risk over the next 30 days, one definition for the nightly
scores, the API and the page.

price_per_30d = the last transaction's actual_amount_paid / payment_plan_days x 30 (what the user's
current plan brings in per 30 days; unknown when the plan has no days, e.g. a bare cancellation row);
revenue_at_risk = churn_probability x price_per_30d (the expected loss if nothing is done). Amounts are
in the transactions' currency (NTD in the KKBox data).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

PERIOD_DAYS = 30


def price_per_30d(last_paid: npt.ArrayLike, last_plan_days: npt.ArrayLike) -> np.ndarray:
    """The current plan's price per 30 days; NaN where the plan length is not positive or unknown, or the
    amount is unknown or negative."""
    paid = np.asarray(last_paid, dtype=np.float64)
    days = np.asarray(last_plan_days, dtype=np.float64)
    known = (days > 0) & (paid >= 0)  # NaN compares False: unknown stays unknown
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(known, paid / np.where(days > 0, days, 1.0) * PERIOD_DAYS, np.nan)


def revenue_at_risk(probability: npt.ArrayLike, price: npt.ArrayLike) -> np.ndarray:
    """Expected revenue lost over the next 30 days: P(churn) x price per 30 days (NaN where the price is)."""
    return np.asarray(probability, dtype=np.float64) * np.asarray(price, dtype=np.float64)
