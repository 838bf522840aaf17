"""The operator's overview: the one page opened first each morning (Airflow UI, Browse > Churn overview).

It answers "did last night work, and is the model still good?" from what the platform already records:
the newest published score day (`score_runs`), the champion and how it validated against the generator's
oracle (the registry), the newest validation verdict of each lake stage (`summary.json` beside its Data
Docs), the drift share of recent weeks (`drift_reports`) and realised performance of matured cohorts
(`model_performance`); each item links to the report behind it. Every read is independent: a database or
registry that does not answer shows as such on its card instead of failing the page. The page is one
self-contained HTML document (inline styles and SVG, no script, no external file), so it renders offline.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from churn.lake import Lake, LakeError
from churn.monitoring.monitorreads import public_report_path
from churn.settings import Settings

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).with_name("templates")
WEEKS = 12
COHORTS = 6


@dataclass
class Overview:
    """What the page shows; a section that could not be read carries its error instead."""

    publish: dict[str, Any] | None = None
    champion: dict[str, Any] | None = None
    validations: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    performance: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def _publish_and_monitoring(settings: Settings, lake: Lake, overview: Overview) -> None:
    """The newest published day, recent drift weeks and matured cohorts, from the scores database."""
    from churn.db import engine_from_settings

    engine = engine_from_settings(settings)
    try:
        with engine.connect() as connection:
            row = connection.execute(text(
                "SELECT score_date, rows_scored, model_version, run_id, finished_at FROM score_runs "
                "WHERE status = 'published' ORDER BY score_date DESC LIMIT 1"
            )).mappings().first()  # fmt: skip
            overview.publish = dict(row) if row else None
            weeks = connection.execute(text(
                "SELECT week_ending, drift_share, alert, drifted_features, report_uri FROM drift_reports "
                "ORDER BY week_ending DESC LIMIT :n"
            ), {"n": WEEKS}).mappings()  # fmt: skip
            for week in reversed(list(weeks)):
                drifted = week["drifted_features"]
                overview.drift.append({
                    **week,
                    "drifted_features": json.loads(drifted) if isinstance(drifted, str) else drifted,
                    "report": public_report_path(week["report_uri"], lake),
                })  # fmt: skip
            cohorts = connection.execute(text(
                "SELECT cohort, users, log_loss, validation_log_loss, roc_auc, degraded, week_ending "
                "FROM model_performance ORDER BY cohort DESC LIMIT :n"
            ), {"n": COHORTS}).mappings()  # fmt: skip
            reports = {str(w["week_ending"]): w["report"] for w in overview.drift}
            overview.performance = [{**c, "report": reports.get(str(c["week_ending"]))} for c in cohorts]
    except SQLAlchemyError as error:
        log.warning("overview: scores database unreadable: %s", error)
        overview.errors["database"] = f"scores database not readable ({type(error).__name__})"
    finally:
        engine.dispose()


def _champion(settings: Settings, overview: Overview) -> None:
    """The champion's version and its validation figures, from the registry."""
    from churn.model.registry import list_versions

    try:
        versions = list_versions(settings)
    except Exception as error:
        log.warning("overview: registry unreadable: %s", error)
        overview.errors["registry"] = f"model registry not readable ({type(error).__name__})"
        return
    champion = next((v for v in versions if "champion" in v["aliases"]), None)
    if champion:
        loss, oracle = champion.get("val_log_loss"), champion.get("oracle_log_loss")
        ratio = loss / oracle if loss is not None and oracle else None
        overview.champion = {**champion, "ratio": ratio, "versions": len(versions)}


def _newest(folders: list[str]) -> str:
    """The newest report folder: the latest day among those named by a day (a validation of a daily run),
    else the last name."""

    def key(folder: str) -> tuple[bool, str]:
        name = folder.rsplit("/", 1)[-1]
        try:
            dt.date.fromisoformat(name)
        except ValueError:
            return False, name
        return True, name

    return max(folders, key=key)


def _validations(lake: Lake, overview: Overview) -> None:
    """The newest validation summary of each stage, with the path of its Data Docs."""
    try:
        summaries = lake.glob("reports/validation/*/*/summary.json")
        by_stage: dict[str, list[str]] = {}
        for path in summaries:
            folder = path.rsplit("/", 1)[0]
            by_stage.setdefault(folder.split("/")[2], []).append(folder)
        for stage, folders in sorted(by_stage.items()):
            folder = _newest(folders)
            summary = lake.read_json(f"{folder}/summary.json")
            overview.validations.append({
                "stage": stage,
                "label": folder.rsplit("/", 1)[-1],
                "passed": bool(summary.get("passed")),
                "evaluated": summary.get("evaluated"),
                "failures": len(summary.get("failures") or []),
                "report": f"{folder}/index.html",
            })  # fmt: skip
    except (LakeError, OSError, ValueError) as error:
        log.warning("overview: validation summaries unreadable: %s", error)
        overview.errors["lake"] = f"lake not readable ({type(error).__name__})"


def collect(settings: Settings, lake: Lake) -> Overview:
    """Every section of the page, each read on its own."""
    overview = Overview()
    _publish_and_monitoring(settings, lake, overview)
    _champion(settings, overview)
    _validations(lake, overview)
    return overview


def sparkline(values: list[float], width: int = 240, height: int = 48, limit: float | None = None) -> str:
    """An inline SVG polyline of the values (0..1 scale), with the alert threshold as a dashed line."""
    if not values:
        return ""
    step = width / max(len(values) - 1, 1)

    def y(value: float) -> float:
        return round(height - 4 - (height - 8) * min(max(value, 0.0), 1.0), 1)

    points = " ".join(f"{round(i * step, 1)},{y(v)}" for i, v in enumerate(values))
    threshold = (
        f'<line x1="0" x2="{width}" y1="{y(limit)}" y2="{y(limit)}" class="limit"/>'
        if limit is not None
        else ""
    )
    dots = "".join(f'<circle cx="{round(i * step, 1)}" cy="{y(v)}" r="2.5"/>' for i, v in enumerate(values))
    return (f'<svg role="img" aria-label="drift share of the last {len(values)} weeks" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}">{threshold}<polyline points="{points}"/>'
            f"{dots}</svg>")  # fmt: skip


def render(overview: Overview, *, reports_prefix: str, api_url: str, drift_limit: float,
           today: dt.date | None = None) -> str:  # fmt: skip
    """The page's HTML: links to reports start with `reports_prefix` (where the plugin serves them)."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]), trim_blocks=True
    )
    chart = sparkline([w["drift_share"] for w in overview.drift], limit=drift_limit)
    return environment.get_template("overview.html.j2").render(
        o=overview, prefix=reports_prefix.rstrip("/"), api=api_url.rstrip("/"), chart=chart,
        drift_limit=drift_limit, today=today,
    )  # fmt: skip
