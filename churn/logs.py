"""Logging: one line per event, carrying the run identifiers, and progress of long work.

Every line of a run says which step and run it belongs to (`step=ingest run=ingest-20170401-ab12`), so
the lines of concurrent Airflow tasks or API workers can be told apart and grepped. Long work counts what
it has done in a `Progress`: a tqdm bar on a terminal; elsewhere (Airflow task logs, CI) a log line at most
every 30 s with the rate so far and the time left, so a slow night can be told from a stuck one.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

_step: ContextVar[str] = ContextVar("churn_step", default="-")
_run_id: ContextVar[str] = ContextVar("churn_run_id", default="-")
T = TypeVar("T")
log = logging.getLogger("churn.progress")

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


def _count(value: float) -> str:
    """A rate in the few digits that tell it: 0.4, 950, 412K, 1.2M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K"), (1.0, "")):
        if value >= scale:
            return f"{value / scale:.{1 if value < 10 * scale else 0}f}{suffix}"
    return f"{value:.1f}"


def _duration(seconds: float) -> str:
    """Seconds as a reader wants them: "14 s", "12 min", "2.5 h"."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Counts the units done (rows by default) of one piece of long work, so that its speed is visible
    where it runs: a tqdm bar when stderr is a terminal, else a line on the `churn` logger at INFO at most
    every `interval_seconds` ("ingest user_logs.csv: 12,345,678 of 30,000,000 rows (41%), 1.2M rows/s,
    eta 14 s"; the rate is over the whole run so far), and one final line at `close`.

    Work counted in other units (blocks, buckets) may count its rows alongside (`advance(1, rows=n)`):
    rows/s is the figure comparable across stages. `advance` may be called from any thread.
    `clock` and `terminal` are for tests (a fake clock; no terminal detection)."""

    def __init__(
        self,
        desc: str,
        total: int | None = None,
        unit: str = "rows",
        interval_seconds: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        terminal: bool | None = None,
    ) -> None:
        self.desc, self.total, self.unit, self.interval_seconds = desc, total, unit, interval_seconds
        self.done = 0
        self.rows = 0  # rows counted alongside other units (0 when the unit is rows)
        self._clock = clock
        self._started = self._logged = clock()
        self._lock = threading.Lock()
        self._closed = False
        self._bar: Any = None
        if sys.stderr.isatty() if terminal is None else terminal:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=f" {unit}", unit_scale=True, leave=False)

    def advance(self, n: int = 1, *, rows: int = 0) -> None:
        """Count `n` more units done (and `rows` more rows, when the unit is not rows); log the state
        when `interval_seconds` have passed since the last line."""
        with self._lock:
            self.done += n
            self.rows += rows
            if self._bar is not None:
                self._bar.update(n)
                if rows:
                    self._bar.set_postfix_str(f"{self.rows:,} rows", refresh=False)
                return
            now = self._clock()
            if now - self._logged >= self.interval_seconds:
                self._logged = now
                log.info("%s", self.state(now))

    def state(self, now: float | None = None, *, final: bool = False) -> str:
        """One line: what is done (of what total), the rate so far and, while running, the share done and
        the time left when the total is known; `final` gives the seconds taken instead."""
        elapsed = (self._clock() if now is None else now) - self._started

        def per_second(count: int) -> str:
            return _count(count / elapsed) if elapsed > 0 else "-"

        text = f"{self.desc}: {self.done:,}{f' of {self.total:,}' if self.total else ''} {self.unit}"
        if final:
            text += f" in {elapsed:.1f} s, {per_second(self.done)} {self.unit}/s"
        else:
            if self.total:
                text += f" ({min(self.done / self.total, 1.0):.0%})"
            text += f", {per_second(self.done)} {self.unit}/s"
            if self.total and self.done and elapsed > 0:
                text += f", eta {_duration(max(self.total - self.done, 0) * elapsed / self.done)}"
        if self.rows:
            text += f"; {self.rows:,} rows, {per_second(self.rows)} rows/s"
        return text

    def close(self, *, failed: bool = False) -> None:
        """End the work: close the bar and log one final line (units done, seconds, units/s); `failed`
        says it stopped on an error. A second call does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._bar is not None:
                self._bar.close()
            log.info("%s%s", self.state(final=True), ", stopped by an error" if failed else "")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: object, trace: object) -> None:
        """Closed at the end of a `with` block; its final line says when an error stopped it."""
        self.close(failed=kind is not None and issubclass(kind, Exception))


def progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    interval_seconds: float = 30.0,
) -> Iterator[T]:
    """The items, counted in a `Progress` as they are taken (a bar on a terminal, log lines elsewhere)."""
    with Progress(desc or "progress", total, unit, interval_seconds) as counter:
        for item in items:
            yield item
            counter.advance()
