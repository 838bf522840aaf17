"""API benchmark: GET /scores/{msno} and POST /predict under load from a second process on loopback.

Server: `python -m api.serve --workers 2` (what `make api` and the image run) over the scoring
benchmark's database (1M published scores, see bench_scoring) and its registry and lake.
Load: `bench.loadgen` (asyncio, raw keep-alive sockets) in its own process, and for the lookups also
`wrk` (C, from Debian's package) when it is installed: the Python generator costs the shared cores more
per request than the server does, so wrk's figures are the closer reading of the server alone. Both run
after a 3 s warm-up (the pools open and the statements are prepared).
- lookups: 32 connections for 10 s over 5,000 random msnos; targets p99 <= 25 ms and >= 1,000 req/s;
- live predictions: raw events of a user with ~200 log rows; target p99 <= 50 ms, measured at 2
  connections (one request in flight per worker) and at 8.
The server, PostgreSQL and the load generator share the machine's cores, as the issue's setting says.
Run: `python -m bench.bench_api [--users N]` (N: size of the scored day, default 1M).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from bench.bench_scoring import DEFAULT_USERS, SCORE_DATE, prepare
from bench.common import DATA, report, users_argument

LOOKUP_P99_MS = 25.0
LOOKUP_RPS = 1000.0
PREDICT_P99_MS = 50.0
PORT = 8765


API_KEY = secrets.token_urlsafe(24)  # the server's only key for this run (the API refuses to run without)


def _loadgen(url: str, paths: Path, connections: int, seconds: float, body: Path | None = None) -> dict:
    command = [sys.executable, "-m", "bench.loadgen", "--url", url, "--paths", str(paths),
               "--connections", str(connections), "--seconds", str(seconds),
               "--header", f"X-API-Key: {API_KEY}"]  # fmt: skip
    if body is not None:
        command += ["--body", str(body)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


WRK_SCRIPT = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


def _wrk(url: str, paths: Path, connections: int, seconds: int) -> dict | None:
    """The lookup load from wrk (one thread), or None when wrk is not installed."""
    if shutil.which("wrk") is None:
        return None
    script = paths.with_suffix(".lua")
    script.write_text(WRK_SCRIPT % paths)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"X-API-Key: {API_KEY}",
               "-s", str(script), url]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def latency(label: str) -> float:
        value = re.search(rf"^\s*{label}\s+([0-9.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        assert value is not None, out
        return round(float(value[1]) * units[value[2]], 2)

    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert rps is not None, out
    return {"requests_per_s": float(rps[1]), "p50_ms": latency("50%"), "p99_ms": latency("99%"),
            "errors": int(errors[1]) if errors else 0}  # fmt: skip


def _published(env: dict[str, str]) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(env["CHURN_DATABASE_URL"])
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT count(*) FROM score_runs WHERE status = 'published' AND score_date = :d"),
            {"d": SCORE_DATE},
        ).scalar()
    engine.dispose()
    return bool(found)


def _inputs(lake_url: str, env: dict[str, str]) -> tuple[Path, Path, Path]:
    """Request paths (random scored msnos), and one raw-events body of a user with ~200 log rows."""
    from sqlalchemy import create_engine, text

    from bench.common import events_of_user
    from churn.data.silver import read_silver
    from churn.lake import Lake

    folder = DATA / "api"
    folder.mkdir(parents=True, exist_ok=True)
    engine = create_engine(env["CHURN_DATABASE_URL"])
    with engine.connect() as connection:
        sample = text("SELECT msno FROM churn_scores WHERE score_date = :d ORDER BY random() LIMIT 5000")
        msnos = connection.execute(sample, {"d": SCORE_DATE}).scalars().all()
    engine.dispose()
    lookups = folder / "lookups.txt"
    lookups.write_text("".join(f"/scores/{quote(m, safe='')}\n" for m in msnos))
    lake = Lake(lake_url)
    as_of = dt.date.fromisoformat(SCORE_DATE)
    logs = read_silver(lake, "user_logs", 0, filters=[("date", "<=", as_of)]).to_pandas()
    busiest = int(logs["user_id"].value_counts().index[0])  # the Gold day is tiled: take a real user
    users = read_silver(lake, "users", 0).to_pandas().set_index("user_id")["msno"]
    body = events_of_user(lake, str(users[busiest]), as_of)
    body["user_logs"] = sorted(body["user_logs"], key=lambda row: row["date"])[-200:]
    events = folder / "events.json"
    events.write_text(json.dumps(body))
    predicts = folder / "predict.txt"
    predicts.write_text("/predict\n")
    return lookups, predicts, events


def main() -> None:
    """Start the API on the bench data, drive it, print the summary line."""
    users = users_argument(__doc__) or DEFAULT_USERS
    lake_url, env = prepare(users)
    env = {**env, "CHURN_LAKE_URL": lake_url}
    if not _published(env):
        subprocess.run([sys.executable, "-m", "churn.cli", "score", "--date", SCORE_DATE], check=True,
                       env={**os.environ, **env})  # fmt: skip
    lookups, predicts, events = _inputs(lake_url, env)
    metrics_dir = DATA / "api" / "prometheus"
    subprocess.run(["rm", "-rf", str(metrics_dir)], check=True)
    metrics_dir.mkdir(parents=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "api.serve", "--port", str(PORT), "--workers", "2", "--log-level", "warning"],
        env={**os.environ, **env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "CHURN_API_KEYS": API_KEY},
    )
    url = f"http://127.0.0.1:{PORT}"
    try:
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        _loadgen(url, lookups, 32, 3)  # warm-up, discarded
        lookup = _loadgen(url, lookups, 32, 10)
        lookup_wrk = _wrk(url, lookups, 32, 10)
        predict_2 = _loadgen(url, predicts, 2, 8, events)
        predict_8 = _loadgen(url, predicts, 8, 8, events)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    log_rows = len(json.loads(events.read_text())["user_logs"])
    targets = {"lookup_p99_ms": LOOKUP_P99_MS, "lookup_rps": LOOKUP_RPS, "predict_p99_ms": PREDICT_P99_MS}
    figures = {"users": users, "lookup": lookup, "lookup_wrk": lookup_wrk, "predict_2": predict_2,
               "predict_8": predict_8, "predict_log_rows": log_rows, "targets": targets}  # fmt: skip
    lookup_line = (
        f"GET /scores/{{msno}} at 32 connections (bench.loadgen): {lookup['requests_per_s']:,.0f} req/s "
        f"(target >= {LOOKUP_RPS:,.0f}), p50 {lookup['p50_ms']} ms, p99 {lookup['p99_ms']} ms "
        f"(target <= {LOOKUP_P99_MS}), errors {lookup['errors']}"
    )
    if lookup_wrk is not None:
        lookup_line += (
            f"; the same with wrk: {lookup_wrk['requests_per_s']:,.0f} req/s, p50 {lookup_wrk['p50_ms']} ms, "
            f"p99 {lookup_wrk['p99_ms']} ms, errors {lookup_wrk['errors']}"
        )
    predict_line = (
        f"POST /predict ({log_rows} log rows) p50/p99 {predict_2['p50_ms']}/{predict_2['p99_ms']} ms at 2 "
        f"connections, {predict_8['p50_ms']}/{predict_8['p99_ms']} ms at 8 (target p99 <= {PREDICT_P99_MS}), "
        f"{predict_8['requests_per_s']:,.0f} req/s, errors {predict_2['errors'] + predict_8['errors']}"
    )
    report("api", figures, f"{lookup_line}; {predict_line}")


if __name__ == "__main__":
    main()
