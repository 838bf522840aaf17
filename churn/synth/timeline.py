"""Simulated subscription histories: transactions and the churn decision at every expiry.

Each user has a latent churn propensity. Membership runs in periods (a free trial, 30-day or longer plans,
auto-renewing or paid by hand); an auto-renewing user may cancel mid-period, which ends the membership at
the cancel date. At every effective expiry the user decides: renew within 30 days (not churn) or not
(churn; some come back much later). The probability of that decision is recorded as the oracle, and the
transactions are laid out so that the WSDM label rule recovers exactly the planted decision.

All users of a chunk advance together, one period per iteration, so the simulation is vectorised.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

from churn.data.kkbox import HISTORY_START, day_number
from churn.synth.profiles import Behaviour

DEFAULT = Behaviour()

# (payment_plan_days, plan_list_price, probability): 30-day plans dominate, 410-day plans are the long ones.
PLANS = np.array(
    [
        (30, 149, 0.45),
        (30, 99, 0.10),
        (30, 100, 0.05),
        (30, 120, 0.10),
        (30, 129, 0.12),
        (30, 180, 0.06),
        (410, 1499, 0.03),
        (410, 1788, 0.02),
        (90, 477, 0.03),
        (180, 894, 0.04),
    ]
)
AUTO_METHODS = np.array([41, 40, 39, 38, 37, 36, 34, 33, 31, 30, 29])
# Method 41 pays ~62% of auto-renewals, which makes it ~49% of the March-2017 rows, as in the real file.
AUTO_METHOD_P = np.array([0.62, 0.08, 0.08, 0.05, 0.04, 0.04, 0.03, 0.02, 0.02, 0.01, 0.01])
MANUAL_METHODS = np.array([38, 32, 22, 12, 15, 27, 17, 20, 11, 10, 3])
MANUAL_METHOD_P = np.array([0.25, 0.15, 0.1, 0.1, 0.08, 0.08, 0.06, 0.06, 0.05, 0.04, 0.03])
TRIAL_DAYS = 7
CANCEL_LOGIT, CANCEL_TENURE, TENURE_CAP = -2.4, 0.07, 24  # an auto-renewer's cancel: base, less per renewal
RETURN_PROBABILITY = 0.3  # a churner who comes back after 30-330 days


@dataclass
class Users:
    """Static attributes of a chunk of users (index i of every array is one user)."""

    uid: np.ndarray  # global user index
    msno: np.ndarray  # 44-char base64 ids
    propensity: np.ndarray  # latent churn propensity, standard normal
    registered: np.ndarray  # registration day number
    first_transaction: np.ndarray  # day number of the first transaction in the history


@dataclass
class Timeline:
    """Everything simulated for a chunk: transactions, decisions and membership intervals."""

    transactions: dict[str, np.ndarray]
    decisions: dict[str, np.ndarray]
    intervals: dict[str, np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _month(days: np.ndarray) -> np.ndarray:
    """The calendar month (months since 1970-01) of day numbers."""
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def make_msno(rng: np.random.Generator, n: int) -> np.ndarray:
    """n ids shaped like KKBox's msno: base64 of 32 random bytes (44 characters, ends with '=')."""
    raw = rng.bytes(32 * n)
    return np.array([base64.b64encode(raw[i * 32 : (i + 1) * 32]).decode() for i in range(n)], dtype=object)


def make_users(
    rng: np.random.Generator,
    uid_start: int,
    n: int,
    history_start: int,
    horizon: int,
    established: float = 0.6,
) -> Users:
    """Draw a chunk's users: an `established` share were members before the history starts, the rest
    join over time."""
    uid = np.arange(uid_start, uid_start + n, dtype=np.int64)
    msno = make_msno(rng, n)
    propensity = rng.standard_normal(n)
    old = rng.random(n) < established
    old_start, old_end = day_number(HISTORY_START) - 4000, history_start - 1
    registered = np.where(
        old,
        rng.integers(old_start, old_end, n),
        rng.integers(history_start, horizon - 30, n),
    )
    first = np.where(
        old,
        history_start + rng.integers(0, 30, n),
        registered + np.where(rng.random(n) < 0.8, 0, rng.integers(1, 60, n)),
    )
    return Users(uid, msno, propensity, registered.astype(np.int64), first.astype(np.int64))


def _draw_plans(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plan days, list price and amount paid (mostly the list price, sometimes discounted)."""
    choice = rng.choice(len(PLANS), size=n, p=PLANS[:, 2])
    days, price = PLANS[choice, 0].astype(np.int64), PLANS[choice, 1].astype(np.int64)
    discount = np.where(rng.random(n) < 0.08, rng.choice([10, 20, 30, 50], size=n), 0)
    return days, price, np.maximum(price - discount, 0)


def _draw_methods(rng: np.random.Generator, auto: np.ndarray) -> np.ndarray:
    n = len(auto)
    return np.where(
        auto,
        rng.choice(AUTO_METHODS, size=n, p=AUTO_METHOD_P),
        rng.choice(MANUAL_METHODS, size=n, p=MANUAL_METHOD_P),
    )


def simulate(
    rng: np.random.Generator, users: Users, horizon: int, behaviour: Behaviour = DEFAULT
) -> Timeline:
    """Simulate every user's periods up to `horizon` (a day number); returns the chunk's timeline."""
    n = len(users.uid)
    z = users.propensity
    alive = np.ones(n, dtype=bool)
    t = users.first_transaction.copy()
    prev_expiry = t.copy()
    trial = rng.random(n) < np.where(users.registered >= users.first_transaction - 1, 0.35, 0.0)
    auto = rng.random(n) < _sigmoid(1.6 - 0.5 * z)
    plan_days, list_price, paid = _draw_plans(rng, n)
    method = _draw_methods(rng, auto)
    churn_count = np.zeros(n, dtype=np.int64)
    renewals = np.zeros(n, dtype=np.int64)

    tx: dict[str, list[np.ndarray]] = {k: [] for k in _TX_FIELDS}
    dec: dict[str, list[np.ndarray]] = {
        k: [] for k in ("uid", "expiry", "probability", "is_churn", "is_cancel")
    }
    iv: dict[str, list[np.ndarray]] = {k: [] for k in ("uid", "start", "end", "decision", "intent")}

    while True:
        idx = np.flatnonzero(alive & (t <= horizon))
        if idx.size == 0:
            break
        m = idx.size
        days = np.where(trial[idx], TRIAL_DAYS, plan_days[idx])
        price = np.where(trial[idx], 0, list_price[idx])
        amount = np.where(trial[idx], 0, paid[idx])
        is_auto = auto[idx] & ~trial[idx]
        start = t[idx]
        expiry = np.maximum(start, prev_expiry[idx]) + days
        _append(
            tx, users.uid[idx], method[idx], days, price, amount, is_auto, start, expiry, np.zeros(m, bool)
        )
        # Some members buy a second plan a few days into a paid one: it extends the same period, which
        # ends (and is decided) at the later expiry. Never on the first day (so the two rows' order is
        # clear) and in the same month (so no cohort's cutoff falls between them); drawn only when the
        # profile asks for it (the default draws stay as they were).
        second_day = start
        if behaviour.paid_ahead > 0:
            later = start + 1 + rng.integers(0, 10, m)
            ahead = (rng.random(m) < behaviour.paid_ahead) & ~trial[idx] & (days >= 30)
            ahead &= _month(later) == _month(start)
            second_day = np.where(ahead, later, start)
            a = np.flatnonzero(ahead)
            expiry = np.where(ahead, expiry + days, expiry)
            _append(
                tx, users.uid[idx][a], method[idx][a], days[a], price[a], amount[a], is_auto[a],
                second_day[a], expiry[a], np.zeros(a.size, bool),
            )  # fmt: skip

        # An auto-renewing member may switch renewal off mid-period: the membership ends at the cancel.
        # Long-standing members cancel less, so cancels thin out as the member base ages (~4% of the rows
        # up to February 2017, ~2.5% in March 2017, as in the real files).
        cancel_logit = (
            CANCEL_LOGIT
            + behaviour.cancel_shift
            + 0.8 * z[idx]
            - CANCEL_TENURE * np.minimum(renewals[idx], TENURE_CAP)
        )
        cancel = rng.random(m) < np.where(is_auto, _sigmoid(cancel_logit), 0.004)
        same_day = rng.random(m) < 0.3
        span = np.maximum(expiry - start - 1, 1)
        cancel_day = np.where(same_day, start, start + 1 + np.floor(rng.random(m) * span).astype(np.int64))
        cancel_day = np.minimum(np.maximum(cancel_day, second_day), expiry - 1)
        # Each decision needs its own expiry day (that is how labels find it): never cancel on the day the
        # previous period ended.
        cancel_day = np.where(cancel_day == prev_expiry[idx], cancel_day + 1, cancel_day)
        c = np.flatnonzero(cancel)
        _append(
            tx, users.uid[idx][c], method[idx][c], days[c], price[c], amount[c],
            np.zeros(c.size, bool), cancel_day[c], cancel_day[c], np.ones(c.size, bool),
        )  # fmt: skip
        effective = np.where(cancel, cancel_day, expiry)

        logit = (
            -1.0
            + 0.9 * z[idx]
            - 2.0 * (is_auto & ~cancel)
            + 1.8 * cancel
            + 0.7 * trial[idx]
            - 0.7 * (days >= 90)
            + 0.4 * (amount < price)
            + 0.4 * (churn_count[idx] > 0)
            - 0.03 * np.minimum(renewals[idx], 20)
        )
        probability = _sigmoid(logit)
        churned = rng.random(m) < probability
        for key, value in (
            ("uid", users.uid[idx]), ("expiry", effective), ("probability", probability),
            ("is_churn", churned), ("is_cancel", cancel),
        ):  # fmt: skip
            dec[key].append(value)

        # Next transaction: an auto-renewal at the expiry (or the day before); a manual renewal up to 10 days
        # early or 29 days late; a churner never, or back after 30+ days.
        last_tx_day = np.where(cancel, cancel_day, second_day)
        auto_next = expiry - (rng.random(m) < 0.3)
        manual_gap = np.rint(rng.triangular(-10, 0, 29, m)).astype(np.int64)
        manual_gap = np.where(cancel, np.maximum(manual_gap, 1), manual_gap)
        renew_day = np.where(is_auto & ~cancel, auto_next, effective + manual_gap)
        renew_day = np.maximum(renew_day, last_tx_day + 1)
        comes_back = rng.random(m) < RETURN_PROBABILITY
        return_day = effective + 30 + rng.integers(0, 300, m)
        next_day = np.where(churned, np.where(comes_back, return_day, horizon + 1), renew_day)

        interval_end = np.where(churned, effective, np.minimum(effective, next_day - 1))
        for key, value in (
            ("uid", users.uid[idx]), ("start", start), ("end", interval_end),
            ("decision", effective), ("intent", probability),
        ):  # fmt: skip
            iv[key].append(value)  # what listening may know of the decision: its probability, not its outcome

        alive[idx] = ~churned | comes_back
        t[idx] = next_day
        prev_expiry[idx] = effective
        churn_count[idx] += churned
        renewals[idx] = np.where(churned, 0, renewals[idx] + 1)
        trial[idx] = False
        # Some members change plan or payment habits between periods; after a cancel half pay by hand.
        change = rng.random(m) < np.where(churned, 0.5, 0.06)
        new_days, new_price, new_paid = _draw_plans(rng, m)
        plan_days[idx] = np.where(change, new_days, plan_days[idx])
        list_price[idx] = np.where(change, new_price, list_price[idx])
        paid[idx] = np.where(change, new_paid, paid[idx])
        flip = rng.random(m) < np.where(cancel, 0.5, 0.02)
        auto[idx] = np.where(flip, ~auto[idx], auto[idx])
        method[idx] = np.where(flip, _draw_methods(rng, auto[idx]), method[idx])

    return Timeline(
        transactions={k: np.concatenate(v) for k, v in tx.items()},
        decisions={k: np.concatenate(v) for k, v in dec.items()},
        intervals={k: np.concatenate(v) for k, v in iv.items()},
    )


_TX_FIELDS = (
    "uid",
    "payment_method_id",
    "payment_plan_days",
    "plan_list_price",
    "actual_amount_paid",
    "is_auto_renew",
    "transaction_date",
    "membership_expire_date",
    "is_cancel",
)


def _append(tx: dict[str, list[np.ndarray]], *columns: np.ndarray) -> None:
    for key, value in zip(_TX_FIELDS, columns, strict=True):
        tx[key].append(np.asarray(value).astype(np.int64))
