"""GET /monitoring/...: the weekly drift summary and the realised performance of matured cohorts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api.deps import EngineDep, LakeDep
from api.schemas import AUTH_RESPONSES, CohortPerformance, DriftReport, PerformanceList, Problem
from api.security import ApiKey
from churn.monitoring import monitorreads

router = APIRouter(prefix="/monitoring", tags=["monitoring"], dependencies=[ApiKey], responses=AUTH_RESPONSES)


@router.get("/drift/latest", response_model=DriftReport, responses={404: {"model": Problem}})
async def latest_drift(engine: EngineDep, lake: LakeDep) -> DriftReport:
    """The newest weekly drift summary, with the lake-relative path of its HTML report."""
    async with engine.connect() as connection:
        row = await monitorreads.latest_drift(connection)
    if row is None:
        raise HTTPException(404, "no drift report yet: the weekly drift run has not run")
    return DriftReport(**{**row, "report_uri": monitorreads.public_report_path(row["report_uri"], lake)})


@router.get("/performance", response_model=PerformanceList)
async def performance(
    engine: EngineDep, limit: Annotated[int, Query(ge=1, le=120, description="most recent cohorts")] = 12
) -> PerformanceList:
    """Realised log loss and AUC of the published scores of each matured cohort, newest first."""
    async with engine.connect() as connection:
        rows = await monitorreads.performance(connection, limit)
    return PerformanceList(cohorts=[CohortPerformance(**row) for row in rows])
