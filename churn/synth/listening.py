"""Simulated daily listening (user_logs rows) for the days a user is a member.

Every user-day is drawn from counter-based random numbers (`hashing`), so the rows of a day do not
depend on which window is being written. Listening fades in the weeks before a decision (and the share of
songs played to the end drops) as far as the user intends to leave: by the probability the decision is
drawn from, never by its drawn outcome. So listening tells a model about the probability the oracle knows
and nothing more, and the oracle's log loss is a true bound on what any model of the files can reach.
"""

from __future__ import annotations

import numpy as np

from churn.features.spec import SECONDS_PER_DAY
from churn.synth.hashing import normal, normals, uniform

# Average seconds of a play that ended in each completion bucket (<25%, 25-50%, 50-75%, 75-98.5%, >98.5%).
SECONDS_PER_PLAY = np.array([30.0, 110.0, 170.0, 230.0, 240.0])
# Each count of a user-day is floor(exp(log(MEDIAN) + LOAD * common + SPREAD * own noise)): one shared
# "how much did I listen today" level (per user and per day) and a per-bucket deviation, so the buckets move
# together but not in lockstep. The floor of a lognormal gives the real files' mass of zeros for the rare
# buckets (num_25 is 0 on ~26% of the real user-days, num_985 on ~55%) and their long upper tails.
# Order: num_25, num_50, num_75, num_985, num_100.
MEDIAN = np.array([2.6, 0.8, 0.75, 0.87, 18.3])
LOAD = np.array([0.95, 0.8, 0.8, 0.8, 1.0])
SPREAD = np.array([1.05, 0.7, 0.7, 0.7, 0.5])
UNIQUE_LOGIT = 1.8  # num_unq is about 86% of a median day's plays
# Days are more varied than in a light-tailed model, so the fade weighs a little more (in log space) to keep
# the listening signal before a churn about as strong as before the calibration.
FADE_WEIGHT = 1.5
FADE_DEPTH = 0.65  # the share of normal activity lost by the day of a decision whose probability is 1
FADE_TILT = np.array([1.0, 0.3, 0.3, 0.0, -0.5])  # at full fade: more skips, fewer complete plays
SKIP_HABIT = 0.6  # the per-user part of num_25's own deviation (relative to the per-day part)
USER_SHARE = 0.6  # the part of the common level's variance that belongs to the user (habit), not the day


def user_traits(seed: int, uid: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user listening habits, keyed by the user index (the same for every window)."""
    zero = np.zeros_like(uid)
    return {
        "active": 0.06 + 0.64 * uniform(seed, uid, zero, 101) ** 1.3,
        "volume": np.sqrt(USER_SHARE) * normal(seed, uid, zero, 102),
        "skips": SKIP_HABIT * normal(seed, uid, zero, 103),  # some users skip a lot, some never
    }


def simulate_logs(
    seed: int, intervals: dict[str, np.ndarray], lo: int, hi: int, listening: float = 1.0
) -> dict[str, np.ndarray]:
    """user_logs rows for days in [lo, hi] (day numbers) within the membership intervals.

    Intervals of one user never overlap (the timeline cuts a period where the next one starts), so each
    (user, day) appears at most once. `listening` scales the share of member days with a row (the rows
    themselves are drawn the same way, so a logged day looks the same at any scale).
    """
    start = np.maximum(intervals["start"], lo)
    end = np.minimum(intervals["end"], hi)
    keep = end >= start
    start, end = start[keep], end[keep]
    uid, decision, intent = intervals["uid"][keep], intervals["decision"][keep], intervals["intent"][keep]
    lengths = end - start + 1
    if lengths.sum() == 0:
        return {}
    owner = np.repeat(np.arange(start.size), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    day = start[owner] + offsets
    user = uid[owner]
    traits = {k: v[owner] for k, v in user_traits(seed, uid).items()}  # drawn per interval, not per day

    # Fade towards a decision over its last 45 days, as deep as the intent: a user certain to leave ends at
    # 35% of normal activity, one certain to stay does not fade. The drawn outcome is not an input.
    to_decision = (decision[owner] - day).astype(np.float64)
    fade = 1.0 - FADE_DEPTH * intent[owner] * (1.0 - np.clip(to_decision / 45.0, 0.0, 1.0))
    days_share = np.minimum(listening * traits["active"], 1.0)
    active = uniform(seed, user, day, 1) < days_share * (0.55 + 0.45 * fade)
    user, day, fade = user[active], day[active], fade[active]
    traits = {k: v[active] for k, v in traits.items()}

    noise = normals(seed, user, day, 10, MEDIAN.size + 2)  # the day's level, then one per count
    common = traits["volume"] + np.sqrt(1 - USER_SHARE) * noise[:, 0]
    own = noise[:, 1:]
    own[:, 0] = (own[:, 0] + traits["skips"]) / np.sqrt(1 + SKIP_HABIT**2)  # still unit variance
    # Before a churn decision fewer songs are played, and a larger share of them is skipped.
    faded = FADE_WEIGHT * np.log(fade)[:, None] + (1 - fade)[:, None] * FADE_TILT
    level = np.log(MEDIAN) + LOAD * common[:, None] + SPREAD * own[:, :5] + faded
    counts = np.floor(np.exp(level)).astype(np.int64)
    counts[counts.sum(axis=1) == 0, 0] = 1  # a logged day has at least one play
    jitter = 0.8 + 0.4 * uniform(seed, user, day, 5)
    seconds = (counts * SECONDS_PER_PLAY).sum(axis=1) * jitter
    # Nobody listens longer than the day: the tail of a heavy day is cut back to 60-95% of it (the real
    # files' rows of more than 24 hours are a quirk, planted at their rate by `quirks`).
    over = np.flatnonzero(seconds > SECONDS_PER_DAY)
    fit = SECONDS_PER_DAY * (0.6 + 0.35 * uniform(seed, user[over], day[over], 6)) / seconds[over]
    counts[over] = np.floor(counts[over] * fit[:, None]).astype(np.int64)
    seconds[over] = (counts[over] * SECONDS_PER_PLAY).sum(axis=1) * jitter[over]
    plays = counts.sum(axis=1)
    # Most songs of a day are different ones; heavy listeners repeat more.
    unique_share = 1.0 / (1.0 + np.exp(-(UNIQUE_LOGIT - 0.7 * common + 0.5 * own[:, 5])))
    num_unq = np.clip(np.rint(plays * unique_share), 1, plays).astype(np.int64)
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
