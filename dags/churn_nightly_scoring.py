"""### Nightly scoring

At 02:00 UTC, scores every active user as of the day that just ended (the run's data interval) with the
registry's champion and publishes the day to `churn_scores` atomically: Silver checked, features built
and checked, then scored and swapped in. One run at a time; a rerun of a day replaces it; a failed run
leaves the previous scores served. Emits the `churn_scores` asset.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

SCORES = Asset(name="churn_scores", uri="churn://db/churn_scores")
# The day a run covers: the day before its data interval's end (a run at D+1 covers D); never the clock.
DAY = "{{ data_interval_end.subtract(days=1).strftime('%Y-%m-%d') }}"
IO_RETRIES = {"retries": 3, "retry_delay": dt.timedelta(minutes=1), "retry_exponential_backoff": True}


@dag(
    dag_id="churn_nightly_scoring",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=dt.datetime(2015, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["churn"],
    doc_md=__doc__,
)
def churn_nightly_scoring() -> None:
    @task
    def validate_silver(day: str) -> dict:
        from lake_connection import churn_steps

        return churn_steps().validate("silver", day)

    @task(**IO_RETRIES)
    def features(day: str) -> dict:
        from lake_connection import churn_steps

        return churn_steps().features(day)

    @task
    def validate_gold(day: str) -> dict:
        from lake_connection import churn_steps

        return churn_steps().validate("gold", day)

    @task(outlets=[SCORES], **IO_RETRIES)
    def score_and_publish(day: str) -> dict:
        from lake_connection import churn_steps

        return churn_steps().score(day)

    validate_silver(DAY) >> features(DAY) >> validate_gold(DAY) >> score_and_publish(DAY)


churn_nightly_scoring()
