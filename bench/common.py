"""Shared helpers of the benchmarks: bench data, child-process timing with peak RSS, result lines.

Each measurement runs in a fresh child process so its peak RSS is its own (`ru_maxrss` of the child).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
RESULTS = ROOT / "results"


def users_argument(description: str | None) -> int | None:
    """The `--users N` option every benchmark takes: smaller bench data than the bench profile."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--users", type=int, default=None, help="smaller bench data (default: the bench profile)"
    )
    return parser.parse_args().users


def bench_lake(profile: str = "bench", users: int | None = None) -> Path:
    """The lake folder holding the generator's dump for a profile, generated once and reused."""
    name = profile if users is None else f"{profile}-{users}"
    folder = DATA / name
    if not (folder / "bronze" / "user_logs.csv").exists():
        command = [sys.executable, "-m", "churn.cli", "synth", "--profile", profile, "--out", str(folder)]
        if users is not None:
            command += ["--users", str(users)]
        print(f"bench: generating the {name} data once into {folder} ...", flush=True)
        subprocess.run(command, check=True)
    return folder


MEASURE = """
import resource, time
started = time.perf_counter()
{body}
elapsed = time.perf_counter() - started
usage = resource.getrusage
peak = max(usage(resource.RUSAGE_SELF).ru_maxrss, usage(resource.RUSAGE_CHILDREN).ru_maxrss)
print("BENCH-RESULT", elapsed, peak)
"""


def timed_child(setup: str, body: str, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Run `setup` then `body` in a fresh Python; return (seconds of `body`, peak RSS bytes of the child).

    Imports and set-up happen in `setup`, outside the timed part; the child measures its own peak RSS.
    """
    code = setup + "\n" + MEASURE.format(body=body)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{result.stderr[-3000:]}")
    lines = [x for x in result.stdout.splitlines() if x.startswith("BENCH-RESULT ")]
    if not lines:
        raise RuntimeError(
            f"benchmark child printed no result:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    line = lines[-1]
    _, seconds, peak_kb = line.split()
    return float(seconds), int(peak_kb) * 1024


def repeat(setup: str, body: str, times: int, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Median seconds and largest peak RSS over `times` runs."""
    runs = [timed_child(setup, body, env) for _ in range(times)]
    return median(r[0] for r in runs), max(r[1] for r in runs)


def report(name: str, figures: dict[str, object], line: str) -> None:
    """Print the one-line summary and write the figures as JSON under bench/results/."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    figures = {"name": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"bench {name}: {line}", flush=True)
