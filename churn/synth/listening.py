"""Simulated daily listening (user_logs rows) for the days a user is a member.

Every user-day is drawn from counter-based random numbers (`hashing`), so the rows of a day do not
depend on which window is being written. Listening fades in the weeks before a churn decision (and the
share of songs played to the end drops), which gives listening trends a real but modest signal.
"""

from __future__ import annotations

import numpy as np

from churn.synth.hashing import normal, uniform

# Average seconds of a play that ended in each completion bucket (<25%, 25-50%, 50-75%, 75-98.5%, >98.5%).
SECONDS_PER_PLAY = np.array([30.0, 110.0, 170.0, 230.0, 245.0])
OTHER_SHARES = np.array([0.45, 0.15, 0.1, 0.3])  # how non-complete plays split over the first four buckets


def user_traits(seed: int, uid: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user listening habits, keyed by the user index (the same for every window)."""
    zero = np.zeros_like(uid)
    return {
        "active": 0.06 + 0.64 * uniform(seed, uid, zero, 101) ** 1.3,
        "volume": np.log(18.0) + 0.7 * normal(seed, uid, zero, 102),
        "complete": 0.45 + 0.4 * uniform(seed, uid, zero, 103),
        "unique": 0.45 + 0.5 * uniform(seed, uid, zero, 104),
    }


def simulate_logs(seed: int, intervals: dict[str, np.ndarray], lo: int, hi: int) -> dict[str, np.ndarray]:
    """user_logs rows for days in [lo, hi] (day numbers) within the membership intervals.

    Intervals of one user never overlap (the timeline cuts a period where the next one starts), so each
    (user, day) appears at most once.
    """
    start = np.maximum(intervals["start"], lo)
    end = np.minimum(intervals["end"], hi)
    keep = end >= start
    start, end = start[keep], end[keep]
    uid, decision, churn = intervals["uid"][keep], intervals["decision"][keep], intervals["is_churn"][keep]
    lengths = end - start + 1
    if lengths.sum() == 0:
        return {}
    owner = np.repeat(np.arange(start.size), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    day = start[owner] + offsets
    user = uid[owner]
    traits = user_traits(seed, user)

    # Fade towards a churn decision: from 100% to 35% of normal activity over the last 45 days.
    to_decision = (decision[owner] - day).astype(np.float64)
    fade = np.where(churn[owner], 0.35 + 0.65 * np.clip(to_decision / 45.0, 0.0, 1.0), 1.0)
    active = uniform(seed, user, day, 1) < traits["active"] * (0.55 + 0.45 * fade)
    user, day, fade = user[active], day[active], fade[active]
    traits = {k: v[active] for k, v in traits.items()}

    plays = np.maximum(1, np.rint(np.exp(traits["volume"] + 0.6 * normal(seed, user, day, 2)) * fade))
    complete = np.clip(traits["complete"] - 0.12 * (1 - fade) + 0.08 * normal(seed, user, day, 3), 0.05, 0.98)
    num_100 = np.floor(plays * complete)
    rest = plays - num_100
    shares = OTHER_SHARES[None, :] * (0.7 + 0.6 * uniform(seed, user, day, 4))[:, None]
    shares = shares / shares.sum(axis=1, keepdims=True)
    others = np.floor(rest[:, None] * shares)
    others[:, 0] += rest - others.sum(axis=1)  # keep the counts summing to the plays
    counts = np.column_stack([others, num_100]).astype(np.int64)
    num_unq = np.clip(np.rint(plays * traits["unique"]), 1, plays).astype(np.int64)
    seconds = (counts * SECONDS_PER_PLAY).sum(axis=1) * (0.8 + 0.4 * uniform(seed, user, day, 5))
    return {
        "uid": user,
        "date": day,
        "num_25": counts[:, 0],
        "num_50": counts[:, 1],
        "num_75": counts[:, 2],
        "num_985": counts[:, 3],
        "num_100": counts[:, 4],
        "num_unq": num_unq,
        "total_secs": np.round(seconds, 3),
    }
