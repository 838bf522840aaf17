"""### Daily Gold features

Gold features as of the interval's day (the day that ended), validated. Rebuilt only when Silver or the
feature spec changed since the last build, so reruns and backfills are cheap and idempotent.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

FEATURES = Asset(name="churn_gold_features", uri="churn://lake/gold/features")
# The day a run covers: the day before its data interval's end (a run at D+1 covers D); never the clock.
DAY = "{{ data_interval_end.subtract(days=1).strftime('%Y-%m-%d') }}"
IO_RETRIES = {"retries": 3, "retry_delay": dt.timedelta(minutes=1), "retry_exponential_backoff": True}


@dag(
    dag_id="churn_features",
    schedule=CronDataIntervalTimetable("30 1 * * *", timezone="UTC"),
    start_date=dt.datetime(2015, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["churn"],
    doc_md=__doc__,
)
def churn_features() -> None:
    @task(**IO_RETRIES)
    def build(day: str) -> dict:
        from lake_connection import churn_steps

        return churn_steps().features(day)

    @task(outlets=[FEATURES])
    def validate_gold(day: str) -> dict:
        from lake_connection import churn_steps

        return churn_steps().validate("gold", day)

    build(DAY) >> validate_gold(DAY)


churn_features()
