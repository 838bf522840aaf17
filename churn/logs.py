"""Logging: one line per event, carrying the run identifiers, and progress bars only on a terminal.

Every line of a run says which step and run it belongs to (`step=ingest run=ingest-20170401-ab12`), so
the lines of concurrent Airflow tasks or API workers can be told apart and grepped.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

_step: ContextVar[str] = ContextVar("churn_step", default="-")
_run_id: ContextVar[str] = ContextVar("churn_run_id", default="-")
T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s step=%(step)s run=%(run_id)s %(message)s"


class _RunContextFilter(logging.Filter):
    """Stamp the current step and run id on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.step = _step.get()
        record.run_id = _run_id.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    """Send churn's log lines to stderr in the one-line format (idempotent)."""
    root = logging.getLogger("churn")
    root.setLevel(level)
    if not any(getattr(h, "_churn", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S%z"))
        handler.addFilter(_RunContextFilter())
        handler._churn = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False


def new_run_id(step: str, label: str = "") -> str:
    """A readable, unique run id: `<step>-<label>-<8 hex>`."""
    parts = [step, label.replace("-", ""), uuid.uuid4().hex[:8]]
    return "-".join(p for p in parts if p)


@contextmanager
def run_context(step: str, run_id: str) -> Iterator[str]:
    """Within the block, every log line carries this step and run id."""
    step_token, run_token = _step.set(step), _run_id.set(run_id)
    try:
        yield run_id
    finally:
        _step.reset(step_token)
        _run_id.reset(run_token)


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterable[T]:
    """A tqdm progress bar when stderr is a terminal; the plain iterable in Airflow logs and CI."""
    if not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc=desc, unit="it", leave=False)
