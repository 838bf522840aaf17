"""The generator's oracle is a true bound: what a model can observe depends on a decision's probability
(the oracle's figure), never on its drawn outcome."""

from __future__ import annotations

import datetime as dt

import numpy as np

from churn.data.kkbox import day_number
from churn.synth.listening import simulate_logs
from churn.synth.profiles import get_profile
from churn.synth.writer import simulate_chunk

SEED = 7


def _intervals() -> dict[str, np.ndarray]:
    """Real simulated membership intervals (the tiny profile's first chunk) ending in early 2017."""
    intervals = simulate_chunk(SEED, get_profile("tiny"), 0).intervals
    lo, hi = day_number(dt.date(2017, 1, 1)), day_number(dt.date(2017, 3, 31))
    keep = (intervals["decision"] >= lo) & (intervals["decision"] <= hi)
    return {name: values[keep] for name, values in intervals.items()}


def _logs(intervals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return simulate_logs(SEED, intervals, day_number(dt.date(2016, 11, 1)), day_number(dt.date(2017, 3, 31)))


def test_users_who_differ_only_in_their_drawn_outcome_get_identical_listening() -> None:
    intervals = _intervals()
    assert intervals["uid"].size > 100
    stays = {**intervals, "is_churn": np.zeros(intervals["uid"].size, dtype=bool)}
    leaves = {**intervals, "is_churn": np.ones(intervals["uid"].size, dtype=bool)}
    a, b = _logs(stays), _logs(leaves)
    assert a.keys() == b.keys() and a["uid"].size > 1000
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_listening_fades_before_a_decision_as_far_as_the_user_intends_to_leave() -> None:
    intervals = _intervals()
    n = intervals["uid"].size
    calm, gone = _logs({**intervals, "intent": np.zeros(n)}), _logs({**intervals, "intent": np.ones(n)})

    def plays_in_last_two_weeks(logs: dict[str, np.ndarray]) -> int:
        decision = dict(zip(intervals["uid"], intervals["decision"], strict=False))
        last = np.array([decision[u] for u in logs["uid"]])
        near = (last - logs["date"] >= 0) & (last - logs["date"] < 14)
        return int(sum(logs[f"num_{k}"][near].sum() for k in ("25", "50", "75", "985", "100")))

    assert plays_in_last_two_weeks(gone) < 0.7 * plays_in_last_two_weeks(calm)
