"""/retention: the retention team's page (HTML) over the same reads and export as GET /scores.

Access: in anonymous mode open; otherwise an `X-API-Key` header or a session cookie from the login form
(`churn.scores.retention`); a browser without either is sent to the form.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import ChampionDep, EngineDep, LakeDep, NewestDateDep, SettingsDep
from api.routers.scores import computed_reasons, csv_export
from api.schemas import MSNO_PATTERN, RISK_BAND_PATTERN
from api.security import access_mode, key_valid
from churn.scores import retention, scorereads
from churn.scores.bands import band_names

router = APIRouter(prefix="/retention", tags=["retention"], include_in_schema=False)
LOGIN_PATH = "/retention/login"
# No caching of pages holding user data; the page needs nothing from anywhere else.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


async def require_session(request: Request, settings: SettingsDep) -> None:
    """Anonymous mode, a valid X-API-Key or a valid session cookie; else 303 to the login form."""
    if access_mode(settings) == "anonymous":
        return
    key = request.headers.get("x-api-key")
    if key and key_valid(key, settings.api_keys):
        return
    if retention.session_valid(request.cookies.get(retention.SESSION_COOKIE), settings.api_keys):
        return
    raise HTTPException(status.HTTP_303_SEE_OTHER, "sign in first", headers={"Location": LOGIN_PATH})


Session = Depends(require_session)


@router.get("/login", response_class=HTMLResponse)
async def login_form() -> HTMLResponse:
    """The sign-in form."""
    return HTMLResponse(retention.render_login(), headers=HEADERS)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, settings: SettingsDep) -> Response:
    """Check the key; on success set the session cookie (HttpOnly, SameSite=Strict) and go to the list."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("api_key") or [""])[0]
    if access_mode(settings) == "anonymous":
        return RedirectResponse("/retention/", status.HTTP_303_SEE_OTHER)
    if not key or not key_valid(key, settings.api_keys):
        return HTMLResponse(retention.render_login(error="That is not one of the API keys."), status_code=403,
                            headers=HEADERS)  # fmt: skip
    response = RedirectResponse("/retention/", status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        retention.SESSION_COOKIE, retention.session_cookie(key), max_age=retention.SESSION_SECONDS,
        httponly=True, samesite="strict", secure=settings.api_public_url.startswith("https://"),
        path="/retention",
    )  # fmt: skip
    return response


async def page_filter(
    score_date: Annotated[dt.date | None, Query()] = None,
    risk_band: Annotated[str | None, Query(pattern=f"({RISK_BAND_PATTERN[1:-1]})?")] = None,
    plan_days: Annotated[str | None, Query(pattern=r"^\d{0,5}$")] = None,
    payment_method: Annotated[str | None, Query(pattern=r"^\d{0,5}$")] = None,
    auto_renew: Annotated[Literal["true", "false", ""] | None, Query()] = None,
    city: Annotated[str | None, Query(pattern=r"^\d{0,5}$")] = None,
    sort: Annotated[Literal["probability", "revenue_at_risk"], Query()] = "probability",
) -> scorereads.PageFilter:
    """The page's filter form as the reads' filter (one parsing for the list and its export): an empty
    field of the form is no filter."""

    def number(value: str | None) -> int | None:
        return int(value) if value else None

    return scorereads.PageFilter(
        score_date=score_date, risk_band=risk_band or None, plan_days=number(plan_days),
        payment_method=number(payment_method), auto_renew=(auto_renew == "true") if auto_renew else None,
        city=number(city), sort=sort,
    )  # fmt: skip


Filters = Annotated[scorereads.PageFilter, Depends(page_filter)]


def _query(filters: scorereads.PageFilter, **extra: Any) -> str:
    """The page's filters as a query string (empty ones left out)."""
    values = {name: getattr(filters, name) for name in retention.FILTERS} | {"score_date": filters.score_date}
    values |= extra
    shown = {
        k: (str(v).lower() if isinstance(v, bool) else v) for k, v in values.items() if v not in (None, "")
    }
    return urlencode(shown)


@router.get("/", response_class=HTMLResponse, dependencies=[Session])
async def list_page(
    engine: EngineDep,
    settings: SettingsDep,
    filters: Filters,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Today's list (the newest published day), filtered, 50 rows a page, highest first."""
    try:
        async with engine.connect() as connection:
            day, rows, next_cursor = await scorereads.page(connection, filters, 50, cursor)
    except scorereads.CursorExpiredError:
        return RedirectResponse("?" + _query(filters), status.HTTP_303_SEE_OTHER)  # the day was re-published
    html = retention.render_list(
        day=day, rows=rows, filters=dataclasses.asdict(filters),
        next_query=_query(filters, cursor=next_cursor) if next_cursor else None,
        export_query=_query(dataclasses.replace(filters, score_date=filters.score_date or day)),
        bands=band_names(settings.risk_band_thresholds), user_path=lambda msno: quote(msno, safe=""),
    )  # fmt: skip
    return HTMLResponse(html, headers=HEADERS)


@router.get("/export", dependencies=[Session])
async def export(engine: EngineDep, filters: Filters) -> Response:
    """The current filter's rows as CSV: the very export of GET /scores?format=csv."""
    return await csv_export(engine, filters)


@router.get("/users/{msno:path}", response_class=HTMLResponse, dependencies=[Session])
async def user_page(
    msno: Annotated[str, Path(pattern=MSNO_PATTERN)],
    engine: EngineDep,
    newest: NewestDateDep,
    holder: ChampionDep,
    lake: LakeDep,
) -> HTMLResponse:
    """One user: the newest score with its reasons (stored, or computed from that day's Gold features),
    the history chart and table."""
    async with engine.connect() as connection:
        latest = await scorereads.latest_score(connection, msno, newest)
        history = await scorereads.history(connection, msno)
    if latest is None:
        raise HTTPException(404, "no published score for this msno")
    if latest["reasons"] is None:
        await computed_reasons(latest, msno, holder, lake)
    return HTMLResponse(retention.render_user(msno=msno, latest=latest, history=history), headers=HEADERS)
