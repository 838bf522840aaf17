"""Row contracts of the Silver tables, declared once and turned into pandera schemas.

The bounds are sanity bounds, not cleaning: the real files' quirks (bd of -7000, negative total_secs,
expiries in 1970 or 2036, zero plan days) are kept in Silver, and features decide what they mean. Rows
outside these bounds are broken and go to quarantine with the check that failed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

import pandas as pd
import pandera.pandas as pa

from churn.data.kkbox import TABLES, day_number


@dataclass(frozen=True)
class Field:
    """One column's contract: bounds (inclusive), allowed values, whether empty is allowed."""

    low: float | dt.date | None = None
    high: float | dt.date | None = None
    allowed: tuple[object, ...] | None = None
    nullable: bool = False
    finite: bool = False


_DATE_RANGE = Field(dt.date(2004, 1, 1), dt.date(2030, 12, 31))
FIELDS: dict[str, dict[str, Field]] = {
    "members": {
        "city": Field(0, 999),
        "bd": Field(-32768, 32767),
        "gender": Field(allowed=("male", "female"), nullable=True),
        "registered_via": Field(0, 999),
        "registration_init_time": Field(dt.date(1990, 1, 1), dt.date(2030, 12, 31)),
    },
    "transactions": {
        "payment_method_id": Field(0, 999),
        "payment_plan_days": Field(0, 9999),
        "plan_list_price": Field(0, 999_999),
        "actual_amount_paid": Field(0, 999_999),
        "is_auto_renew": Field(allowed=(0, 1)),
        "transaction_date": _DATE_RANGE,
        "membership_expire_date": Field(dt.date(1970, 1, 1), dt.date(2099, 12, 31)),
        "is_cancel": Field(allowed=(0, 1)),
    },
    "user_logs": {
        "date": _DATE_RANGE,
        **{c: Field(0, 1_000_000) for c in ("num_25", "num_50", "num_75", "num_985", "num_100", "num_unq")},
        "total_secs": Field(finite=True),
    },
}


def _checks(field: Field, *, dates_as_days: bool) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if isinstance(field.low, dt.date) and isinstance(field.high, dt.date):
        low, high = field.low, field.high
        if dates_as_days:
            first, last = day_number(low), day_number(high)
            checks.append(pa.Check(lambda s: (s >= first) & (s <= last), name=f"in_range({low}, {high})"))
        else:
            checks.append(pa.Check.in_range(pd.Timestamp(low), pd.Timestamp(high)))
    elif field.low is not None and field.high is not None:
        checks.append(pa.Check.in_range(field.low, field.high))
    if field.allowed is not None:
        checks.append(pa.Check.isin(list(field.allowed)))
    if field.finite:
        checks.append(pa.Check(lambda s: s.abs() < float("inf"), element_wise=False, name="finite"))
    return checks


@cache
def row_schema(table: str, *, dates_as_days: bool = False) -> pa.DataFrameSchema:
    """The pandera schema of a table's typed rows (without msno, which the user key decoder checks).

    Dates are pandas timestamps, or day numbers since 1970-01-01 with `dates_as_days` (what the ingest
    uses: converting every block to timestamps would cost more than the check). Dtypes are not coerced.
    """
    if table not in FIELDS:
        raise KeyError(f"no contract for table {table!r}; known: {', '.join(FIELDS)}")
    columns = {
        name: pa.Column(
            checks=_checks(field, dates_as_days=dates_as_days), nullable=field.nullable, required=True
        )
        for name, field in FIELDS[table].items()
    }
    return pa.DataFrameSchema(columns, name=f"silver.{table}", strict=False)


@cache
def _assert_contracts_cover_tables() -> None:
    for name, table in TABLES.items():
        declared = set(FIELDS[name])
        expected = set(table.column_names) - {"msno"}
        if declared != expected:
            raise AssertionError(
                f"contract of {name} covers {sorted(declared)}, table has {sorted(expected)}"
            )


_assert_contracts_cover_tables()
