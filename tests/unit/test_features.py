"""Feature code on hand-made rows: point-in-time cut, cleaning rules, empty windows, division by zero."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from churn.data.kkbox import MEMBERS, TRANSACTIONS, USER_LOGS, USERS
from churn.features.spec import FEATURE_NAMES, SPEC, SPEC_HASH, WINDOWS, build_features

AS_OF = dt.date(2017, 3, 31)


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def members(*rows: tuple[int, int, int, str | None, int, str]) -> pa.Table:
    keys = ["user_id", "city", "bd", "gender", "registered_via", "registration_init_time"]
    data = {k: [r[i] if k != "registration_init_time" else d(r[i]) for r in rows] for i, k in enumerate(keys)}
    return pa.table(data).cast(MEMBERS.schema) if rows else MEMBERS.schema.empty_table()


def transactions(*rows: tuple[int, str, str, int, int]) -> pa.Table:
    """(user, transaction_date, expire_date, is_cancel, is_auto_renew) with a 30-day NT$149 plan."""
    return pa.table(
        {
            "user_id": [r[0] for r in rows],
            "payment_method_id": [41] * len(rows),
            "payment_plan_days": [30] * len(rows),
            "plan_list_price": [149] * len(rows),
            "actual_amount_paid": [129] * len(rows),
            "is_auto_renew": [r[4] for r in rows],
            "transaction_date": [d(r[1]) for r in rows],
            "membership_expire_date": [d(r[2]) for r in rows],
            "is_cancel": [r[3] for r in rows],
        }
    ).cast(TRANSACTIONS.schema)


def logs(*rows: tuple[int, str, int, int, float]) -> pa.Table:
    """(user, date, num_100, num_unq, total_secs) with 1 play in each other bucket."""
    n = len(rows)
    return pa.table(
        {
            "user_id": [r[0] for r in rows],
            "date": [d(r[1]) for r in rows],
            "num_25": [1] * n,
            "num_50": [1] * n,
            "num_75": [1] * n,
            "num_985": [1] * n,
            "num_100": [r[2] for r in rows],
            "num_unq": [r[3] for r in rows],
            "total_secs": [r[4] for r in rows],
        }
    ).cast(USER_LOGS.schema)


def users(*ids: int) -> pa.Table:
    return pa.table({"user_id": list(ids), "msno": [f"{i:043d}=" for i in ids]}).cast(USERS)


def test_spec_is_declarative_and_complete() -> None:
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == len(SPEC)
    assert all(f.description for f in SPEC)
    assert {f"secs_{w}d" for w in WINDOWS} <= set(FEATURE_NAMES)
    assert len(SPEC_HASH) == 16


def test_rows_after_the_snapshot_are_ignored() -> None:
    base_tx = [(1, "2017-02-01", "2017-03-03", 0, 1), (1, "2017-03-03", "2017-04-02", 0, 1)]
    base_logs = [(1, "2017-03-30", 10, 8, 3000.0), (1, "2017-03-31", 5, 5, 1500.0)]
    before = build_features(members(), transactions(*base_tx), logs(*base_logs), users(1), AS_OF)
    later_tx = [*base_tx, (1, "2017-04-01", "2017-04-01", 1, 0)]
    later_logs = [*base_logs, (1, "2017-04-01", 99, 99, 9999.0)]
    after = build_features(members(), transactions(*later_tx), logs(*later_logs), users(1), AS_OF)
    assert after.equals(before)
    row = before.iloc[0]
    assert row["days_to_expiry"] == 2 and row["last_is_cancel"] == 0 and row["n_transactions"] == 2
    assert row["secs_7d"] == 4500.0 and row["active_days_7d"] == 2 and row["days_since_listen"] == 0


def test_users_without_transactions_by_the_snapshot_are_not_in_the_population() -> None:
    frame = build_features(
        members(), transactions((1, "2017-04-05", "2017-05-05", 0, 1)), logs(), users(1), AS_OF
    )
    assert frame.empty and list(frame.columns) == ["msno", "user_id", *FEATURE_NAMES]


def test_empty_windows_and_zero_plays_give_missing_ratios_not_errors() -> None:
    history = transactions((1, "2017-01-01", "2017-05-01", 0, 1), (2, "2017-01-01", "2017-05-01", 0, 1))
    listening = logs((2, "2016-09-01", 0, 0, 0.0))  # user 2: one silent day long ago; user 1: nothing at all
    frame = build_features(members(), history, listening, users(1, 2), AS_OF).set_index("user_id")
    for user in (1, 2):
        assert frame.loc[user, "secs_7d"] == 0 and frame.loc[user, "active_days_180d"] in (0, 1)
        assert np.isnan(frame.loc[user, "complete_ratio_7d"]) and np.isnan(frame.loc[user, "secs_trend_7_30"])
        assert np.isnan(frame.loc[user, "days_since_listen"])
    assert frame.loc[2, "active_days_180d"] == 0  # 2016-09-01 is more than 180 days before D
    values = frame[list(FEATURE_NAMES)].to_numpy(dtype=float)
    assert not np.isinf(values).any()


def test_cleaning_rules() -> None:
    history = transactions((1, "2017-03-01", "1970-01-01", 0, 1), (2, "2017-03-01", "2017-03-31", 0, 0))
    people = members((1, 1, -7000, None, 7, "2016-01-01"), (2, 5, 31, "female", 9, "2017-06-01"))
    listening = logs((1, "2017-03-31", 3, 3, -9.2e15), (2, "2017-03-31", 3, 3, 2.0e6))
    frame = build_features(people, history, listening, users(1, 2), AS_OF).set_index("user_id")
    assert np.isnan(frame.loc[1, "age"]) and frame.loc[2, "age"] == 31
    assert frame.loc[1, "gender"] == 0 and frame.loc[2, "gender"] == 2
    assert np.isnan(frame.loc[1, "days_to_expiry"])  # 1970 expiry is missing, not -17,000 days
    assert frame.loc[1, "secs_7d"] == 0 and frame.loc[2, "secs_7d"] == 86_400  # clipped per day
    assert np.isnan(frame.loc[2, "registration_days"])  # registered after D
    assert frame.loc[1, "registration_days"] == (AS_OF - d("2016-01-01")).days
    assert frame.loc[1, "has_member_row"] == 1


@pytest.mark.parametrize("lapse_gap", [29, 30])
def test_earlier_lapses_count_gaps_of_30_days(lapse_gap: int) -> None:
    expiry = d("2016-06-01")
    back = (expiry + dt.timedelta(days=lapse_gap)).isoformat()
    history = transactions((1, "2016-05-02", "2016-06-01", 0, 0), (1, back, "2017-04-15", 0, 0))
    frame = build_features(members(), history, logs(), users(1), AS_OF)
    assert frame.iloc[0]["n_lapses"] == (1 if lapse_gap >= 30 else 0)
    assert np.isnan(frame.iloc[0]["age"]) and frame.iloc[0]["has_member_row"] == 0
