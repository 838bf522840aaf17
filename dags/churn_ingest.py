"""### Daily ingest: Bronze -> Silver

Ingests every daily drop (and dump file) not yet in Silver, then checks Silver as of the interval's day.
Idempotent: a rerun or a backfill ingests nothing twice (`_state.json`), so any interval may be re-run.
Emits the `churn_silver` asset.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

SILVER = Asset(name="churn_silver", uri="churn://lake/silver")
# The day a run covers: the day before its data interval's end (a run at D+1 covers D); never the clock.
DAY = "{{ data_interval_end.subtract(days=1).strftime('%Y-%m-%d') }}"
IO_RETRIES = {"retries": 3, "retry_delay": dt.timedelta(minutes=1), "retry_exponential_backoff": True}


@dag(
    dag_id="churn_ingest",
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone="UTC"),
    start_date=dt.datetime(2015, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["churn"],
    doc_md=__doc__,
)
def churn_ingest() -> None:
    @task(**IO_RETRIES)
    def ingest() -> dict:
        from lake_connection import churn_steps

        return churn_steps().ingest()

    @task(outlets=[SILVER])
    def validate_silver(day: str) -> dict:
        from lake_connection import churn_steps

        return churn_steps().validate("silver", day)

    ingest() >> validate_silver(DAY)


churn_ingest()
