"""Point-in-time features per user, from one implementation used in batch (Gold) and live (/predict).

`build_features` turns the Silver rows of any set of users into one row per user as of a date D, using
only log rows dated on or before D and transactions dated on or before D. The batch build runs it on each
Silver bucket as a Dask task; the live path runs it on one user's rows. Same code, same numbers.

The specification (`SPEC`) is declarative: each feature has a name, a group and a description, and the
listening features are generated from `WINDOWS` x metrics. Its hash identifies the feature set in manifests
and in the model's lineage.

Cleaning rules, applied here and nowhere else: bd outside 1..100 is missing; empty gender is its own
category (unknown); total_secs is clipped to 0..86,400 per day; an expiry before 2000 is missing; ratios
with a zero denominator are missing (NaN), never infinite. A table Silver does not hold at all (a partial
download: no members_v3, no user logs) gives missing features (NaN; has_member_row 0), never zeros that
would read as "did not listen". Likewise a listening window that starts before the first day the user
logs cover (`logs_from`: a lake without user_logs.csv begins its logs on 2017-03-01) is missing, for every
user: nothing is known of listening then (see `uncovered_features`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churn.data.kkbox import MEMBERS, day_number
from churn.features.labels import order_transactions

WINDOWS = (7, 14, 30, 90, 180)
PLAY_COLUMNS = ("num_25", "num_50", "num_75", "num_985", "num_100")
SECONDS_PER_DAY = 86_400.0
MIN_VALID_EXPIRY = day_number(dt.date(2000, 1, 1))
LAPSE_DAYS = 30
GENDERS = {"male": 1, "female": 2}  # 0 = unknown


@dataclass(frozen=True)
class Feature:
    """One model input: its name, its group and what it means."""

    name: str
    group: str
    description: str


def _listening_spec() -> list[Feature]:
    spec = []
    for w in WINDOWS:
        spec += [
            Feature(
                f"secs_{w}d",
                "listening",
                f"seconds played in the last {w} days (per-day clipped to 0..86400)",
            ),
            Feature(f"plays_{w}d", "listening", f"songs played in the last {w} days"),
            Feature(f"active_days_{w}d", "listening", f"days with any listening in the last {w} days"),
            Feature(
                f"complete_ratio_{w}d", "listening", f"share of plays over 98.5% complete, last {w} days"
            ),
            Feature(f"unique_ratio_{w}d", "listening", f"unique songs per play, last {w} days"),
        ]
    spec += [
        Feature("secs_trend_7_30", "listening", "daily seconds of the last 7 days over those of the last 30"),
        Feature(
            "secs_trend_30_90", "listening", "daily seconds of the last 30 days over those of the last 90"
        ),
        Feature(
            "active_trend_7_30", "listening", "active-day rate of the last 7 days over that of the last 30"
        ),
        Feature(
            "days_since_listen", "listening", "days since the last listening day (missing: none in 180 days)"
        ),
    ]
    return spec


SPEC: tuple[Feature, ...] = (
    Feature("last_plan_days", "transactions", "payment_plan_days of the last transaction"),
    Feature("last_list_price", "transactions", "plan_list_price of the last transaction"),
    Feature("last_paid", "transactions", "actual_amount_paid of the last transaction"),
    Feature("last_discount", "transactions", "list price minus amount paid, last transaction"),
    Feature("last_payment_method", "transactions", "payment_method_id of the last transaction"),
    Feature("last_auto_renew", "transactions", "is_auto_renew of the last transaction"),
    Feature("last_is_cancel", "transactions", "is_cancel of the last transaction"),
    Feature("days_to_expiry", "transactions", "membership expiry minus D (missing for expiries before 2000)"),
    Feature("days_since_transaction", "transactions", "D minus the last transaction date"),
    Feature("tenure_days", "transactions", "D minus the first transaction date"),
    Feature("n_transactions", "transactions", "transactions up to D"),
    Feature("n_cancels", "transactions", "cancellations up to D"),
    Feature("n_renewals", "transactions", "non-cancel transactions up to D"),
    Feature("auto_renew_share", "transactions", "share of transactions with auto-renewal"),
    Feature(
        "n_lapses", "transactions", "earlier gaps of 30+ days between an expiry and the next transaction"
    ),
    Feature("total_paid", "transactions", "sum of actual_amount_paid up to D"),
    Feature("city", "members", "city code (1 is mostly unknown)"),
    Feature("age", "members", "bd where 1..100, else missing"),
    Feature("gender", "members", "0 unknown, 1 male, 2 female"),
    Feature("registered_via", "members", "registration channel"),
    Feature("registration_days", "members", "D minus registration_init_time (missing if later or unknown)"),
    Feature("has_member_row", "members", "1 when a members row exists"),
    *_listening_spec(),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in SPEC)
GROUP_TABLES: dict[str, str] = {
    "transactions": "transactions", "members": "members", "listening": "user_logs",
}  # fmt: skip
"""The Silver table each feature group is built from (an absent table leaves its group missing)."""
CATEGORICAL: tuple[str, ...] = ("last_payment_method", "city", "gender", "registered_via")


@dataclass(frozen=True)
class Derived:
    """A ratio the model forms from two features (the trees cannot form it from splits alone)."""

    name: str
    numerator: str
    denominator: str
    description: str


DERIVED: tuple[Derived, ...] = (
    Derived("paid_per_plan_day", "last_paid", "last_plan_days", "amount paid per plan day, last transaction"),
    Derived("secs_per_active_day_30d", "secs_30d", "active_days_30d",
            "seconds played per active day, last 30 days"),
    Derived("expiry_over_plan", "days_to_expiry", "last_plan_days",
            "days to expiry as a share of the plan's length"),
)  # fmt: skip
"""Inputs the model derives from the features (`churn.model.pipeline.FeatureFrame`); not part of Gold, so
not of SPEC_HASH."""
DESCRIPTIONS: dict[str, str] = {f.name: f.description for f in SPEC} | {
    d.name: d.description for d in DERIVED
}
"""What every model input means, for the reasons given with a score."""
SPEC_HASH = hashlib.sha256(
    json.dumps({"spec": [asdict(f) for f in SPEC], "windows": WINDOWS, "version": 1}, sort_keys=True).encode()
).hexdigest()[:16]

TRANSACTION_COLUMNS = [
    "user_id", "payment_method_id", "payment_plan_days", "plan_list_price", "actual_amount_paid",
    "is_auto_renew", "transaction_date", "membership_expire_date", "is_cancel",
]  # fmt: skip
LOG_COLUMNS = ["user_id", "date", *PLAY_COLUMNS, "num_unq", "total_secs"]
MEMBER_COLUMNS = ["user_id", "city", "bd", "gender", "registered_via", "registration_init_time"]


def _days(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return column.cast(pa.int32()).to_numpy().astype(np.int64)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is zero (explicitly, no inf, no warning)."""
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _last_positions(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For each wanted key, the position of its last occurrence in `keys`, or -1 (any sizes, no pandas
    groupby: the live path calls this on a few rows and must stay fast)."""
    if keys.size == 0:
        return np.full(wanted.shape, -1, dtype=np.int64)
    reversed_keys = keys[::-1]
    unique, first_in_reversed = np.unique(reversed_keys, return_index=True)
    last = keys.size - 1 - first_in_reversed
    found = np.searchsorted(unique, wanted)
    found = np.clip(found, 0, unique.size - 1)
    return np.where(unique[found] == wanted, last[found], -1)


def _take(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """values[positions] as float64, NaN where the position is -1."""
    out = np.full(positions.shape, np.nan)
    hit = positions >= 0
    out[hit] = values[positions[hit]]
    return out


def _transaction_features(tx: pa.Table, as_of: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(users, features) for the users with a transaction dated on or before D (rows already cut at D)."""
    ordered = order_transactions(tx, "user_id")
    uid = ordered["user_id"].to_numpy()
    if uid.size == 0:
        return uid, {}
    col = {c: ordered[c].to_numpy().astype(np.float64) for c in [*TRANSACTION_COLUMNS[1:6], "is_cancel"]}
    date, expire = _days(ordered["transaction_date"]), _days(ordered["membership_expire_date"])
    starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]])
    last = np.r_[starts[1:], uid.size] - 1
    count = (last - starts + 1).astype(np.float64)
    same_user_next = np.r_[uid[1:] == uid[:-1], False]
    gap = np.r_[date[1:], 0] - expire
    lapse = (same_user_next & (gap >= LAPSE_DAYS) & (expire >= MIN_VALID_EXPIRY)).astype(np.float64)
    cancels = np.add.reduceat(col["is_cancel"], starts)
    expiry = expire[last]
    features = {
        "last_plan_days": col["payment_plan_days"][last],
        "last_list_price": col["plan_list_price"][last],
        "last_paid": col["actual_amount_paid"][last],
        "last_discount": col["plan_list_price"][last] - col["actual_amount_paid"][last],
        "last_payment_method": col["payment_method_id"][last],
        "last_auto_renew": col["is_auto_renew"][last],
        "last_is_cancel": col["is_cancel"][last],
        "days_to_expiry": np.where(expiry >= MIN_VALID_EXPIRY, expiry - as_of, np.nan),
        "days_since_transaction": (as_of - date[last]).astype(np.float64),
        "tenure_days": (as_of - np.minimum.reduceat(date, starts)).astype(np.float64),
        "n_transactions": count,
        "n_cancels": cancels,
        "n_renewals": count - cancels,
        "auto_renew_share": np.add.reduceat(col["is_auto_renew"], starts) / count,
        "n_lapses": np.add.reduceat(lapse, starts),
        "total_paid": np.add.reduceat(col["actual_amount_paid"], starts),
    }
    return uid[starts], features


def _member_features(members: pa.Table, users: np.ndarray, as_of: int) -> dict[str, np.ndarray]:
    """Cleaned member attributes for `users` (no row: missing values and has_member_row 0)."""
    at = _last_positions(members["user_id"].to_numpy(), users)
    bd = _take(members["bd"].to_numpy().astype(np.float64), at)
    gender_codes = np.zeros(members.num_rows)
    for name, code in GENDERS.items():
        gender_codes[
            pc.fill_null(pc.equal(members["gender"], name), False).to_numpy(zero_copy_only=False)
        ] = code
    registration_days = as_of - _take(_days(members["registration_init_time"]).astype(np.float64), at)
    return {
        "city": _take(members["city"].to_numpy().astype(np.float64), at),
        "age": np.where((bd >= 1) & (bd <= 100), bd, np.nan),
        "gender": np.nan_to_num(_take(gender_codes, at), nan=0.0),
        "registered_via": _take(members["registered_via"].to_numpy().astype(np.float64), at),
        "registration_days": np.where(registration_days >= 0, registration_days, np.nan),
        "has_member_row": (at >= 0).astype(np.float64),
    }


def _uncovered_windows(as_of: dt.date, logs_from: dt.date | None) -> set[int]:
    """The windows (days) that start before `logs_from`, the first day the user logs cover."""
    if logs_from is None:
        return set()
    return {w for w in WINDOWS if as_of - dt.timedelta(days=w - 1) < logs_from}


def uncovered_features(as_of: dt.date, logs_from: dt.date | None) -> list[str]:
    """The listening features missing by design as of `as_of` when the logs begin on `logs_from`: those
    of each window reaching before it, and the trends built on them; all of them before that day (None:
    no bound, none missing)."""
    if logs_from is not None and as_of < logs_from:
        return [f.name for f in SPEC if f.group == "listening"]
    short = _uncovered_windows(as_of, logs_from)
    trends = {"secs_trend_7_30": (7, 30), "secs_trend_30_90": (30, 90), "active_trend_7_30": (7, 30)}
    windowed = [
        f.name for f in SPEC if f.group == "listening" and f.name.endswith(tuple(f"_{w}d" for w in short))
    ]
    return windowed + [name for name, windows in trends.items() if short & set(windows)]


def _listening_features(
    logs: pa.Table, users: np.ndarray, as_of: int, short: set[int]
) -> dict[str, np.ndarray]:
    """Window sums and ratios over the log rows of the last 180 days up to D, for `users` (sorted); the
    `short` windows (starting before the logs do) are missing."""
    n = users.size
    user_ids = logs["user_id"].to_numpy()
    position = np.searchsorted(users, user_ids)
    position = np.where(
        (position < n) & (users[np.clip(position, 0, max(n - 1, 0))] == user_ids), position, -1
    )
    age = as_of - _days(logs["date"])
    keep = (position >= 0) & (age >= 0) & (age < max(WINDOWS))
    position, age = position[keep], age[keep]
    secs = np.clip(logs["total_secs"].to_numpy()[keep], 0.0, SECONDS_PER_DAY)
    plays = sum(logs[c].to_numpy()[keep].astype(np.float64) for c in PLAY_COLUMNS)
    complete = logs["num_100"].to_numpy()[keep].astype(np.float64)
    unique = logs["num_unq"].to_numpy()[keep].astype(np.float64)

    out: dict[str, np.ndarray] = {}
    for w in WINDOWS:
        if w in short:
            for metric in ("secs", "plays", "active_days", "complete_ratio", "unique_ratio"):
                out[f"{metric}_{w}d"] = np.full(n, np.nan)
            continue
        inside = age < w
        idx = position[inside]
        out[f"secs_{w}d"] = np.bincount(idx, weights=secs[inside], minlength=n)
        window_plays = np.bincount(idx, weights=plays[inside], minlength=n)
        out[f"plays_{w}d"] = window_plays
        out[f"active_days_{w}d"] = np.bincount(idx, minlength=n).astype(np.float64)
        out[f"complete_ratio_{w}d"] = _ratio(
            np.bincount(idx, weights=complete[inside], minlength=n), window_plays
        )
        out[f"unique_ratio_{w}d"] = _ratio(
            np.bincount(idx, weights=unique[inside], minlength=n), window_plays
        )
    out["secs_trend_7_30"] = _ratio(out["secs_7d"] / 7, out["secs_30d"] / 30)
    out["secs_trend_30_90"] = _ratio(out["secs_30d"] / 30, out["secs_90d"] / 90)
    out["active_trend_7_30"] = _ratio(out["active_days_7d"] / 7, out["active_days_30d"] / 30)
    youngest = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(youngest, position, age)
    out["days_since_listen"] = np.where(youngest == np.iinfo(np.int64).max, np.nan, youngest).astype(
        np.float64
    )
    return out


def _absent_listening(n: int) -> dict[str, np.ndarray]:
    """Listening features of users when Silver has no user_logs table at all: unknown, not zero."""
    return {f.name: np.full(n, np.nan) for f in SPEC if f.group == "listening"}


def build_features(
    members: pa.Table | None,
    transactions: pa.Table,
    logs: pa.Table | None,
    users: pa.Table,
    as_of: dt.date,
    logs_from: dt.date | None = None,
) -> pd.DataFrame:
    """One row per user with a transaction on or before `as_of`: msno, user_id and every feature of SPEC.

        Inputs are Silver-shaped tables (any superset of the users and dates needed); rows dated after
        `as_of` are ignored here, so callers may pass more than they filtered. `members` or `logs` is None
        when Silver holds no such table: their features are then missing. `logs_from` is the first day the
    logs cover (Gold passes Silver's); windows starting before it are missing. Raw events (live /predict)
    have no such bound: None keeps every window. Plain numpy over sorted keys,
        so a whole bucket and a single user go through exactly the same arithmetic.
    """
    day = day_number(as_of)
    tx = transactions.select(TRANSACTION_COLUMNS)
    tx = tx.filter(pc.less_equal(tx["transaction_date"].cast(pa.int32()), day))
    population, tx_features = _transaction_features(tx, day)
    if population.size == 0:
        empty = {
            c: pd.Series(dtype=object if c == "msno" else np.float64)
            for c in ["msno", "user_id", *FEATURE_NAMES]
        }
        return pd.DataFrame(empty).astype({"user_id": np.int64})
    member_rows = MEMBERS.schema.empty_table() if members is None else members  # no row for anyone
    features = {
        **tx_features,
        **_member_features(member_rows.select(MEMBER_COLUMNS), population, day),
        **(
            _absent_listening(population.size)
            if logs is None
            else _listening_features(
                logs.select(LOG_COLUMNS), population, day, _uncovered_windows(as_of, logs_from)
            )
        ),
    }
    names = users["msno"].to_numpy(zero_copy_only=False)
    at = _last_positions(users["user_id"].to_numpy(), population)
    msno = np.where(at >= 0, names[np.clip(at, 0, max(len(names) - 1, 0))] if len(names) else None, None)
    columns = {
        "msno": msno,
        "user_id": population,
        **{name: features[name].astype(np.float64) for name in FEATURE_NAMES},
    }
    return pd.DataFrame(columns)
