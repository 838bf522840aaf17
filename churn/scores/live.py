"""Live features for one user: from the user's Silver rows, or from raw events in KKBox field names.

Both paths end in `churn.features.spec.build_features`, the function that built Gold, so a live prediction and
the nightly score of the same rows are the same number. Raw events arrive as `churn.data.events` records
(checked against the ingest's row contracts), are typed exactly like Silver (`churn.data.kkbox` schemas) and
go through Silver's rules: exact copies are dropped as the ingest drops them, and two different log rows
of one day are refused as validation refuses them in Silver.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from churn.data import kkbox
from churn.data.silver import (
    silver_first_day,
    silver_newest_day,
    sort_and_deduplicate,
    user_bucket,
)
from churn.errors import ChurnError
from churn.features.inputs import feature_inputs
from churn.features.spec import FEATURE_NAMES, build_features
from churn.lake import Lake
from churn.model.champion import LoadedModel
from churn.model.reasons import Reason, contributions, top_reasons
from churn.scores.bands import risk_bands
from churn.scores.revenue import price_per_30d, revenue_at_risk

LIVE_USER_ID = 0  # raw events carry no lake key; the frame needs one


class LiveInputError(ChurnError, ValueError):
    """A live request that cannot be answered as asked; `field` names the input at fault (the API
    answers 422 there)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ConflictingEventsError(LiveInputError):
    """Two different rows of a user-day in user_logs: Silver holds one (validation refuses a second)."""

    def __init__(self, message: str) -> None:
        super().__init__("user_logs", message)


class UnknownUserError(ChurnError):
    """The lake holds no transaction of this msno on or before the date (the API answers 404)."""


class SilverUnknownError(ChurnError):
    """Silver's newest day is not known (no Silver yet, or the lake is away): the lake path cannot say
    which days it can answer for (the API answers 503)."""


@dataclass(frozen=True)
class SilverDays:
    """What the lake path needs to know of Silver, read from the parts' statistics once and refreshed by
    the server (not per request): its newest day (the latest as_of it answers for) and its first
    user-log day (the features' coverage bound, as Gold uses it)."""

    newest: dt.date | None = None
    logs_from: dt.date | None = None

    @classmethod
    def read(cls, lake: Lake) -> SilverDays:
        """Silver's days now (lake errors propagate: the caller decides what an outage means)."""
        return cls(silver_newest_day(lake), silver_first_day(lake, "user_logs"))


@dataclass(frozen=True)
class LivePrediction:
    """One answered live prediction."""

    msno: str | None
    as_of: dt.date
    churn_probability: float
    risk_band: str
    model_version: int
    source: str  # "lake" (a known user's Silver rows) or "events" (raw events sent with the request)
    revenue_at_risk: float | None = None
    price_per_30d: float | None = None
    reasons: list[Reason] = field(default_factory=list)


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

    Records are `churn.data.events` models (validated against the row contracts); rows dated after `as_of`
    are ignored by the feature code, as in Gold. Raises ConflictingEventsError for two different log
    rows of one day.
    """
    members = _table(kkbox.MEMBERS, [member] if member else [])
    logs = _silver_rows(kkbox.USER_LOGS, user_logs)
    _one_log_row_per_day(logs)
    users = pa.table({"user_id": pa.array([LIVE_USER_ID], pa.int64()), "msno": pa.array([msno or ""])})
    return build_features(members, _silver_rows(kkbox.TRANSACTIONS, transactions), logs, users, as_of)


def user_features(
    lake: Lake, msno: str, as_of: dt.date, *, logs_from: dt.date | None
) -> dict[str, Any] | None:
    """The live path: one user's features as of a date from that user's Silver rows (None if unknown).
    `logs_from` is Silver's first user-log day (`silver_first_day(lake, "user_logs")`), the coverage bound
    Gold uses, so both give the same numbers; a server reads it once and refreshes it, rather than scan
    every part's statistics per request."""
    try:
        user_id, bucket = user_bucket(lake, msno)
    except ValueError as error:
        raise ChurnError(str(error)) from None
    frame = build_features(*feature_inputs(lake, bucket, as_of, user_id), as_of, logs_from=logs_from)
    # The frame's columns are the feature names: string keys, not just any Hashable.
    return None if frame.empty else cast(dict[str, Any], frame.iloc[0].to_dict())


def features_of_user(lake: Lake, msno: str, as_of: dt.date, logs_from: dt.date | None) -> pd.DataFrame:
    """The feature frame of a known user from Silver (empty when the user has no transaction by then, or
    is unknown). The lake key is made of msno's first 16 characters only, so the whole msno is checked
    against the one Silver `users` holds for that key: another id sharing the prefix is not this user."""
    row = user_features(lake, msno, as_of, logs_from=logs_from)
    return pd.DataFrame([row]) if row is not None and row["msno"] == msno else pd.DataFrame()


class RecordSink(Protocol):
    """Where answered predictions are recorded (`churn.monitoring.predlog.PredictionLog`)."""

    def append(self, record: dict[str, Any]) -> None:
        """Take one record; never raise (recording must not fail the prediction)."""


def _from_events(
    member: BaseModel | None,
    transactions: list[BaseModel],
    user_logs: list[BaseModel],
    as_of: dt.date | None,
    msno: str | None,
) -> tuple[dt.date, pd.DataFrame]:
    """(as_of, features) of raw events; by default as of their newest date. An as_of past the newest
    event would be a guess about days the caller sent nothing for, so it is refused, as are conflicting
    rows of one day."""
    if not transactions:
        raise LiveInputError("transactions", "raw events need at least one transaction")
    days = [t.transaction_date for t in transactions] + [log.date for log in user_logs]  # type: ignore[attr-defined]
    newest = max(days)
    day = as_of or newest
    if day > newest:
        raise LiveInputError("as_of", f"as_of {day} is after the newest event ({newest})")
    frame = features_from_events(member, transactions, user_logs, day, msno)
    if frame.empty:
        raise LiveInputError("transactions", f"no transaction dated on or before as_of {day}")
    return day, frame


def _from_lake(
    lake: Lake, msno: str, as_of: dt.date | None, silver: SilverDays
) -> tuple[dt.date, pd.DataFrame]:
    """(as_of, features) of a known user from Silver, by default as of its newest day; Silver cannot
    answer past that day (the prediction would be made up and logged as if it were real)."""
    if silver.newest is None:
        raise SilverUnknownError("the newest Silver day is unknown (no Silver data yet, or the lake is away)")
    day = as_of or silver.newest
    if day > silver.newest:
        raise LiveInputError("as_of", f"as_of {day} is after the newest Silver day ({silver.newest})")
    frame = features_of_user(lake, msno, day, silver.logs_from)
    if frame.empty:
        raise UnknownUserError(f"no transaction of this msno on or before {day}")
    return day, frame


def predict(
    loaded: LoadedModel,
    thresholds: list[float],
    *,
    msno: str | None = None,
    as_of: dt.date | None = None,
    member: BaseModel | None = None,
    transactions: list[BaseModel] | None = None,
    user_logs: list[BaseModel] | None = None,
    lake: Lake | None = None,
    silver: SilverDays | None = None,
    record: RecordSink | None = None,
) -> LivePrediction:
    """Score one user now with a loaded champion and the feature code that built Gold: from the raw
    events when any are given, else the known user's Silver rows (`lake`, `silver`). Banded with the
    nightly thresholds; an answered prediction (only those) goes to `record` with its features, which
    the weekly drift report compares with the reference. Refusals: LiveInputError (naming the input),
    UnknownUserError, SilverUnknownError."""
    from churn.model.pipeline import churn_probability

    if transactions or user_logs or member is not None:
        source = "events"
        day, frame = _from_events(member, transactions or [], user_logs or [], as_of, msno)
    else:
        if lake is None or msno is None:
            raise LiveInputError("msno", "a known user's prediction needs the msno (and the lake)")
        source = "lake"
        day, frame = _from_lake(lake, msno, as_of, silver or SilverDays())
    probability = float(churn_probability(loaded.model, frame)[0])
    band = str(risk_bands([probability], thresholds)[0])
    price = float(price_per_30d(frame["last_paid"], frame["last_plan_days"])[0])
    revenue = float(revenue_at_risk(probability, price))
    if record is not None:
        record.append({
            "requested_at": dt.datetime.now(dt.UTC), "source": source, "msno": msno, "as_of": day,
            "model_version": loaded.version, "churn_probability": probability,
            **{name: float(frame.iloc[0][name]) for name in FEATURE_NAMES},
        })  # fmt: skip
    return LivePrediction(msno, day, probability, band, loaded.version, source,
                          None if np.isnan(revenue) else revenue, None if np.isnan(price) else price,
                          top_reasons(contributions(loaded.model, frame))[0])  # fmt: skip


def reasons_from_gold(
    lake: Lake, loaded: LoadedModel, msno: str, score: dict[str, Any]
) -> list[Reason] | None:
    """The reasons of a published score whose reasons were not stored (a band below those the nightly
    job explains), computed from that date's Gold features, the very rows it scored. Only when the loaded
    champion is the version that scored it (another version's reasons would explain another number) and
    the features still give the stored probability (Gold rebuilt since would explain another row); None
    otherwise, or when the Gold features of that date are gone."""
    from churn.features import gold
    from churn.model.pipeline import churn_probability

    if loaded.version != int(score["model_version"]):
        return None
    frame = gold.read_user_features(lake, dt.date.fromisoformat(str(score["score_date"])), msno)
    if frame is None:
        return None
    if abs(float(churn_probability(loaded.model, frame)[0]) - float(score["churn_probability"])) > 1e-9:
        return None
    return top_reasons(contributions(loaded.model, frame))[0]
