"""Airflow's REST API (v2) as the demo and the tests drive the real scheduler: log in, unpause, trigger a
run for an explicit day, wait for its terminal state, read a failed task's log.

A run is triggered exactly as the scheduler would have created it for that day: logical date = the data
interval's start, interval from the DAG's cron schedule (read from the API), so the run's tasks see the
same `data_interval_end` (the DAGs' day is the day before it) and stay inside a bounded schedule window.
A DAG without a schedule (training) is triggered with a null logical date and its Params as `conf`, as
the UI's trigger form does.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import httpx

from churn.errors import ChurnError

TERMINAL = {"success", "failed"}


class AirflowApiError(ChurnError):
    """The API refused a call or a run did not succeed; the message says which and why."""


@dataclass(frozen=True)
class Interval:
    """The data interval of the scheduled run covering a day."""

    start: dt.datetime
    end: dt.datetime


def interval_covering(cron: str, day: dt.date) -> Interval:
    """The interval of the scheduled run of `cron` (`M H * * *` daily or `M H * * D` weekly, the forms the
    churn DAGs use) that covers `day`: it ends at H:M the day after `day`, which for a weekly schedule must
    be its weekday (a Monday run covers the week to Sunday)."""
    fields = cron.split()
    if len(fields) != 5 or fields[2:4] != ["*", "*"] or not (fields[0].isdigit() and fields[1].isdigit()):
        raise AirflowApiError(f"schedule {cron!r}: only 'M H * * *' and 'M H * * D' are supported")
    end = dt.datetime.combine(
        day + dt.timedelta(days=1), dt.time(int(fields[1]), int(fields[0])), tzinfo=dt.UTC
    )
    if fields[4] == "*":
        return Interval(end - dt.timedelta(days=1), end)
    weekday = int(fields[4]) % 7  # cron: 0 and 7 are Sunday
    if end.isoweekday() % 7 != weekday:
        raise AirflowApiError(f"schedule {cron!r} runs on weekday {weekday}: no run covers up to {day} "
                              f"(a weekly run covers the 7 days before its run day)")  # fmt: skip
    return Interval(end - dt.timedelta(days=7), end)


class AirflowClient:
    """A logged-in client of one Airflow api-server."""

    def __init__(self, url: str, user: str, password: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout)
        try:
            token = self.http.post("/auth/token", json={"username": user, "password": password})
        except httpx.TransportError as error:
            raise AirflowApiError(
                f"no Airflow api-server answers at {self.url} ({error}); start it with `make airflow`"
            ) from None
        if token.status_code not in (200, 201):
            raise AirflowApiError(
                f"login as {user} at {self.url} refused: HTTP {token.status_code} {token.text[:200]}"
            )
        self.http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"/api/v2{path}", **kwargs)
        if response.status_code >= 400:
            raise AirflowApiError(f"{method} {path}: HTTP {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """The DAG's details once the dag-processor has parsed it (a fresh install parses in seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.http.get(f"/api/v2/dags/{dag_id}/details")
            if response.status_code == 200:
                return response.json()
            if time.monotonic() > deadline:
                raise AirflowApiError(f"DAG {dag_id} not parsed within {timeout:.0f} s (import errors: "
                                      f"{self.import_errors() or 'none'})")  # fmt: skip
            time.sleep(1)

    def import_errors(self) -> list[str]:
        """The DAG files that failed to parse, with their errors' last lines."""
        errors = self._call("GET", "/importErrors")["import_errors"]
        return [f"{e['filename']}: {e['stack_trace'].strip().splitlines()[-1]}" for e in errors]

    def dags(self) -> list[dict[str, Any]]:
        """Every parsed DAG (id, paused, schedule), as the UI's DAG list shows them."""
        return self._call("GET", "/dags", params={"limit": 100})["dags"]

    def unpause(self, dag_id: str) -> None:
        """Unpause, as the UI's toggle does (DAGs are paused at creation)."""
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, day: dt.date | None = None, conf: dict[str, Any] | None = None) -> str:
        """Start a run: for `day` with the interval the scheduler would give it, or (no day) with a null
        logical date as the UI's form sends for a manual DAG; returns the run id. A day that already has
        a run is rerun as an operator reruns it, by clearing that run (its id and history stay; a second
        run of the same interval would be refused by its run id)."""
        body: dict[str, Any] = {"conf": conf or {}, "logical_date": None}
        if day is not None:
            cron = self.wait_for_dag(dag_id).get("timetable_summary") or ""
            interval = interval_covering(cron, day)
            start, end = interval.start.isoformat(), interval.end.isoformat()
            existing = self.run_for(dag_id, interval.start)
            if existing is not None:
                self.clear(dag_id, existing)
                return existing
            body |= {
                "logical_date": start,
                "data_interval_start": start,
                "data_interval_end": end,
                "run_after": end,
            }
        return self._call("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def run_for(self, dag_id: str, logical_date: dt.datetime) -> str | None:
        """The id of the DAG's run with this logical date, if there is one."""
        stamp = logical_date.isoformat()
        window = {"logical_date_gte": stamp, "logical_date_lte": stamp}
        found = self._call("GET", f"/dags/{dag_id}/dagRuns", params=window)["dag_runs"]
        return found[0]["dag_run_id"] if found else None

    def clear(self, dag_id: str, run_id: str) -> None:
        """Clear every task of a run, as the UI's "Clear" does: the scheduler runs it again."""
        self._call("POST", f"/dags/{dag_id}/dagRuns/{run_id}/clear", json={"dry_run": False})

    def wait(self, dag_id: str, run_id: str, timeout: float = 1800.0) -> str:
        """The run's terminal state (success or failed), polling every second."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in TERMINAL:
                return state
            time.sleep(1)
        raise AirflowApiError(f"{dag_id} run {run_id} not finished within {timeout:.0f} s")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's runs, oldest first."""
        return self._call("GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "run_after", "limit": 100})[
            "dag_runs"
        ]

    def asset_events(self, name: str) -> list[dict[str, Any]]:
        """The events of the asset called `name` (one per publish of the task whose outlet it is)."""
        assets = self._call("GET", "/assets", params={"name_pattern": name})["assets"]
        found = [a for a in assets if a["name"] == name]
        if not found:
            return []
        return self._call("GET", "/assets/events", params={"asset_id": found[0]["id"], "limit": 100})[
            "asset_events"
        ]

    def history(self, dag_ids: list[str]) -> list[dict[str, Any]]:
        """Every run of the DAGs as the UI's run list shows it: DAG, run id, type, logical date, state,
        start and end (what `make demo` leaves for the operator to look at)."""
        fields = ("dag_id", "dag_run_id", "run_type", "logical_date", "state", "start_date", "end_date")
        return [{key: run.get(key) for key in fields} for dag_id in dag_ids for run in self.runs(dag_id)]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def failure_logs(self, dag_id: str, run_id: str, lines: int = 40) -> str:
        """The last lines of every failed task's log of the run (what the demo prints on failure)."""
        parts = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] != "failed":
                continue
            task = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}"
            path = f"{task}/logs/{max(ti['try_number'], 1)}"
            entries = self._call("GET", path, params={"full_content": "true"})["content"]
            text = [
                f"{e.get('level', '')} {e.get('event', '')}" if isinstance(e, dict) else str(e)
                for e in entries
            ]
            parts.append(f"--- {ti['task_id']} (try {ti['try_number']}):\n" + "\n".join(text[-lines:]))
        return "\n".join(parts) or "(no failed task logs)"

    def run(self, dag_id: str, day: dt.date | None = None, conf: dict[str, Any] | None = None,
            timeout: float = 1800.0) -> str:  # fmt: skip
        """Unpause, trigger and wait; raises with the failed tasks' logs when the run fails."""
        self.wait_for_dag(dag_id)
        self.unpause(dag_id)
        run_id = self.trigger(dag_id, day, conf)
        state = self.wait(dag_id, run_id, timeout)
        if state != "success":
            raise AirflowApiError(f"{dag_id} run {run_id}: {state}\n{self.failure_logs(dag_id, run_id)}")
        return run_id
