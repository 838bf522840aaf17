"""Where an output came from: the code commit and the Airflow run that produced it.

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
