"""The WSDM Cup 2018 churn label rule, for any cohort month (vectorised over all users).

A user is in the cohort of month M when their membership, after the transactions up to the end of M-1,
expires in M. Later transactions are walked in order: a cancel with an earlier expiry moves the expiry back;
the first non-cancel transaction is the renewal. Churn when there is no renewal, or it comes 30 or more days
after the (possibly moved) expiry. See ../shared/kkbox-data.md.

Transaction order matters on the same day: by date, then by the text `plan_list_price + payment_plan_days +
payment_method_id` (larger first), then a renewal before a cancel; among identical kinds, renewals by
expiry ascending and cancels by expiry descending (consecutive renewals extend, cancels shorten).
"""

from __future__ import annotations

import calendar
import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churn.data.kkbox import RELEASED_COHORTS
from churn.errors import ChurnError

RENEWAL_WINDOW_DAYS = 30
ORDER_COLUMNS = ("payment_method_id", "payment_plan_days", "plan_list_price", "transaction_date",
                 "membership_expire_date", "is_cancel")  # fmt: skip


def released_file(cohort: str) -> str | None:
    """The Bronze path of the released label file of a cohort (train.csv: 2017-02, train_v2.csv:
    2017-03), None for the other cohorts. Where it exists it is the truth: the challenge scored
    against it, and public re-implementations of the rule reproduce only 95-99% of it."""
    names = [name for name, month in RELEASED_COHORTS.items() if month == cohort]
    return f"bronze/{names[0]}" if names else None


def rule_agreement(
    rule_users: np.ndarray, rule_churn: np.ndarray, released_users: np.ndarray, released_churn: np.ndarray
) -> dict[str, float | int | None]:
    """How well the rule reproduces a released file on the users both label: counts and the share of
    equal labels (1.0 on generated data, whose files the rule wrote; on real data it measures the rule).
    """
    rule = pd.Series(np.asarray(rule_churn, dtype=np.int8), index=np.asarray(rule_users))
    released = pd.Series(np.asarray(released_churn, dtype=np.int8), index=np.asarray(released_users))
    both = rule.index.intersection(released.index)
    agree = int((rule.loc[both].to_numpy() == released.loc[both].to_numpy()).sum())
    return {
        "released_users": int(released.size), "rule_users": int(rule.size), "both": int(both.size),
        "agree": agree, "share": agree / both.size if both.size else None,
    }  # fmt: skip


def parse_cohort(cohort: str) -> tuple[dt.date, dt.date]:
    """`YYYY-MM` -> (first day, last day) of the month; a clear error for anything else."""
    try:
        first = dt.datetime.strptime(cohort, "%Y-%m").date()
    except ValueError:
        raise ChurnError(f"cohort must be a month like 2017-03 (got {cohort!r})") from None
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def snapshot_date(cohort: str) -> dt.date:
    """The as-of date of a cohort's features: the eve of the month (its first day minus one). Scores
    of that day are the cohort's predictions."""
    return parse_cohort(cohort)[0] - dt.timedelta(days=1)


def month_of(day: dt.date) -> str:
    """The cohort month (`YYYY-MM`) holding a day."""
    return f"{day.year:04d}-{day.month:02d}"


def add_months(cohort: str, count: int) -> str:
    """The month `count` months after `cohort` (before it for a negative count): the one month
    arithmetic of the package (training cohorts, matured cohorts)."""
    first, _ = parse_cohort(cohort)
    index = first.year * 12 + first.month - 1 + count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def cohorts_before(cohort: str, count: int) -> list[str]:
    """The `count` months before `cohort`, oldest first."""
    return [add_months(cohort, -back) for back in range(count, 0, -1)]


def training_cohorts(cohort: str, count: int) -> list[str]:
    """The `count` cohorts whose labels train a model validated on `cohort`, oldest first: M-count-1..M-2.

    A label matures `RENEWAL_WINDOW_DAYS` after its expiry, so on M's eve (the last day of M-1) none of
    M-1's is knowable but those of its first day in a 31-day month, and M-2's are, but those expiring in
    its last days when M-1 is shorter than 30 days; `knowable_on` drops those per user. Leaving M-1 out
    whole keeps a feature build and a label build for a handful of users out of every training."""
    return cohorts_before(add_months(cohort, -1), count)


def knowable_on(expiry: np.ndarray, eve: dt.date) -> np.ndarray:
    """Which labels, by the expiry (day numbers) their gap is measured from, are known on `eve`: the
    renewal window has closed by then (expiry + 30 days <= eve)."""
    return np.asarray(expiry, dtype=np.int64) + RENEWAL_WINDOW_DAYS <= (eve - dt.date(1970, 1, 1)).days


def months_between(first: dt.date, last: dt.date) -> list[str]:
    """`YYYY-MM` of every month from the one holding `first` to the one holding `last`."""
    months, month = [], month_of(first)
    while month <= month_of(last):  # YYYY-MM strings order as the months do
        months.append(month)
        month = add_months(month, 1)
    return months


def order_transactions(tx: pa.Table, key: str) -> pa.Table:
    """Sort transactions in the rule's order: user, date, signature text descending, renewal before cancel."""
    signature = pc.binary_join_element_wise(
        pc.cast(tx["plan_list_price"], pa.string()),
        pc.cast(tx["payment_plan_days"], pa.string()),
        pc.cast(tx["payment_method_id"], pa.string()),
        "",
    )
    # Ties left after that (same day, signature and kind): consecutive renewals extend the expiry, so the
    # latest expiry goes last; consecutive cancels move it earlier, so the earliest goes last. Without
    # this the order would depend on how the rows happened to be stored.
    expire = (
        pc.cast(tx["membership_expire_date"], pa.int32())
        if pa.types.is_date(tx["membership_expire_date"].type)
        else tx["membership_expire_date"]
    )
    expire = pc.cast(expire, pa.int64())
    tie = pc.if_else(pc.equal(tx["is_cancel"], 1), pc.negate(expire), expire)
    ordered = (
        tx.append_column("_signature", signature)
        .append_column("_tie", tie)
        .sort_by(
            [
                (key, "ascending"),
                ("transaction_date", "ascending"),
                ("_signature", "descending"),
                ("is_cancel", "ascending"),
                ("_tie", "ascending"),
            ]
        )
    )
    return ordered.drop_columns(["_signature", "_tie"])


def _day_numbers(column: pa.ChunkedArray) -> np.ndarray:
    """Dates (date32) or day numbers as int64 days since 1970-01-01."""
    if pa.types.is_date(column.type):
        column = pc.cast(column, pa.int32())
    return column.to_numpy().astype(np.int64)


def label_cohort(tx: pa.Table, cohort: str, key: str = "msno") -> pd.DataFrame:
    """Labels of cohort `cohort` from all known transactions (the data must reach 30 days past M's end).

    Returns one row per cohort user: `key`, `is_churn` (0/1), `expiry` (the day number the gap is
    measured from) and `renewal` (day number of the renewal, -1 when none).
    """
    missing = [c for c in (key, *ORDER_COLUMNS) if c not in tx.column_names]
    if missing:
        raise ChurnError(f"transactions lack column(s) {', '.join(missing)} needed by the label rule")
    first, last = parse_cohort(cohort)
    epoch = dt.date(1970, 1, 1)
    cutoff, m_start, m_end = (first - epoch).days - 1, (first - epoch).days, (last - epoch).days

    ordered = order_transactions(tx.select([key, *ORDER_COLUMNS]), key)
    frame = pd.DataFrame(
        {
            "user": ordered[key].to_numpy(zero_copy_only=False),
            "date": _day_numbers(ordered["transaction_date"]),
            "expire": _day_numbers(ordered["membership_expire_date"]),
            "cancel": ordered["is_cancel"].to_numpy().astype(bool),
        }
    )
    before = frame[frame["date"] <= cutoff]
    current = before.groupby("user", sort=False)["expire"].last()
    cohort_users = current[(current >= m_start) & (current <= m_end)]

    later = frame[(frame["date"] > cutoff) & frame["user"].isin(cohort_users.index)]
    seen_renewal = (~later["cancel"]).astype(np.int64).groupby(later["user"], sort=False).cumsum()
    cancels = later[later["cancel"] & (seen_renewal == 0)].groupby("user", sort=False)["expire"].min()
    renewal = later[~later["cancel"] & (seen_renewal == 1)].groupby("user", sort=False)["date"].first()

    result = pd.DataFrame({"expiry": cohort_users})
    moved = cancels.reindex(result.index)
    result["expiry"] = np.where(moved.notna() & (moved < result["expiry"]), moved, result["expiry"]).astype(
        np.int64
    )
    result["renewal"] = renewal.reindex(result.index).fillna(-1).astype(np.int64)
    gap = result["renewal"] - result["expiry"]
    result["is_churn"] = ((result["renewal"] < 0) | (gap >= RENEWAL_WINDOW_DAYS)).astype(np.int8)
    return result.rename_axis(key).reset_index()[[key, "is_churn", "expiry", "renewal"]]
