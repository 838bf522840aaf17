"""### Weekly drift and realised performance

Mondays at 03:00 UTC, for the week that just ended (the run's data interval, Monday to Sunday): compares
the week's scoring inputs and live /predict inputs with the champion's reference in an Evidently report
(`reports/drift/week=<Sunday>/` in the lake, listed under Browse > Churn reports), computes the realised
log loss and AUC of every cohort whose outcomes are known, and writes the `drift_reports` and
`model_performance` rows. `check_thresholds` fails, with the figures, when drift or degradation passes
`CHURN_DRIFT_SHARE_THRESHOLD` / `CHURN_PERFORMANCE_DEGRADATION_THRESHOLD`: a red run is the alert.
"""

from __future__ import annotations

from airflow.sdk import Asset, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from churn.orchestration import DAY, retries, scheduled

DRIFT = Asset(name="churn_drift_report", uri="churn://lake/reports/drift")
# retries also wait for a late night: the report refuses a week whose Sunday is not published yet
IO_RETRIES = retries(4, minutes=10)


@dag(
    dag_id="churn_weekly_drift",
    schedule=CronDataIntervalTimetable("0 3 * * 1", timezone="UTC"),
    **scheduled(interval_days=7),
    tags=["churn", "monitoring"],
    doc_md=__doc__,
)
def churn_weekly_drift() -> None:
    @task(outlets=[DRIFT], **IO_RETRIES)
    def drift_report(week_ending: str) -> dict:
        from lake_connection import churn_steps

        return churn_steps().drift(week_ending, require_last_night=True)

    @task
    def check_thresholds(summary: dict) -> dict:
        from lake_connection import churn_steps

        return churn_steps().check_drift(summary)

    check_thresholds(drift_report(DAY))


churn_weekly_drift()
