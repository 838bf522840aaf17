"""The KKBox (WSDM Cup 2018) file formats: file names, column order and the Silver types of each table.

The generator writes exactly these files and the ingest reads exactly these, so both take the formats from
here. See ../shared/kkbox-data.md for the source of truth.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    import numpy as np

EPOCH = dt.date(1970, 1, 1)
HISTORY_START = dt.date(2015, 1, 1)
DUMP_V1_END = dt.date(2017, 2, 28)  # user_logs.csv / transactions.csv end here
DUMP_END = dt.date(2017, 3, 31)  # the *_v2 files hold March 2017
DAILY_START = dt.date(2017, 4, 1)  # daily drops continue from here


@dataclass(frozen=True)
class Table:
    """One KKBox table: its Bronze files, its columns in file order, and their Silver types."""

    name: str
    dump_files: tuple[str, ...]
    columns: tuple[tuple[str, pa.DataType], ...]
    date_columns: tuple[str, ...] = ()
    date_column: str | None = None  # the event date used for daily drops and ordering
    nullable: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        """Column names in file order."""
        return [name for name, _ in self.columns]

    @property
    def schema(self) -> pa.Schema:
        """Silver schema: the integer user key first, then the file's columns (dates as date32) but msno.

        msno, 44 bytes per row, lives once per user in the Silver `users` table (see `USERS`).
        """
        fields = [pa.field(n, t, nullable=n in self.nullable) for n, t in self.columns if n != "msno"]
        return pa.schema([pa.field("user_id", pa.int64(), nullable=False), *fields])


USERS = pa.schema(
    [pa.field("user_id", pa.int64(), nullable=False), pa.field("msno", pa.string(), nullable=False)]
)
"""Silver `users`: every user seen in any table, with its external id."""


MEMBERS = Table(
    name="members",
    dump_files=("members_v3.csv",),
    columns=(
        ("msno", pa.string()),
        ("city", pa.int16()),
        ("bd", pa.int16()),
        ("gender", pa.string()),
        ("registered_via", pa.int16()),
        ("registration_init_time", pa.date32()),
    ),
    date_columns=("registration_init_time",),
    date_column="registration_init_time",
    nullable=("gender",),
)

TRANSACTIONS = Table(
    name="transactions",
    dump_files=("transactions.csv", "transactions_v2.csv"),
    columns=(
        ("msno", pa.string()),
        ("payment_method_id", pa.int16()),
        ("payment_plan_days", pa.int16()),
        ("plan_list_price", pa.int32()),
        ("actual_amount_paid", pa.int32()),
        ("is_auto_renew", pa.int8()),
        ("transaction_date", pa.date32()),
        ("membership_expire_date", pa.date32()),
        ("is_cancel", pa.int8()),
    ),
    date_columns=("transaction_date", "membership_expire_date"),
    date_column="transaction_date",
)

USER_LOGS = Table(
    name="user_logs",
    dump_files=("user_logs.csv", "user_logs_v2.csv"),
    columns=(
        ("msno", pa.string()),
        ("date", pa.date32()),
        ("num_25", pa.int32()),
        ("num_50", pa.int32()),
        ("num_75", pa.int32()),
        ("num_985", pa.int32()),
        ("num_100", pa.int32()),
        ("num_unq", pa.int32()),
        ("total_secs", pa.float64()),
    ),
    date_columns=("date",),
    date_column="date",
)

LABELS = Table(
    name="labels",
    dump_files=("train.csv", "train_v2.csv"),
    columns=(("msno", pa.string()), ("is_churn", pa.int8())),
)

RELEASED_COHORTS: dict[str, str] = {"train.csv": "2017-02", "train_v2.csv": "2017-03"}
"""The cohort month each released label file holds (February and March 2017 expiries)."""

TABLES: dict[str, Table] = {t.name: t for t in (MEMBERS, TRANSACTIONS, USER_LOGS)}
"""The tables the ingest turns into Silver (labels are read from the released files or derived by the
WSDM rule, not ingested)."""

DUMP_FILES: tuple[str, ...] = (*(f for t in TABLES.values() for f in t.dump_files), *LABELS.dump_files)
"""Every file of the Kaggle dump the system reads: the tables' files, then the released labels."""

SAMPLE_SUBMISSION = "sample_submission_v2.csv"
MSNO_LENGTH = 44


def daily_path(table: str, day: dt.date) -> str:
    """Bronze path of one daily drop: `bronze/<table>/dt=YYYY-MM-DD/<table>.csv`."""
    return f"bronze/{table}/dt={day.isoformat()}/{table}.csv"


def to_yyyymmdd(days: object) -> np.ndarray:
    """Days since 1970-01-01 (numpy ints) -> integer YYYYMMDD, the KKBox date format (vectorised)."""
    import numpy as np

    values = np.asarray(days, dtype="int64").astype("datetime64[D]")
    years = values.astype("datetime64[Y]").astype(int) + 1970
    months = values.astype("datetime64[M]").astype(int) % 12 + 1
    day = (values - values.astype("datetime64[M]")).astype(int) + 1
    return years * 10000 + months * 100 + day


def day_number(day: dt.date) -> int:
    """Days since 1970-01-01."""
    return (day - EPOCH).days
