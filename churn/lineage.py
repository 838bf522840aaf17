"""Where an output came from: the code commit, the DVC data version and the Airflow run that produced it.

Airflow exports `AIRFLOW_CTX_DAG_ID` / `AIRFLOW_CTX_DAG_RUN_ID` into a task's environment; outside
Airflow they are empty.
"""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path


@cache
def git_commit() -> str:
    """The commit of the running code ("unknown" outside a git checkout, e.g. in an image)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def airflow_ids() -> tuple[str, str]:
    """(dag id, dag run id) when running inside an Airflow task, else empty strings."""
    return os.environ.get("AIRFLOW_CTX_DAG_ID", ""), os.environ.get("AIRFLOW_CTX_DAG_RUN_ID", "")


DVC_LOCK = Path("dvc.lock")
DVC_DATA_STAGE = "ingest"


def dvc_data_version(lock: Path = DVC_LOCK) -> str:
    """The md5 DVC recorded for the Silver output of the `ingest` stage, when running as a stage of
    `dvc repro` (DVC sets DVC_STAGE); empty otherwise: outside DVC a dvc.lock in the working folder may
    describe other data. Ties an MLflow run to the exact data version `dvc checkout` restores."""
    import yaml

    if not os.environ.get("DVC_STAGE") or not lock.is_file():
        return ""
    stage = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).get(DVC_DATA_STAGE, {})
    return ",".join(f"{out['path']}:{out['md5']}" for out in stage.get("outs", []) if "md5" in out)
