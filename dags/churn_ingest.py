"""### Daily ingest: Bronze -> Silver

Ingests every daily drop (and dump file) not yet in Silver, then checks Silver as of the interval's day.
Idempotent: a rerun or a backfill ingests nothing twice (`_state.json`), so any interval may be re-run.
Emits the `churn_silver` asset.
"""

from __future__ import annotations

from airflow.sdk import Asset, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from churn.orchestration import DAY, retries, scheduled

SILVER = Asset(name="churn_silver", uri="churn://lake/silver")
IO_RETRIES = retries()


@dag(
    dag_id="churn_ingest",
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone="UTC"),
    **scheduled(),
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
