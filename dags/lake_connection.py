"""The lake's object-store credentials from an Airflow connection, through the amazon provider.

In production the MinIO/S3 credentials are an Airflow connection (`AIRFLOW_CONN_CHURN_LAKE`, type `aws`:
login/password or any credential source boto supports, `endpoint_url` in the extras for MinIO), managed
like every other secret of the deployment. Tasks that touch the lake call `use_lake_connection()` first: it
reads the connection with the provider's S3Hook and hands the credentials to the churn library as
`CHURN_S3_*` for this task's process. Without that connection the environment's `CHURN_S3_*` (or boto's
own credential chain) are used unchanged. Not a DAG file (listed in .airflowignore).
"""

from __future__ import annotations

import os

LAKE_CONN_ID = "churn_lake"


def use_lake_connection(conn_id: str = LAKE_CONN_ID) -> bool:
    """Export the connection's credentials and endpoint as CHURN_S3_*; False when it does not exist."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except Exception as error:  # AirflowNotFoundException; its module moved between Airflow 2 and 3
        if type(error).__name__ != "AirflowNotFoundException":
            raise
        return False
    hook = S3Hook(aws_conn_id=conn_id)
    credentials = hook.get_credentials()
    if credentials.token:  # the library's lake options carry a key pair only
        raise ValueError(f"connection {conn_id!r} gives temporary credentials (a session token); give the "
                         "lake a key pair, or no connection and boto's own credential chain")  # fmt: skip
    values = {
        "CHURN_S3_ACCESS_KEY_ID": credentials.access_key,
        "CHURN_S3_SECRET_ACCESS_KEY": credentials.secret_key,
        "CHURN_S3_ENDPOINT_URL": hook.conn_config.endpoint_url,
        "AWS_DEFAULT_REGION": hook.conn_config.region_name,
    }
    os.environ.update({name: value for name, value in values.items() if value})
    from churn.settings import get_settings

    get_settings.cache_clear()  # the library reads its settings once per process
    return True


def churn_steps():
    """`churn.steps` with the lake connection applied first: the one import of every task body."""
    use_lake_connection()
    from churn import steps

    return steps
