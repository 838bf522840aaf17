"""### Gold features of a date, by hand

Not scheduled: the nightly scoring run builds, checks and scores each day's features itself. Trigger this
DAG to build (or rebuild) the Gold features as of one date and check that build, e.g. for a backfill or
for features a model is to be trained or compared on: the form's `as_of` (one run per date; for a range,
one trigger per date). Rebuilt only when Silver or the feature spec changed since the last build, so
reruns are cheap and idempotent. Emits the `churn_gold_features` asset.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param, dag, task

FEATURES = Asset(name="churn_gold_features", uri="churn://lake/gold/features")
IO_RETRIES = {"retries": 3, "retry_delay": dt.timedelta(minutes=1), "retry_exponential_backoff": True}


@dag(
    dag_id="churn_features",
    schedule=None,
    start_date=dt.datetime(2015, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["churn"],
    doc_md=__doc__,
    params={
        "as_of": Param(
            type="string",
            format="date",
            pattern=r"^\d{4}-\d{2}-\d{2}$",
            description="The date the features are as of (YYYY-MM-DD): only rows dated on or before it",
        ),
    },
)
def churn_features() -> None:
    @task(**IO_RETRIES)
    def build(params: dict | None = None) -> dict:
        from lake_connection import churn_steps

        return churn_steps().features((params or {})["as_of"])

    @task(outlets=[FEATURES])
    def validate_gold(built: dict) -> dict:
        from lake_connection import churn_steps

        return churn_steps().validate("gold", built["as_of"], build_run_id=built["features_run_id"])

    validate_gold(build())


churn_features()
