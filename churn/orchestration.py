"""What every churn DAG agrees on, stated once: the day a run is for, the window of dates the scheduler may
run, the retry policy and the failure alert.

DAG files import it at the top (standard library only, so parsing stays fast); the task bodies import the
rest of `churn` when they run. The scheduling window and the retry policy are read from the environment of
the process that parses the DAGs (the dag-processor, or the test calling `dag.test()`); a malformed value
fails the parse with the variable's name, so the DAG shows an import error instead of running wrongly.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import urllib.request
from typing import Any

log = logging.getLogger("churn.alerts")

# The day a run covers: the day before its data interval's end (a nightly run at D+1 covers D, a Monday
# run of the weekly DAG covers the week to Sunday); never the clock.
DAY = "{{ data_interval_end.subtract(days=1).strftime('%Y-%m-%d') }}"
# Before any KKBox data (2015-01-01): with catchup off it only bounds backfills.
START_DATE = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)

SCHEDULE_START = "CHURN_SCHEDULE_START"
SCHEDULE_END = "CHURN_SCHEDULE_END"
TASK_RETRIES = "CHURN_TASK_RETRIES"
RETRY_DELAY = "CHURN_TASK_RETRY_DELAY_SECONDS"
ALERT_WEBHOOK = "CHURN_ALERT_WEBHOOK_URL"


def _env_date(name: str) -> dt.datetime | None:
    """A date variable as midnight UTC, None when unset or empty."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), tzinfo=dt.UTC)
    except ValueError:
        raise ValueError(f"{name}: expected a date YYYY-MM-DD, got {value!r}") from None


def _env_number(name: str, kind: type[int] | type[float]) -> int | float | None:
    """A non-negative number variable, None when unset or empty."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(f"{name}: expected a {kind.__name__} >= 0, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{name}: expected a {kind.__name__} >= 0, got {value!r}")
    return number


def schedule_window(interval_days: int = 1) -> dict[str, Any]:
    """`start_date` and `end_date` of a scheduled DAG whose runs cover `interval_days` days ending on the
    day before their run time: the scheduler never creates a run covering a day outside CHURN_SCHEDULE_START
    .. CHURN_SCHEDULE_END, unpaused or not. A lake whose data ends in 2017 (the demo's) sets the end to its
    last day, so unpausing runs nothing for today's interval; production leaves it unset."""
    start = _env_date(SCHEDULE_START) or START_DATE
    end = _env_date(SCHEDULE_END)
    if end is None:
        return {"start_date": start, "end_date": None}
    if end < start:
        raise ValueError(f"{SCHEDULE_END} ({end:%Y-%m-%d}) is before {SCHEDULE_START} ({start:%Y-%m-%d})")
    # The scheduler compares end_date with an interval's start, and a run's tasks exist only when its
    # logical date (the interval's start, for scheduled runs and the demo's explicit triggers) is on or
    # before it. The last run allowed covers END, so its interval starts on END - interval_days + 1 (after
    # midnight): the midnight after that day keeps it and refuses the next.
    return {"start_date": start, "end_date": end - dt.timedelta(days=interval_days - 2)}


def alert_on_failure(context: dict[str, Any]) -> None:
    """Task failure callback (after the last retry): one ERROR line in the task log, and a JSON POST to
    CHURN_ALERT_WEBHOOK_URL when it is set (a Slack/Mattermost-compatible `text` plus the fields). A
    webhook that cannot be reached is logged, never raised: the task's own failure is what counts."""
    ti = context.get("task_instance") or context.get("ti")
    error = context.get("exception")
    fields = {
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None),
        "try_number": getattr(ti, "try_number", None),
        "logical_date": str(context.get("logical_date") or ""),
        "error": f"{type(error).__name__}: {error}" if error is not None else "",
    }
    text = (f"churn: task {fields['dag_id']}.{fields['task_id']} failed (run {fields['run_id']}, try "
            f"{fields['try_number']}): {fields['error'] or 'no exception recorded'}")  # fmt: skip
    log.error("ALERT %s", text)
    url = os.environ.get(ALERT_WEBHOOK, "").strip()
    if not url:
        return
    if not url.startswith(("http://", "https://")):
        log.error("alert webhook not sent: %s must be an http(s) URL", ALERT_WEBHOOK)
        return
    body = json.dumps({"text": text, **fields}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (the operator's URL)
            log.info("alert sent to the webhook (HTTP %s)", response.status)
    except OSError as failure:
        log.error("alert webhook failed: %s", failure)


def scheduled(interval_days: int = 1) -> dict[str, Any]:
    """DAG arguments of every scheduled churn DAG: inside the schedule window, no catchup (a backfill is
    asked for), one run at a time (runs of one DAG write the same tables; a second would wait on the
    first's locks anyway), and the failure alert on every task."""
    return {
        **schedule_window(interval_days),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {"on_failure_callback": alert_on_failure},
    }


def manual() -> dict[str, Any]:
    """DAG arguments of a DAG run only when triggered (training, for the cohort of its form): no window (a
    trigger dated today, as the UI's is, must get its tasks), the other defaults of `scheduled`."""
    return {**scheduled(), "start_date": START_DATE, "end_date": None}


def retries(count: int = 3, minutes: float = 1) -> dict[str, Any]:
    """Task arguments of the retry policy: `count` retries, exponential backoff from `minutes`. I/O tasks
    use the default; tasks waiting for something late (the weekly report's Sunday) wait longer.
    CHURN_TASK_RETRIES and CHURN_TASK_RETRY_DELAY_SECONDS override both for every task (tests set 0, so a
    failing task fails its test at once)."""
    override_count = _env_number(TASK_RETRIES, int)
    override_delay = _env_number(RETRY_DELAY, float)
    delay = (
        dt.timedelta(seconds=override_delay) if override_delay is not None else dt.timedelta(minutes=minutes)
    )
    return {
        "retries": int(override_count) if override_count is not None else count,
        "retry_delay": delay,
        "retry_exponential_backoff": True,
    }
