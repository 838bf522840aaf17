"""Live features for one user: from the user's Silver rows, or from raw events in KKBox field names.

Both paths end in `churn.features.build_features`, the function that built Gold, so a live prediction and
the nightly score of the same rows are the same number. Raw events arrive as `churn.events` records
(checked against the ingest's row contracts) and are typed exactly like Silver (`churn.kkbox` schemas).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel

from churn import kkbox
from churn.features import build_features
from churn.gold import user_features
from churn.lake import Lake

LIVE_USER_ID = 0  # raw events carry no lake key; the frame needs one


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


def features_from_events(
    member: BaseModel | None,
    transactions: list[BaseModel],
    user_logs: list[BaseModel],
    as_of: dt.date,
    msno: str | None = None,
) -> pd.DataFrame:
    """The feature frame (one row, or none without a transaction on or before `as_of`) of raw events.

    Records are `churn.events` models (validated against the row contracts); rows dated after `as_of`
    are ignored by the feature code, as in Gold.
    """
    members = _table(kkbox.MEMBERS, [member] if member else [])
    users = pa.table({"user_id": pa.array([LIVE_USER_ID], pa.int64()), "msno": pa.array([msno or ""])})
    return build_features(
        members, _table(kkbox.TRANSACTIONS, transactions), _table(kkbox.USER_LOGS, user_logs), users, as_of
    )


def features_of_user(lake: Lake, msno: str, as_of: dt.date) -> pd.DataFrame:
    """The feature frame of a known user from Silver (empty when the user has no transaction by then)."""
    row = user_features(lake, msno, as_of)
    return pd.DataFrame([row]) if row is not None else pd.DataFrame()
