"""Read queries over the monitoring tables (`drift_reports`, `model_performance`) for the API.

SQLite keeps the arrays as JSON text; they are decoded here so callers see the same shapes on both.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from churn.lake import Lake, LakeError
from churn.monitoring.monitortables import DRIFT_FIELDS


def _arrays(row: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        if isinstance(row[name], str):
            row[name] = json.loads(row[name])
    return row


async def latest_drift(connection: AsyncConnection) -> dict[str, Any] | None:
    """The newest week's drift summary (None before the first weekly run)."""
    row = (await connection.execute(
        text(f"SELECT {DRIFT_FIELDS} FROM drift_reports ORDER BY week_ending DESC LIMIT 1")
    )).mappings().first()  # fmt: skip
    return None if row is None else _arrays(dict(row), "score_dates", "drifted_features")


def public_report_path(uri: str, lake: Lake) -> str | None:
    """A report's path relative to the lake (`reports/drift/week=.../index.html`): what API answers
    show instead of the stored URI, which names a server folder or a bucket. None when it lies elsewhere
    (a lake that has moved)."""
    try:
        return lake.relative(uri)
    except LakeError:
        return None


async def performance(connection: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """The realised performance of matured cohorts, newest cohort first."""
    rows = await connection.execute(
        text("SELECT * FROM model_performance ORDER BY cohort DESC LIMIT :limit"), {"limit": limit}
    )
    return [dict(r) for r in rows.mappings()]
