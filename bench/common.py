"""Shared helpers of the benchmarks: bench data, child-process timing with peak RSS, result lines.

Each measurement runs in a fresh child process so its peak RSS is its own (`ru_maxrss` of the child).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from churn.lake import Lake

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


# -- long stages as child processes: wall, CPU, peak RSS (own and of the process tree), disk --------------
def data_name(profile: str, users: int | None) -> str:
    """The folder name of a profile's bench data under bench/data (as `bench_lake` names it)."""
    return profile if users is None else f"{profile}-{users}"


def git_commit() -> str:
    """The commit the working tree is on, with '+dirty' when tracked or new files differ from it."""
    repo = ROOT.parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=False)
    if head.returncode != 0:
        return "unknown"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True,
                            check=False)  # fmt: skip
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def disk_usage(folder: Path) -> int:
    """Bytes a folder takes on disk (allocated blocks, like `du`), 0 when it does not exist."""
    total = 0
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except FileNotFoundError:  # removed while we walk (staging files of a running stage)
                continue
    return total


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants right now (0 once it has gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


@dataclass
class ChildUsage:
    """What one child process cost: from `os.wait4` (its own and its waited-for descendants' CPU, and the
    largest single process's peak RSS), plus samples taken while it ran (the whole tree's RSS summed, and
    the largest disk usage seen of a folder)."""

    returncode: int
    wall: float
    cpu: float
    peak_rss: int
    tree_rss: int
    disk_peak: int | None


class WatchedChild:
    """A child process started now and sampled in a thread until `wait` reaps it with `os.wait4`.

    The child gets its own session, so an interrupted benchmark can stop it and everything it started.
    """

    def __init__(self, command: list[str], env: dict[str, str], out: Path, err: Path,
                 disk_folder: Path | None = None, cwd: Path | None = None) -> None:  # fmt: skip
        import threading

        out.parent.mkdir(parents=True, exist_ok=True)
        self.disk_folder = disk_folder
        self.tree_peak = 0
        self.disk_peak = disk_usage(disk_folder) if disk_folder is not None else None
        self._stop = threading.Event()
        self.started = time.perf_counter()
        with out.open("wb") as stdout, err.open("wb") as stderr:
            self.process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env,
                                            cwd=cwd or ROOT.parent, start_new_session=True)  # fmt: skip
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        beat = 0
        while not self._stop.wait(0.5):
            self.tree_peak = max(self.tree_peak, _tree_rss(self.process.pid))
            beat += 1
            if self.disk_folder is not None and beat % 10 == 0:  # every 5 s: a walk of the folder
                self.disk_peak = max(self.disk_peak or 0, disk_usage(self.disk_folder))

    def wait(self, timeout: float | None = None) -> ChildUsage:
        """Reap the child (SIGKILL to its session after `timeout` seconds) and return its usage."""
        import signal

        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
                if pid:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    deadline = None
                time.sleep(0.1)
        except BaseException:  # interrupted: stop what we started, then let the interruption through
            self.kill()
            raise
        wall = time.perf_counter() - self.started
        self._stop.set()
        self._thread.join()
        self.process.returncode = os.waitstatus_to_exitcode(status)
        if self.disk_folder is not None:
            self.disk_peak = max(self.disk_peak or 0, disk_usage(self.disk_folder))
        return ChildUsage(returncode=self.process.returncode, wall=wall, cpu=usage.ru_utime + usage.ru_stime,
                          peak_rss=usage.ru_maxrss * 1024, tree_rss=self.tree_peak,
                          disk_peak=self.disk_peak)  # fmt: skip

    def exited(self) -> bool:
        """True once the child has ended (without reaping it: `wait` still collects its usage)."""
        if self.process.returncode is not None:
            return True
        found = os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return found is not None

    def terminate(self) -> None:
        """Ask the child (only the child: a server stops its own workers) to finish."""
        import signal

        if self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGTERM)

    def kill(self) -> None:
        """Stop the child's whole session at once (an interrupted run)."""
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


# -- what a client holding a user's events would send -------------------------------------------------
def events_of_user(lake: Lake, msno: str, as_of: dt.date) -> dict[str, Any]:
    """A known user's Silver rows up to `as_of` as a raw-events body (KKBox field names, dates as
    YYYYMMDD): what a client holding the same events would send to POST /predict."""
    import numpy as np

    from churn.data.silver import bucket_count, read_silver
    from churn.data.userkey import bucket_of, user_id_of

    user = user_id_of(msno)
    bucket = int(bucket_of(np.array([user]), bucket_count(lake))[0])

    def records(table: str, date_column: str | None) -> list[dict[str, Any]]:
        filters = [("user_id", "=", user)] + ([(date_column, "<=", as_of)] if date_column else [])
        rows = read_silver(lake, table, bucket, filters=filters).drop(["user_id"]).to_pylist()
        return [
            {k: int(v.strftime("%Y%m%d")) if isinstance(v, dt.date) else v for k, v in r.items()}
            for r in rows
        ]

    members = records("members", None)
    return {
        "msno": msno,
        "as_of": as_of.isoformat(),
        "member": members[-1] if members else None,
        "transactions": records("transactions", "transaction_date"),
        "user_logs": records("user_logs", "date"),
    }
