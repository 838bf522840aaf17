"""Simulated member rows (members_v3.csv) with the real file's gaps and oddities."""

from __future__ import annotations

import numpy as np

from churn.synth.hashing import uniform
from churn.synth.timeline import Users

CITIES = np.array([3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22])
VIA = np.array([3, 4, 7, 9, 2, 5, 6, 8, 10, 11, 13, 16, 17, 19])
VIA_P = np.array(
    [0.21, 0.27, 0.33, 0.18, 0.002, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001]
)


def simulate_members(rng: np.random.Generator, users: Users) -> dict[str, np.ndarray]:
    """One row per user who has a member row (about 11% have none, as in the real data).

    City 1 (~71%) looks like "unknown"; gender is empty for ~65%; bd is 0 for ~67% and otherwise an age
    with rare absurd values (-7000 .. 2015) that the features must treat as missing.
    """
    n = users.uid.size
    city = np.where(rng.random(n) < 0.71, 1, rng.choice(CITIES, n))
    age = np.clip(np.rint(rng.normal(29, 9, n)), 12, 75).astype(np.int64)
    bd = np.where(rng.random(n) < 0.67, 0, age)
    absurd = rng.random(n) < 0.003
    absurd[rng.integers(0, n)] = True  # at least one per chunk, so small runs show the quirk too
    bd = np.where(absurd, rng.choice([-7168, -3152, -49, 101, 144, 931, 1051, 2015], n), bd)
    gender = np.where(rng.random(n) < 0.65, "", np.where(rng.random(n) < 0.52, "male", "female"))
    via = rng.choice(VIA, n, p=VIA_P / VIA_P.sum())
    has_row = rng.random(n) >= 0.11
    return {
        "uid": users.uid,
        "city": city,
        "bd": bd,
        "gender": gender,
        "registered_via": via,
        "registration_init_time": users.registered,
        "has_row": has_row,
    }


def _changed(drawn: np.ndarray, old: np.ndarray, choices: np.ndarray) -> np.ndarray:
    """The drawn codes, with the next code of `choices` where the draw repeats the old one."""
    position = np.argsort(choices)[np.searchsorted(np.sort(choices), drawn)]
    return np.where(drawn == old, choices[(position + 1) % choices.size], drawn)


def member_updates(seed: int, known: dict[str, np.ndarray], day: int, share: float) -> dict[str, np.ndarray]:
    """Updated member rows delivered on `day`: a `share` of the known rows, each with a new city and a new
    registration channel (a member who moved and signed up again elsewhere), the other fields as before.

    Drawn from counter-based numbers keyed by user and day, so a day's updates do not depend on the range
    written; each update changes the dump's row (updates of one user on two days are independent).
    """
    days = np.full(known["uid"].size, day, dtype=np.int64)
    chosen = uniform(seed, known["uid"], days, 201) < share
    rows = {name: values[chosen] for name, values in known.items()}
    uid, at = rows["uid"], days[chosen]
    city = CITIES[np.minimum((uniform(seed, uid, at, 202) * CITIES.size).astype(np.int64), CITIES.size - 1)]
    cdf = np.cumsum(VIA_P) / VIA_P.sum()
    via = VIA[np.minimum(np.searchsorted(cdf, uniform(seed, uid, at, 203), side="right"), VIA.size - 1)]
    rows["city"] = _changed(city, rows["city"], CITIES)
    rows["registered_via"] = _changed(via, rows["registered_via"], VIA)
    return rows
