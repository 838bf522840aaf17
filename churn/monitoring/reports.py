"""The HTML reports in the lake (validation Data Docs, drift reports), listed and read for viewers.

Only regular files under `reports/` are served, after normalisation and (on a local lake) with symlinks
resolved, so neither a crafted path nor a link planted under `reports/` can read the rest of the lake
(credentials never live there, but Silver and the prediction log do) or of the server's disk.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from churn.errors import ChurnError
from churn.lake import Lake

ROOT = "reports"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json", ".css": "text/css",
                 ".js": "text/javascript", ".png": "image/png", ".svg": "image/svg+xml"}  # fmt: skip


class ReportNotFoundError(ChurnError):
    """No such report file (or a path outside the reports folder)."""


@dataclass(frozen=True)
class Report:
    """One report: its kind (validation, drift), what it covers and the path of its index page."""

    kind: str
    label: str
    path: str


def list_reports(lake: Lake) -> list[Report]:
    """Every report index page under reports/, newest label first within each kind."""
    found = []
    for page in lake.glob(f"{ROOT}/**/index.html") + lake.glob(f"{ROOT}/**/*report*.html"):
        relative = page[page.index(f"{ROOT}/") :]
        parts = relative.split("/")
        kind = parts[1] if len(parts) > 2 else "other"
        label = "/".join(parts[2:-1]) or parts[-1]
        found.append(Report(kind, label, relative))
    unique = {r.path: r for r in found}.values()
    return sorted(unique, key=lambda r: (r.kind, r.label), reverse=True)


def read_report_file(lake: Lake, path: str) -> tuple[bytes, str]:
    """A regular file under reports/ and its content type; ReportNotFoundError for anything else (a
    folder, a link leading out of reports/, a path outside it)."""
    clean = posixpath.normpath("/" + path).lstrip("/")
    if not clean.startswith(f"{ROOT}/") or not lake.is_file_within(clean, ROOT):
        raise ReportNotFoundError(f"no report file {path!r}")
    extension = posixpath.splitext(clean)[1].lower()
    return lake.read_bytes(clean), CONTENT_TYPES.get(extension, "application/octet-stream")
