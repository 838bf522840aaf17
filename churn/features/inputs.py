"""The Silver rows a feature build reads: one bucket for Gold, one user of it for the live path, pruned to
the dates the features look at (`spec.WINDOWS`). One function, so both paths read the same rows.

Point in time: only rows delivered by the as-of day are read (`silver.delivered_on`): the dump counts as
known from the start, a daily drop from its date. Event dates alone would not do for members, whose rows
carry no date of their own: a member's new city delivered after D must not be their city as of D.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from churn.data.silver import read_silver, silver_tables
from churn.features.spec import WINDOWS
from churn.lake import Lake


def feature_inputs(
    lake: Lake, bucket: int, as_of: dt.date, user_id: int | None = None
) -> tuple[pa.Table | None, pa.Table, pa.Table | None, pa.Table]:
    """The Silver rows `build_features` needs for one bucket (or one user of it), pruned by date; None
    for a table Silver does not hold at all (its features are then missing, not zero)."""
    only_user = [("user_id", "=", user_id)] if user_id is not None else []
    first_log_day = as_of - min(dt.timedelta(days=max(WINDOWS) - 1), as_of - dt.date.min)  # no overflow
    present = silver_tables(lake)
    members = (
        read_silver(lake, "members", bucket, filters=only_user or None, delivered_by=as_of)
        if "members" in present
        else None
    )
    transactions = read_silver(
        lake,
        "transactions",
        bucket,
        filters=[*only_user, ("transaction_date", "<=", as_of)],
        delivered_by=as_of,
    )
    logs = (
        read_silver(lake, "user_logs", bucket, delivered_by=as_of,
                    filters=[*only_user, ("date", ">=", first_log_day), ("date", "<=", as_of)])
        if "user_logs" in present
        else None
    )  # fmt: skip
    users = read_silver(lake, "users", bucket, filters=only_user or None)
    return members, transactions, logs, users
