"""The retention team's page: today's list to call from and one user's score history, as HTML.

Server-rendered with Jinja2 (already the overview page's templating; autoescaped, so an id or a value from
the database cannot inject markup): one self-contained document per view, inline styles and an inline SVG
chart, no script and no external file, so it works offline and behind any proxy. The data are the API's
own reads (`churn.scores.scorereads`), so the page, GET /scores and the CSV export show the same rows.

Sessions: a browser cannot send `X-API-Key` on a link, so the page has a login form that takes one of
`CHURN_API_KEYS` and sets a cookie holding an expiry and an HMAC-SHA256 of it under that key. Nothing
about the key is in the cookie; a key removed from the configuration ends its sessions; the clock only
ends sessions, it never decides which data are shown.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import escape

TEMPLATES = Path(__file__).with_name("templates")
SESSION_COOKIE = "churn_retention"
SESSION_SECONDS = 8 * 3600
FILTERS = ("risk_band", "plan_days", "payment_method", "auto_renew", "city", "sort")


def _signature(key: str, expiry: int) -> str:
    return hmac.new(key.encode(), f"retention-session:{expiry}".encode(), hashlib.sha256).hexdigest()


def session_cookie(key: str, now: float | None = None) -> str:
    """A session for the holder of `key`: its expiry and the expiry's HMAC under the key."""
    expiry = int((time.time() if now is None else now) + SESSION_SECONDS)
    return f"{expiry}.{_signature(key, expiry)}"


def session_valid(cookie: str | None, keys: list[str], now: float | None = None) -> bool:
    """True when the cookie was issued under one of `keys` and has not expired (every key compared)."""
    if not cookie or "." not in cookie:
        return False
    expiry_text, signature = cookie.split(".", 1)
    if not re.fullmatch(r"[0-9]{1,12}", expiry_text):  # ASCII digits only, a sane length
        return False
    if int(expiry_text) < (time.time() if now is None else now):
        return False
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(_signature(key, int(expiry_text)), signature)
    return matched


def reason_words(reason: dict[str, Any]) -> str:
    """A reason as a sentence: what the input is, the user's value, which way it pushes."""
    value = reason["value"]
    shown = "missing" if value is None else f"{value:,.6g}"
    way = "raises the risk" if reason["contribution"] > 0 else "lowers the risk"
    return f"{reason['description']}: {shown} ({way})"


def history_chart(history: list[dict[str, Any]], width: int = 560, height: int = 160) -> str:
    """The user's probability by score date as an inline SVG line (oldest left), with 0 and 1 marked."""
    points = sorted(history, key=lambda row: str(row["score_date"]))
    pad = 24
    if not points:
        return ""
    span = max(len(points) - 1, 1)

    def x(i: int) -> float:
        return pad + (width - 2 * pad) * i / span

    def y(p: float) -> float:
        return height - pad - (height - 2 * pad) * p

    line = " ".join(f"{x(i):.1f},{y(r['churn_probability']):.1f}" for i, r in enumerate(points))
    dots = "".join(
        f'<circle cx="{x(i):.1f}" cy="{y(r["churn_probability"]):.1f}" r="3">'
        f"<title>{escape(str(r['score_date']))}: {r['churn_probability']:.3f}</title></circle>"
        for i, r in enumerate(points)
    )
    return (
        f'<svg role="img" aria-label="churn probability by score date" width="{width}" height="{height}">'
        f'<line class="axis" x1="{pad}" y1="{y(0)}" x2="{width - pad}" y2="{y(0)}"/>'
        f'<line class="axis" x1="{pad}" y1="{y(1)}" x2="{width - pad}" y2="{y(1)}"/>'
        f'<text x="2" y="{y(1) + 4}">1</text><text x="2" y="{y(0) + 4}">0</text>'
        f'<text x="{pad}" y="{height - 4}">{escape(str(points[0]["score_date"]))}</text>'
        f'<text x="{width - pad}" y="{height - 4}" text-anchor="end">{escape(str(points[-1]["score_date"]))}'
        "</text>"
        f'<polyline points="{line}"/>{dots}</svg>'
    )


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]), auto_reload=False
    )
    environment.filters["reason_words"] = reason_words
    return environment


_ENVIRONMENT = _environment()


def render_list(
    *, day: Any, rows: list[dict[str, Any]], filters: dict[str, Any], next_query: str | None,
    export_query: str, bands: tuple[str, ...], user_path: Any,
) -> str:  # fmt: skip
    """The list page: filters, the rows (each with its reasons in words), next page and export links."""
    return _ENVIRONMENT.get_template("retention_list.html.j2").render(
        day=day, rows=rows, filters=filters, next_query=next_query, export_query=export_query, bands=bands,
        user_path=user_path,
    )  # fmt: skip


def render_user(*, msno: str, latest: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """A user's page: the newest score with its reasons, the history chart and table."""
    return _ENVIRONMENT.get_template("retention_user.html.j2").render(
        msno=msno, latest=latest, history=history, chart=history_chart(history)
    )


def render_login(*, error: str | None = None) -> str:
    """The login form (one of the API keys)."""
    return _ENVIRONMENT.get_template("retention_login.html.j2").render(error=error)
