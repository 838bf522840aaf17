"""Live features for one user: from the user's Silver rows, or from raw events in KKBox field names.

Both paths end in `churn.features.build_features`, the function that built Gold, so a live prediction and
the nightly score of the same rows are the same number. Raw events arrive as `churn.events` records
(checked against the ingest's row contracts), are typed exactly like Silver (`churn.kkbox` schemas) and
go through Silver's rules: exact copies are dropped as the ingest drops them, and two different log rows
of one day are refused as validation refuses them in Silver.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from churn import kkbox
from churn.errors import ChurnError
from churn.features import build_features
from churn.gold import user_features
from churn.ingest import sort_and_deduplicate
from churn.lake import Lake
from churn.userkey import bucket_of, user_id_of

LIVE_USER_ID = 0  # raw events carry no lake key; the frame needs one


class ConflictingEventsError(ChurnError, ValueError):
    """Two different rows of a user-day in user_logs: Silver holds one (validation refuses a second)."""


def _table(spec: kkbox.Table, records: list[BaseModel]) -> pa.Table:
    """Validated event records -> a Silver-shaped table of the live user."""
    schema = spec.schema
    rows = [record.model_dump() for record in records]
    columns = {
        field.name: pa.array(
            [LIVE_USER_ID] * len(rows) if field.name == "user_id" else [r.get(field.name) for r in rows],
            type=field.type,
        )
        for field in schema
    }
    return pa.table(columns, schema=schema)


def _silver_rows(spec: kkbox.Table, records: list[BaseModel]) -> pa.Table:
    """Event records as Silver holds them: sorted, exact copies dropped (the ingest's own function)."""
    table, _ = sort_and_deduplicate(_table(spec, records), spec)
    return table


def _one_log_row_per_day(logs: pa.Table) -> None:
    """Refuse what Silver validation refuses: a second, different user_logs row for a day (deduplicated
    and sorted rows, so a conflict is two neighbours of one date)."""
    days = pc.cast(logs[kkbox.USER_LOGS.date_column], pa.int32()).to_numpy()
    clash = np.flatnonzero(days[1:] == days[:-1])
    if clash.size:
        day = kkbox.EPOCH + dt.timedelta(days=int(days[clash[0]]))
        raise ConflictingEventsError(f"two different rows dated {day}: user_logs hold one row per day")


def features_from_events(
    member: BaseModel | None,
    transactions: list[BaseModel],
    user_logs: list[BaseModel],
    as_of: dt.date,
    msno: str | None = None,
) -> pd.DataFrame:
    """The feature frame (one row, or none without a transaction on or before `as_of`) of raw events.

    Records are `churn.events` models (validated against the row contracts); rows dated after `as_of`
    are ignored by the feature code, as in Gold. Raises ConflictingEventsError for two different log
    rows of one day.
    """
    members = _table(kkbox.MEMBERS, [member] if member else [])
    logs = _silver_rows(kkbox.USER_LOGS, user_logs)
    _one_log_row_per_day(logs)
    users = pa.table({"user_id": pa.array([LIVE_USER_ID], pa.int64()), "msno": pa.array([msno or ""])})
    return build_features(members, _silver_rows(kkbox.TRANSACTIONS, transactions), logs, users, as_of)


def features_of_user(lake: Lake, msno: str, as_of: dt.date, logs_from: dt.date | None) -> pd.DataFrame:
    """The feature frame of a known user from Silver (empty when the user has no transaction by then, or
    is unknown). The lake key is made of msno's first 16 characters only, so the whole msno is checked
    against the one Silver `users` holds for that key: another id sharing the prefix is not this user."""
    row = user_features(lake, msno, as_of, logs_from=logs_from)
    return pd.DataFrame([row]) if row is not None and row["msno"] == msno else pd.DataFrame()


def events_of_user(lake: Lake, msno: str, as_of: dt.date) -> dict[str, Any]:
    """A known user's Silver rows up to `as_of` as a raw-events body (KKBox field names, dates as
    YYYYMMDD): what a client holding the same events would send to POST /predict."""
    from churn.gold import bucket_count
    from churn.ingest import read_silver

    user = user_id_of(msno)
    bucket = int(bucket_of(np.array([user]), bucket_count(lake))[0])

    def records(table: str, date_column: str | None) -> list[dict[str, Any]]:
        filters = [("user_id", "=", user)] + ([(date_column, "<=", as_of)] if date_column else [])
        rows = read_silver(lake, table, bucket, filters=filters).drop(["user_id"]).to_pylist()
        return [
            {k: int(v.strftime("%Y%m%d")) if isinstance(v, dt.date) else v for k, v in r.items()}
            for r in rows
        ]

    members = records("members", None)
    return {
        "msno": msno,
        "as_of": as_of.isoformat(),
        "member": members[-1] if members else None,
        "transactions": records("transactions", "transaction_date"),
        "user_logs": records("user_logs", "date"),
    }
