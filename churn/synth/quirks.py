"""The known defects of the real KKBox files, planted at roughly the real rates.

Each quirk appears at least once per chunk of users, so even the tiny profile shows every one of them
(tests rely on that); at scale the rates approach the real ones.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from churn.data.kkbox import DUMP_END, day_number

DUPLICATE_RATE = 0.0002  # a few thousand exact duplicates in 21.5M transactions
EPOCH_EXPIRY_RATE = 0.0001  # membership_expire_date 1970-01-01
FAR_EXPIRY_RATE = 0.00005  # membership_expire_date as late as 2036
ZERO_PLAN_DAYS_RATE = 0.04  # payment_plan_days 0
NEGATIVE_SECS_RATE = 0.0001  # total_secs < 0
OVER_DAY_SECS_RATE = 0.0003  # total_secs > 86,400


def _pick(rng: np.random.Generator, candidates: np.ndarray, rate: float, early: np.ndarray) -> np.ndarray:
    """Indices among `candidates` for a quirk at `rate`; at least one, taken from the history dump's
    period (`early` rows) when the draw found none, so small dumps show every quirk."""
    if candidates.size == 0:
        return candidates
    chosen = rng.choice(candidates, size=rng.binomial(candidates.size, rate), replace=False)
    if not np.isin(chosen, early).any():
        pool = np.intersect1d(candidates, early)
        chosen = np.append(chosen, rng.choice(pool if pool.size else candidates, size=1))
    return chosen


def transactions(rng: np.random.Generator, tx: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Plant duplicates, epoch and far-future expiries and zero plan days into a chunk's transactions."""
    tx = {k: v.copy() for k, v in tx.items()}
    n = tx["uid"].size
    early = np.flatnonzero(tx["transaction_date"] <= day_number(DUMP_END))
    renewals = np.flatnonzero(tx["is_cancel"] == 0)
    # Rows sharing a (user, day) with another row keep their signature: order on that day depends on it.
    key = tx["uid"] * 100_000 + tx["transaction_date"]
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    lone = np.flatnonzero(counts[inverse] == 1)
    tx["payment_plan_days"][_pick(rng, np.intersect1d(lone, renewals), ZERO_PLAN_DAYS_RATE, early)] = 0
    tx["membership_expire_date"][_pick(rng, renewals, EPOCH_EXPIRY_RATE, early)] = 0
    far = _pick(rng, renewals, FAR_EXPIRY_RATE, early)
    tx["membership_expire_date"][far] = day_number(dt.date(2036, 10, 15)) + rng.integers(0, 60, far.size)
    duplicated = _pick(rng, np.arange(n), DUPLICATE_RATE, early)
    return {k: np.concatenate([v, v[duplicated]]) for k, v in tx.items()}


def user_logs(seed: int, logs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Plant negative and over-24-hour total_secs (keyed per user-day, like the rows themselves)."""
    from churn.synth.hashing import uniform

    if not logs:
        return logs
    u = uniform(seed, logs["uid"], logs["date"], 31)
    secs = logs["total_secs"].copy()
    negative = u < NEGATIVE_SECS_RATE
    over = (u >= NEGATIVE_SECS_RATE) & (u < NEGATIVE_SECS_RATE + OVER_DAY_SECS_RATE)
    v = uniform(seed, logs["uid"], logs["date"], 32)
    secs[negative] = -np.round(v[negative] * 9.2e15, 3)
    secs[over] = np.round(86_400 + v[over] * 2.5e6, 3)
    return {**logs, "total_secs": secs}
