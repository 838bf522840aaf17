"""### Nightly scoring

At 02:00 UTC, scores every active user as of the day that just ended (the run's data interval) with the
registry's champion and publishes the day to `churn_scores` atomically: Silver checked, the day's features
built once, that build checked, then that same build scored and swapped in. The features task hands its
build id (the features manifest's `run_id`) to `validate_gold` and `score_and_publish`; when Silver
changed after the check (a late drop ingested), scoring refuses rather than score features no one
checked: clear the whole run (all its tasks) to build, check and score the current Silver. One run at a
time; a rerun of a day replaces it; a failed run leaves the previous scores served. Emits the
`churn_scores` asset.
"""

from __future__ import annotations

from airflow.sdk import Asset, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from churn.orchestration import DAY, retries, scheduled

SCORES = Asset(name="churn_scores", uri="churn://db/churn_scores")
IO_RETRIES = retries()


@dag(
    dag_id="churn_nightly_scoring",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    **scheduled(),
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
    def validate_gold(day: str, build: dict) -> dict:
        from lake_connection import churn_steps

        return churn_steps().validate("gold", day, build_run_id=build["features_run_id"])

    @task(outlets=[SCORES], **IO_RETRIES)
    def score_and_publish(day: str, build: dict) -> dict:
        from lake_connection import churn_steps

        return churn_steps().score(day, features_run_id=build["features_run_id"])

    built = features(DAY)
    validate_silver(DAY) >> built
    validate_gold(DAY, built) >> score_and_publish(DAY, built)


churn_nightly_scoring()
