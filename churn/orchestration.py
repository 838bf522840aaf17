"""What every churn DAG agrees on, stated once: the day a run is for, the first date, the retry policy.

DAG files import it at the top (standard library only, so parsing stays fast); the task bodies import the
rest of `churn` when they run.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

# The day a run covers: the day before its data interval's end (a nightly run at D+1 covers D, a Monday
# run of the weekly DAG covers the week to Sunday); never the clock.
DAY = "{{ data_interval_end.subtract(days=1).strftime('%Y-%m-%d') }}"
# Before any KKBox data (2015-01-01): with catchup off it only bounds backfills.
START_DATE = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)


# Every churn DAG: from START_DATE, no catchup (a backfill is asked for), one run at a time (runs of one
# DAG write the same tables; a second would wait on the first's locks anyway).
DAG_DEFAULTS: dict[str, Any] = {"start_date": START_DATE, "catchup": False, "max_active_runs": 1}


def retries(count: int = 3, minutes: float = 1) -> dict[str, Any]:
    """Task arguments of the retry policy: `count` retries, exponential backoff from `minutes`. I/O tasks
    use the default; tasks waiting for something late (the weekly report's Sunday) wait longer."""
    return {"retries": count, "retry_delay": dt.timedelta(minutes=minutes), "retry_exponential_backoff": True}
