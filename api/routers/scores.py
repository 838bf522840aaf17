"""GET /scores...: the published nightly scores (read-only)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, HTTPException, Path, Query
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.concurrency import run_in_threadpool

from api.deps import ChampionDep, EngineDep, LakeDep, NewestDateDep
from api.metrics import SCORE_LOOKUPS
from api.schemas import (
    AUTH_RESPONSES,
    MSNO_PATTERN,
    RISK_BAND_PATTERN,
    Problem,
    Score,
    ScoreHistory,
    ScorePage,
    invalid,
)
from api.security import ApiKey
from churn.lake import Lake
from churn.model.serving import ChampionHolder, ModelUnavailableError
from churn.scores import live, scorereads

CONTRACT_HEADER = "Churn-Scores-Contract"
log = logging.getLogger("churn.api")

router = APIRouter(prefix="/scores", tags=["scores"], dependencies=[ApiKey], responses=AUTH_RESPONSES)
MsnoPath = Annotated[str, Path(pattern=MSNO_PATTERN, description="KKBox user id (URL-encode `/` as %2F)")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}


@router.get(
    "",
    response_model=ScorePage,
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON page, or the whole day as CSV"},
        410: {"model": Problem, "description": "The cursor's run was replaced by a re-publish of its day"},
    },
)
async def list_scores(
    engine: EngineDep,
    response: Response,
    score_date: Annotated[dt.date | None, Query(description="Default: the newest published date")] = None,
    min_probability: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    max_probability: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    risk_band: Annotated[str | None, Query(pattern=RISK_BAND_PATTERN)] = None,
    plan_days: Annotated[int | None, Query(ge=0, le=10_000)] = None,
    payment_method: Annotated[int | None, Query(ge=0, le=10_000)] = None,
    auto_renew: Annotated[bool | None, Query()] = None,
    city: Annotated[int | None, Query(ge=0, le=10_000)] = None,
    min_revenue_at_risk: Annotated[float | None, Query(ge=0.0, le=1e9)] = None,
    sort: Annotated[
        Literal["probability", "revenue_at_risk"], Query(description="order: highest first, then msno")
    ] = "probability",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page")
    ] = None,
    format: Annotated[Literal["json", "csv"] | None, Query(description="csv: stream the whole day")] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> ScorePage | StreamingResponse:
    """One day's scores, highest probability (or revenue at risk) first, keyset-paginated; `format=csv` (or
    `Accept: text/csv`) streams every matching row of the day in that order instead. A cursor reads the
    run of its first page; after a re-publish of the day it is refused with 410. The fields and CSV
    columns are those of the contract named in the `Churn-Scores-Contract` header."""
    if min_probability is not None and max_probability is not None and min_probability > max_probability:
        message = f"min_probability {min_probability} is above max_probability {max_probability}"
        raise invalid(("query", "min_probability"), message)
    filters = scorereads.PageFilter(
        score_date, min_probability, max_probability, risk_band, plan_days, payment_method, auto_renew,
        city, min_revenue_at_risk, sort,
    )  # fmt: skip
    if format == "csv" or (format is None and accept is not None and "text/csv" in accept):
        return await csv_export(engine, filters)
    try:
        async with engine.connect() as connection:
            day, rows, next_cursor = await scorereads.page(connection, filters, limit, cursor)
    except scorereads.CursorExpiredError as error:
        raise HTTPException(410, str(error)) from None
    response.headers[CONTRACT_HEADER] = scorereads.CONTRACT_VERSION
    return ScorePage(score_date=day, items=[Score(**row) for row in rows], next_cursor=next_cursor)


async def csv_export(engine: AsyncEngine, filters: scorereads.PageFilter) -> StreamingResponse:
    """A day's filtered scores streamed as CSV (`scorereads.stream_csv`): the API's export and the
    retention page's are this one response."""
    async with engine.connect() as connection:
        day = filters.score_date or await scorereads.newest_published_date(connection)
    if day is None:
        raise HTTPException(404, "no published scores yet")
    return StreamingResponse(
        scorereads.stream_csv(engine, filters, day),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="churn_scores_{day}.csv"',
                 CONTRACT_HEADER: scorereads.CONTRACT_VERSION, "Cache-Control": "no-store"},
    )  # fmt: skip


@router.get("/{msno:path}/history", response_model=ScoreHistory, responses=NOT_FOUND)
async def score_history(msno: MsnoPath, engine: EngineDep, response: Response) -> ScoreHistory:
    """Every published score of a user, newest date first (reasons as stored)."""
    async with engine.connect() as connection:
        rows = await scorereads.history(connection, msno)
    if not rows:
        raise HTTPException(404, "no published score for this msno")
    response.headers[CONTRACT_HEADER] = scorereads.CONTRACT_VERSION
    return ScoreHistory(msno=msno, scores=[Score(**row) for row in rows])


@router.get("/{msno:path}", response_model=Score, responses=NOT_FOUND)
async def get_score(
    msno: MsnoPath,
    engine: EngineDep,
    newest: NewestDateDep,
    holder: ChampionDep,
    lake: LakeDep,
    reasons: Annotated[
        Literal["stored", "compute"],
        Query(
            description="compute: for a user outside the stored bands, compute the reasons from that "
            "date's Gold features (a lake read and the model: slower than a lookup)"
        ),
    ] = "stored",
) -> Response:
    """The newest published score of a user, with its reasons as stored by the nightly run; with
    `reasons=compute`, for a user outside the bands it explains, computed from that date's Gold features
    (`reasons_source` "computed"; null when they cannot be: the served champion is not the version that
    scored it, or that date's features are gone or no longer give the stored probability).

    The hot path: the row (already the Score fields, typed by the database) is serialised directly
    instead of being validated again into the response model, which would cost more than the query.
    """
    async with engine.connect() as connection:
        row = await scorereads.latest_score(connection, msno, newest)
    SCORE_LOOKUPS.labels("hit" if row else "miss").inc()
    if row is None:
        raise HTTPException(404, "no published score for this msno")
    if row["reasons"] is None and reasons == "compute":
        await computed_reasons(row, msno, holder, lake)
    row["score_date"] = str(row["score_date"])
    return Response(orjson.dumps(row), media_type="application/json",
                    headers={CONTRACT_HEADER: scorereads.CONTRACT_VERSION})  # fmt: skip


async def computed_reasons(row: dict[str, Any], msno: str, holder: ChampionHolder, lake: Lake) -> None:
    """Fill a score row's missing reasons from its date's Gold features (in the thread pool: CPU-bound);
    left null when they cannot be computed (no champion served, another version, Gold gone or rebuilt, the
    lake away: a lookup never fails for want of reasons)."""
    try:
        loaded = holder.current()
    except ModelUnavailableError:
        return
    try:
        reasons = await run_in_threadpool(live.reasons_from_gold, lake, loaded, msno, row)
    except Exception as error:  # the lake or its files: the score is still the answer
        log.warning("reasons of a score not computed: %s: %s", type(error).__name__, error)
        return
    if reasons is not None:
        row["reasons"] = [dataclasses.asdict(reason) for reason in reasons]
        row["reasons_source"] = "computed"
