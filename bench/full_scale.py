"""Full-scale benchmark: every stage of the nightly platform at KKBox's real size, one after the other.

`python -m bench.full_scale` (`make bench-full`) generates the `full` profile once into
bench/data/full (`churn synth --profile full`), then runs each stage as a child process of the `churn`
command line, with CHURN_LAKE_URL at that folder, a fresh PostgreSQL database for the scores and an MLflow
store beside the data (bench/data/<variant>-state/, with each stage's stdout and stderr under logs/):

| stage | command | target at the real size |
|---|---|---|
| generate | `churn synth --profile full` (once; skipped while the dump exists) | <= 20 min |
| ingest | `churn ingest` of the dump into an empty Silver | <= 12 min |
| validate_silver | `churn validate --stage silver --as-of 2017-03-31` | <= 3x features (< 1.5 GiB at 200k) |
| labels | `churn labels --cohort 2017-03` | <= 1 min |
| features | `churn features --as-of 2017-03-31` | <= 3 min |
| validate_gold | `churn validate --stage gold --as-of 2017-03-31` | - |
| train | `churn train --cohort 2017-03` (params.yaml: 6 cohorts, its Gold built first) | <= 45 min |
| score | `churn score --date 2017-03-31` (every active user, published) | <= 3 min |
| drop | `churn synth --daily 2017-04-01:2017-04-01` (one day's drop) | <= 2 min |
| nightly | that day: ingest, validate silver, features, validate gold, score | sum <= 10 min; silver 1 min |
| drift | `churn drift --week-ending 2017-04-01` | <= 5 min |
| api | GET /scores/{msno}, 32 connections, 3 x 10 s: the 2 published days, then 90 full-size | p99 <= 1.5x |

Every stage also has peak RSS <= 12 GiB. Per stage it records wall seconds, CPU seconds (user + sys of the
child and the processes it waited for, from `os.wait4`), peak RSS (`ru_maxrss`: the largest single
process) and the process tree's summed RSS sampled every 0.5 s, rows processed and rows/s, the lake's disk
usage after the stage and the largest seen while it ran (sampled every 5 s). For the API, the days before
the newest published one, up to 90 in all, are published by the benchmark (a child process calling the
scores database's own publish with the newest day's rows, so the partitions are laid out as the nightly
run lays them) and dropped again afterwards.

It prints one line per stage (`bench full_scale.<stage>: ours ..., target ..., rows/s ..., peak RSS ...`)
and a final markdown table, and writes bench/results/full_scale-<variant>.json and .md with the commit it
ran on (`+dirty` when the tree differs from it). A failing stage stops the run, shows its stderr's tail and
leaves the table so far written.

Options:
- `--users 200000`: the quick variant (the `bench` profile with that many users; ~19M log rows, about
  8 minutes on 2 cores), written to bench/data/bench-200000; `--profile` picks another generator profile;
- `--stages a,b,c`: rerun only these stages (the table keeps the other stages' last figures). `ingest`
  starts from an empty Silver (it removes the folder's Silver, Gold and reports, and earlier daily drops,
  keeping the dump, which is generated again first when it was deleted); `nightly` needs a drop not
  ingested yet, so rerun it together with `ingest` and `drop`;
- `--skip-generate`: never generate (fail when the dump is missing);
- `--delete-bronze` / `--keep-bronze`: delete the ingested dump CSVs once ingested, to fit the disk, or
  keep them (default: delete for the full profile only; the label files train*.csv stay: labels read them);
- `--data DIR`: another folder for the lake (e.g. a copy, to leave a shared one untouched).
PostgreSQL: CHURN_BENCH_DATABASE_URL (default the server on 127.0.0.1:5432); the scores go to a database
`churn_full_<variant>`, created afresh when the `score` stage runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import DATA, RESULTS, ChildUsage, WatchedChild, data_name, disk_usage, git_commit

GIB = 1 << 30
MAX_RSS = 12 * GIB  # issue 18: peak RSS of any stage on the 24 GiB machine
DUMP_END = "2017-03-31"  # the dump's last day: features, validation and the first scoring
DROP_DAY = "2017-04-01"  # the first daily drop: the nightly run's day
COHORT = "2017-03"  # trained on the 6 cohorts before it, validated on March
WEEK_ENDING = DROP_DAY
RETAINED_DAYS = 90
LOAD_REPEATS = 3  # 10 s loads of the API per measurement; the median p99 counts (the machine is shared)
FILL_PREFIX = "bench-fill-"
# The dump files ingest turns into Silver: what --delete-bronze removes. The released label files
# (train.csv, train_v2.csv) and sample_submission_v2.csv stay: labels and scoring read them from Bronze.
INGESTED_DUMP = ("members_v3.csv", "transactions.csv", "transactions_v2.csv", "user_logs.csv",
                 "user_logs_v2.csv")  # fmt: skip
STAGE_ORDER = ("generate", "ingest", "validate_silver", "labels", "features", "validate_gold", "train",
               "score", "drop", "nightly", "drift", "api")  # fmt: skip
NIGHTLY = ("nightly_ingest", "nightly_validate_silver", "nightly_features", "nightly_validate_gold",
           "nightly_score")  # fmt: skip
ROW_ORDER = (*STAGE_ORDER[:9], *NIGHTLY, "nightly", "drift", "api_small", "api_fill", "api_90")


# -- targets ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """What a stage must achieve: its `metric` at most `limit`, or at most `limit` times the same metric
    of the stage `of` (a ratio target); and its peak RSS at most `rss`."""

    limit: float | None = None
    of: str | None = None
    metric: str = "wall"  # "wall" (seconds) or "p99_ms"
    rss: int = MAX_RSS

    def describe(self) -> str:
        """The target as the table shows it (the 12 GiB RSS bound every stage has is left implicit)."""
        if self.limit is None:
            text = "-"
        elif self.of is not None:
            text = f"{'p99 ' if self.metric == 'p99_ms' else ''}<= {self.limit:g}x {self.of}"
        elif self.metric == "wall":
            minutes = self.limit / 60
            text = (
                f"<= {minutes:g} min" if minutes >= 1 and minutes == int(minutes) else f"<= {self.limit:g} s"
            )
        else:
            text = f"{self.metric} <= {self.limit:g}"
        return text if self.rss == MAX_RSS else f"{text}, peak RSS < {size(self.rss)}"

    def value(self, row: StageRow, rows: dict[str, StageRow]) -> float | None:
        """The figure compared with the limit: the metric, divided by the reference's for a ratio."""
        ours = getattr(row, self.metric)
        if ours is None or self.limit is None:
            return None
        if self.of is None:
            return float(ours)
        reference = rows.get(self.of)
        theirs = None if reference is None else getattr(reference, self.metric)
        return None if not theirs else float(ours) / float(theirs)

    def met(self, row: StageRow, rows: dict[str, StageRow]) -> bool | None:
        """True/False; None when the figure or its reference was not measured."""
        if row.status != "ok":
            return False
        if row.peak_rss > self.rss:
            return False
        if self.limit is None:
            return True
        value = self.value(row, rows)
        return None if value is None else value <= self.limit


def targets(profile: str) -> dict[str, Target]:
    """The targets of issue 18 (set for the real size; at 200k users they are ceilings, except Silver
    validation's, which the issue sets on the 200k-user data: 3x the feature build and under 1.5 GiB)."""
    silver_rss = MAX_RSS if profile == "full" else int(1.5 * GIB)
    return {
        "generate": Target(20 * 60),
        "ingest": Target(12 * 60),
        "validate_silver": Target(3.0, of="features", rss=silver_rss),
        "labels": Target(60),
        "features": Target(3 * 60),
        "train": Target(45 * 60),
        "score": Target(3 * 60),
        "drop": Target(2 * 60),
        "nightly_validate_silver": Target(60),
        "nightly": Target(10 * 60),
        "drift": Target(5 * 60),
        "api_90": Target(1.5, of="api_small", metric="p99_ms"),
    }


# -- rows and formatting ------------------------------------------------------------------------------
@dataclass
class StageRow:
    """One measured stage (or the nightly run's sum, or an API measurement)."""

    name: str
    what: str
    status: str = "ok"  # ok | failed
    wall: float = 0.0
    cpu: float = 0.0
    peak_rss: int = 0
    tree_rss: int | None = None
    rows: int | None = None
    unit: str = "rows"
    disk: int | None = None
    disk_peak: int | None = None
    p99_ms: float | None = None
    commit: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        """Rows (or requests) per wall second."""
        if self.rows is None or self.wall <= 0:
            return None
        if "requests_per_s" in self.detail:
            return float(self.detail["requests_per_s"])
        return self.rows / self.wall


def duration(seconds: float) -> str:
    """12.3 s below 100 s, else 12.1 min."""
    return f"{seconds:.1f} s" if seconds < 100 else f"{seconds / 60:.1f} min"


def size(count: float | None) -> str:
    """Bytes as MiB below 1 GiB, else GiB."""
    if count is None:
        return "-"
    return f"{count / (1 << 20):.0f} MiB" if count < GIB else f"{count / GIB:.2f} GiB"


def quantity(count: float | None) -> str:
    """18.3M, 157k, 523."""
    if count is None:
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(count) >= scale:
            return f"{count / scale:.1f}{suffix}"
    return f"{count:.0f}"


def verdict(row: StageRow, rows: dict[str, StageRow], target: Target | None) -> str:
    """The met? cell: yes/no (with the ratio for ratio targets, and why for an RSS miss)."""
    if row.status != "ok":
        return "FAILED"
    target = target or Target()
    met = target.met(row, rows)
    notes = []
    if row.p99_ms is not None:
        notes.append(f"p99 {row.p99_ms:g} ms")
    value = target.value(row, rows)
    if target.of is not None and value is not None:
        notes.append(f"{value:.2f}x")
    if row.peak_rss > target.rss:
        notes.append(f"RSS {size(row.peak_rss)}")
    text = "?" if met is None else ("yes" if met else "no")
    return f"{text} ({', '.join(notes)})" if notes else text


HEADER = "| stage | wall | CPU | peak RSS | rows | rows/s | disk | target | met? |"


def table(rows: dict[str, StageRow], goals: dict[str, Target]) -> str:
    """The markdown table of the measured rows, in stage order."""
    lines = [HEADER, "|" + "---|" * 9]
    for name in ROW_ORDER:
        row = rows.get(name)
        if row is None:
            continue
        rss = size(row.peak_rss)
        if row.tree_rss and row.tree_rss > row.peak_rss * 1.1:
            rss += f" (tree {size(row.tree_rss)})"
        count = "-" if row.rows is None else f"{quantity(row.rows)} {row.unit}"
        lines.append(
            f"| {row.name} ({row.what}) | {duration(row.wall)} | {duration(row.cpu)} | {rss} | {count} | "
            f"{quantity(row.rate)} | {size(row.disk)} | {goals.get(name, Target()).describe()} | "
            f"{verdict(row, rows, goals.get(name))} |"
        )
    return "\n".join(lines)


def summary_line(row: StageRow, rows: dict[str, StageRow], target: Target | None) -> str:
    """The one-line summary of benchmarks.md for a stage."""
    goal = target or Target()
    tree = f" (tree {size(row.tree_rss)})" if row.tree_rss and row.tree_rss > row.peak_rss * 1.1 else ""
    latency = f" (p99 {row.p99_ms:g} ms)" if row.p99_ms is not None else ""
    return (
        f"bench full_scale.{row.name}: ours {duration(row.wall)}{latency}, target {goal.describe()} "
        f"({verdict(row, rows, target)}), rows/s {quantity(row.rate)}, peak RSS {size(row.peak_rss)}{tree}; "
        f"CPU {duration(row.cpu)}, {quantity(row.rows)} {row.unit}, lake {size(row.disk)}"
    )


# -- the rows a stage processed, from the `churn` command's summary line --------------------------------
def _sum_of(pattern: str) -> Callable[[str], int | None]:
    compiled = re.compile(pattern)

    def parse(text: str) -> int | None:
        found = compiled.findall(text)
        return sum(int(value.replace(",", "")) for value in found) if found else None

    return parse


def synth_rows(text: str) -> int | None:
    """Rows the generator wrote: `synth ... -> <bronze>: name 1,234, name 5,678 (12.3 s)`."""
    match = re.search(r"^synth .*?-> \S+: (.*) \([\d.]+ s\)\s*$", text, re.MULTILINE)
    if match is None:
        return None
    counts = [item.rsplit(" ", 1)[-1].replace(",", "") for item in match[1].split(", ")]
    return sum(int(count) for count in counts if count.isdigit())


ROWS: dict[str, tuple[Callable[[str], int | None], str]] = {
    "synth": (synth_rows, "rows"),
    "ingest": (_sum_of(r"([\d,]+) in, "), "rows"),
    "validate": (_sum_of(r"([\d,]+) rows"), "rows"),
    "labels": (_sum_of(r": ([\d,]+) users from"), "users"),
    "features": (_sum_of(r": ([\d,]+) users x"), "users"),
    "train": (_sum_of(r", ([\d,]+) rows\)"), "rows"),
    "score": (_sum_of(r": ([\d,]+) active users"), "users"),
    "drift": (_sum_of(r"([\d,]+) scored rows"), "rows"),
}


def silver_rows(lake: Path) -> int | None:
    """Rows in Silver, from its Parquet footers (what a feature build as of the newest day reads)."""
    import pyarrow.parquet as pq

    parts = [p for p in (lake / "silver").rglob("*.parquet")
             if not any(d.startswith(("_", ".")) for d in p.relative_to(lake / "silver").parts)]  # fmt: skip
    return sum(pq.ParquetFile(p).metadata.num_rows for p in parts) if parts else None


def features_rows(run: Run, row: StageRow) -> None:
    """A feature build's rows are the Silver rows it aggregates (the users it wrote go to the detail)."""
    row.detail["users"], row.rows, row.unit = row.rows, silver_rows(run.lake), "Silver rows"


# -- a run ---------------------------------------------------------------------------------------------
class StageError(Exception):
    """A stage exited non-zero (its row is recorded as failed)."""


@dataclass
class Run:
    """One benchmark run: where the data is, the environment of the children, the rows so far."""

    profile: str
    users: int | None
    lake: Path
    delete_bronze: bool
    commit: str
    rows: dict[str, StageRow] = field(default_factory=dict)

    @property
    def variant(self) -> str:
        """full, bench-200000, ...: names the results files."""
        return data_name(self.profile, self.users)

    @property
    def state(self) -> Path:
        """MLflow store, API scratch and the stages' logs, beside the lake."""
        return self.lake.parent / f"{self.lake.name}-state"

    @property
    def database(self) -> str:
        """The scores database of this variant."""
        return "churn_full_" + re.sub(r"[^a-z0-9]+", "_", self.variant.lower())

    def database_url(self) -> str:
        """URL of the scores database on the bench PostgreSQL server."""
        from sqlalchemy.engine import make_url

        return make_url(admin_url()).set(database=self.database).render_as_string(hide_password=False)

    def env(self) -> dict[str, str]:
        """The children's environment: this lake, this database, this MLflow store."""
        base = {
            k: v for k, v in os.environ.items() if not k.startswith("CHURN_") or k.startswith("CHURN_DASK")
        }
        return {
            **base,
            "CHURN_LAKE_URL": str(self.lake),
            "CHURN_DATABASE_URL": self.database_url(),
            "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{self.state / 'mlflow' / 'mlflow.db'}",
            "CHURN_MLFLOW_ARTIFACT_LOCATION": str(self.state / "mlflow" / "artifacts"),
            "PYTHONUNBUFFERED": "1",
        }

    def synth_args(self) -> list[str]:
        """The generator's profile flags."""
        return ["--profile", self.profile, *(["--users", str(self.users)] if self.users else [])]


def admin_url() -> str:
    """The PostgreSQL server the benchmarks use (a database there is created and dropped)."""
    return os.environ.get("CHURN_BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def churn_command(*args: str) -> list[str]:
    """The `churn` command line of this interpreter's environment."""
    script = Path(sys.executable).parent / "churn"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "churn.cli", *args]


def watch(run: Run, name: str, command: list[str]) -> tuple[ChildUsage, str, str]:
    """Run one child to its end, sampling it; -> (usage, stdout, stderr)."""
    out, err = run.state / "logs" / f"{name}.out", run.state / "logs" / f"{name}.err"
    print(f"bench: {name}: {' '.join(command[-6:])} (log {out.with_suffix('')}.*)", flush=True)
    usage = WatchedChild(command, run.env(), out, err, disk_folder=run.lake).wait()
    return usage, out.read_text(errors="replace"), err.read_text(errors="replace")


def record(run: Run, row: StageRow, goals: dict[str, Target]) -> None:
    """Keep a row, print its line, and rewrite the results files (so a failure leaves the table so far)."""
    row.commit = run.commit
    run.rows[row.name] = row
    print(summary_line(row, run.rows, goals.get(row.name)), flush=True)
    write_results(run, goals)


def stage(run: Run, goals: dict[str, Target], name: str, what: str, *args: str,
          after: Callable[[StageRow], None] | None = None) -> StageRow:  # fmt: skip
    """One `churn` command as a measured stage (`after` runs once it succeeded, before its row is
    recorded); raises StageError (after recording the failed row) on failure."""
    usage, stdout, stderr = watch(run, name, churn_command(*args))
    parse, unit = ROWS.get(args[0], (lambda _: None, "rows"))
    row = StageRow(name, what, wall=usage.wall, cpu=usage.cpu, peak_rss=usage.peak_rss,
                   tree_rss=usage.tree_rss, rows=parse(stdout), unit=unit, disk=disk_usage(run.lake),
                   disk_peak=usage.disk_peak,
                   detail={"command": ["churn", *args], "summary": stdout.strip()[-2000:]})  # fmt: skip
    if usage.returncode != 0:
        row.status = "failed"
        row.detail["stderr_tail"] = stderr[-4000:]
        record(run, row, goals)
        raise StageError(f"{name} exited {usage.returncode}; stderr tail:\n{tail(stderr, 40)}")
    if after is not None:
        after(row)
    record(run, row, goals)
    return row


def tail(text: str, lines: int) -> str:
    """The last lines of a text."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


# -- data set-up between stages -----------------------------------------------------------------------
def dump_present(lake: Path) -> bool:
    """True when every dump file ingest reads is in Bronze."""
    return all((lake / "bronze" / name).exists() for name in INGESTED_DUMP)


def reset_for_ingest(lake: Path) -> None:
    """An empty Silver for a first ingest: remove everything but the generator's dump and manifests
    (Silver, Gold, reports, monitoring, and earlier daily drops under bronze/<table>/dt=...)."""
    for entry in lake.iterdir() if lake.exists() else []:
        if entry.name == "synth":
            continue
        if entry.name == "bronze":
            for sub in entry.iterdir():
                if sub.is_dir():
                    shutil.rmtree(sub)
            continue
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def delete_bronze(lake: Path) -> int:
    """Remove the ingested dump CSVs (benchmark only: production never does); -> bytes freed."""
    freed = 0
    for name in INGESTED_DUMP:
        path = lake / "bronze" / name
        if path.exists():
            freed += path.stat().st_blocks * 512
            path.unlink()
    return freed


def drop_bronze(run: Run, row: StageRow) -> None:
    """After the dump ingest: delete the ingested CSVs and note it on the stage's row."""
    row.detail["bronze_deleted_bytes"] = delete_bronze(run.lake)
    row.disk = disk_usage(run.lake)


def fresh_database(run: Run) -> None:
    """Drop and create the variant's scores database, then apply the migrations."""
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{run.database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{run.database}"'))
    admin.dispose()
    migrate(run)


def ensure_database(run: Run) -> None:
    """The variant's scores database, created and migrated when missing."""
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                    {"n": run.database}).first()  # fmt: skip
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{run.database}"'))
    admin.dispose()
    migrate(run)


def migrate(run: Run) -> None:
    """`churn db upgrade` on the variant's database (not timed)."""
    done = subprocess.run(churn_command("db", "upgrade"), env=run.env(), capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], check=False)  # fmt: skip
    if done.returncode != 0:
        raise StageError(f"churn db upgrade failed:\n{tail(done.stderr, 20)}")


def database_bytes(run: Run) -> int:
    """Size of the scores database on the server's disk."""
    from sqlalchemy import create_engine, text

    engine = create_engine(run.database_url())
    with engine.connect() as connection:
        found = int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar())
    engine.dispose()
    return found


# -- the API under 2 days and under 90 full-size days --------------------------------------------------
def fill_scores(retained: int = RETAINED_DAYS) -> None:
    """Publish the newest published day's rows again for each older day up to `retained` days in all,
    through the scores database's own publish (COPY, indexes, swap), so the partitions are as the nightly
    run leaves them; then ANALYZE. Runs as the benchmark's child (CHURN_DATABASE_URL)."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv
    from sqlalchemy import create_engine, text

    from churn.scores.scoredb import ScoreRun, begin_run, date_lock, publish
    from churn.settings import get_settings

    settings = get_settings()
    engine = create_engine(settings.database_url)
    with engine.connect() as connection:
        newest, name, version = connection.execute(text(
            "SELECT score_date, model_name, model_version FROM score_runs WHERE status = 'published' "
            "ORDER BY score_date DESC LIMIT 1")).one()  # fmt: skip
        published = set(connection.execute(
            text("SELECT score_date FROM score_runs WHERE status = 'published'")).scalars())  # fmt: skip
    raw = engine.raw_connection()
    try:
        buffer = io.BytesIO()
        raw.cursor().copy_expert(
            "COPY (SELECT msno, churn_probability, risk_band FROM churn_scores WHERE score_date = "
            f"'{newest.isoformat()}') TO STDOUT WITH (FORMAT csv)", buffer)  # fmt: skip
    finally:
        raw.close()
    buffer.seek(0)
    columns = ["msno", "churn_probability", "risk_band"]
    types = {"msno": pa.string(), "churn_probability": pa.float64(), "risk_band": pa.string()}
    day_rows = pacsv.read_csv(buffer, read_options=pacsv.ReadOptions(column_names=columns),
                              convert_options=pacsv.ConvertOptions(column_types=types))  # fmt: skip
    days = [newest - dt.timedelta(days=k) for k in range(retained - 1, 0, -1)]
    days = [day for day in days if day not in published]
    for day in days:
        run = ScoreRun(f"{FILL_PREFIX}{day:%Y%m%d}", day, name, version)
        with date_lock(engine, day):
            begin_run(engine, run)
            publish(engine, run, day_rows.to_batches(max_chunksize=100_000), settings.score_retention_days)
    # VACUUM too: 88 freshly loaded partitions would otherwise be vacuumed by autovacuum (its insert
    # threshold) during the load test, which a nightly run (one new partition) never sees
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE) churn_scores"))
    engine.dispose()
    print(f"filled {len(days)} days x {day_rows.num_rows:,} rows = {len(days) * day_rows.num_rows:,} rows")


def unfill_scores(run: Run) -> int:
    """Drop the days `fill_scores` published (their partitions and runs); -> days dropped."""
    from sqlalchemy import create_engine, text

    from churn.scores.scoredb import partition_name

    engine = create_engine(run.database_url())
    with engine.begin() as connection:
        days = connection.execute(text("SELECT DISTINCT score_date FROM score_runs WHERE run_id LIKE :p"),
                                  {"p": FILL_PREFIX + "%"}).scalars().all()  # fmt: skip
        for day in days:
            partition = partition_name(day)
            if connection.execute(text("SELECT to_regclass(:t)"), {"t": partition}).scalar():
                connection.exec_driver_sql(f'ALTER TABLE churn_scores DETACH PARTITION "{partition}"')
                connection.exec_driver_sql(f'DROP TABLE "{partition}"')
        connection.execute(text("DELETE FROM score_runs WHERE run_id LIKE :p"), {"p": FILL_PREFIX + "%"})
    engine.dispose()
    return len(days)


def analyze(run: Run) -> None:
    """VACUUM (ANALYZE) before a load test, as autovacuum's insert threshold leaves a day's partition after
    the night: planner statistics, and a visibility map so lookups are index-only scans. Without it the
    first reads of freshly copied rows set hint bits (writes) and visit the heap, so the small-table
    figure would be slower than the 90-day one, which `fill_scores` vacuums."""
    from sqlalchemy import create_engine, text

    engine = create_engine(run.database_url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("VACUUM (ANALYZE) churn_scores"))
    engine.dispose()


def lookup_paths(run: Run) -> Path:
    """5,000 request paths of users scored on the newest published day (the same for both loads)."""
    from urllib.parse import quote

    from sqlalchemy import create_engine, text

    engine = create_engine(run.database_url())
    with engine.connect() as connection:
        msnos = connection.execute(text(
            "SELECT msno FROM churn_scores WHERE score_date = (SELECT max(score_date) FROM score_runs "
            "WHERE status = 'published') ORDER BY md5(msno) LIMIT 5000")).scalars().all()  # fmt: skip
    engine.dispose()
    if not msnos:
        raise StageError("no published scores to look up: run the score or nightly stage first")
    path = run.state / "api" / "lookups.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"/scores/{quote(m, safe='')}\n" for m in msnos))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_and_load(run: Run, goals: dict[str, Target], name: str, what: str, paths: Path) -> StageRow:
    """Start the API (2 workers), load it at 32 connections 3 times 10 s after a 3 s warm-up, stop it; the
    load with the median p99 gives the figures (its req/s, the requests of all three)."""
    import httpx

    from bench.bench_api import API_KEY, _loadgen

    port = _free_port()
    metrics = run.state / "api" / f"prometheus-{name}"
    shutil.rmtree(metrics, ignore_errors=True)
    metrics.mkdir(parents=True)
    env = {**run.env(), "CHURN_API_KEYS": API_KEY, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    out, err = run.state / "logs" / f"{name}.out", run.state / "logs" / f"{name}.err"
    command = [sys.executable, "-m", "api.serve", "--port", str(port), "--workers", "2",
               "--log-level", "warning"]  # fmt: skip
    print(f"bench: {name}: API on port {port}, GET /scores/{{msno}} at 32 connections", flush=True)
    server = WatchedChild(command, env, out, err, disk_folder=None)
    url = f"http://127.0.0.1:{port}"
    load: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.exited():
                raise StageError(f"the API did not become ready; stderr tail:\n{tail(err.read_text(), 30)}")
            time.sleep(0.5)
        _loadgen(url, paths, 32, 3)  # warm-up: pools open, statements prepared
        loads = sorted((_loadgen(url, paths, 32, 10) for _ in range(LOAD_REPEATS)), key=lambda x: x["p99_ms"])
        load = {**loads[len(loads) // 2], "requests": sum(x["requests"] for x in loads),
                "p99_ms_runs": [x["p99_ms"] for x in loads],
                "requests_per_s_runs": [x["requests_per_s"] for x in loads],
                "errors": sum(x["errors"] for x in loads)}  # fmt: skip
    finally:
        server.terminate()
        usage = server.wait(timeout=30)
    row = StageRow(name, what, wall=usage.wall, cpu=usage.cpu, peak_rss=usage.peak_rss,
                   tree_rss=usage.tree_rss, rows=load.get("requests"), unit="requests",
                   disk=disk_usage(run.lake), p99_ms=load.get("p99_ms"),
                   detail={**load, "database_bytes": database_bytes(run)})  # fmt: skip
    if load.get("errors"):
        row.status = "failed"
        record(run, row, goals)
        raise StageError(f"{name}: {load['errors']} non-2xx answers; see {err}")
    record(run, row, goals)
    return row


def api_stages(run: Run, goals: dict[str, Target]) -> None:
    """The lookups with the published days as the pipeline left them, then with 90 full-size days."""
    unfill_scores(run)
    paths = lookup_paths(run)
    analyze(run)
    serve_and_load(run, goals, "api_small", "GET /scores/{msno}, days as published", paths)
    fill = [sys.executable, "-c", f"from bench.full_scale import fill_scores; fill_scores({RETAINED_DAYS})"]
    usage, stdout, stderr = watch(run, "api_fill", fill)
    filled = re.search(r"= ([\d,]+) rows", stdout)
    row = StageRow("api_fill", f"publish older days up to {RETAINED_DAYS}", wall=usage.wall, cpu=usage.cpu,
                   peak_rss=usage.peak_rss, tree_rss=usage.tree_rss,
                   rows=int(filled[1].replace(",", "")) if filled else None, disk=disk_usage(run.lake),
                   detail={"summary": stdout.strip(), "database_bytes": database_bytes(run)})  # fmt: skip
    if usage.returncode != 0:
        row.status = "failed"
        row.detail["stderr_tail"] = stderr[-4000:]
        record(run, row, goals)
        raise StageError(f"api_fill exited {usage.returncode}; stderr tail:\n{tail(stderr, 40)}")
    record(run, row, goals)
    try:
        serve_and_load(run, goals, "api_90", f"GET /scores/{{msno}}, {RETAINED_DAYS} days", paths)
    finally:
        unfill_scores(run)


# -- the run ------------------------------------------------------------------------------------------
def run_stages(run: Run, wanted: list[str], generate: bool) -> None:
    """Run the wanted stages in order (generation first when asked for)."""
    goals = targets(run.profile)
    if generate:
        stage(run, goals, "generate", "the history dump", "synth", *run.synth_args())
    for name in wanted:
        if name == "generate":
            continue
        if name == "ingest":
            if not dump_present(run.lake):
                raise StageError(f"the dump is not in {run.lake / 'bronze'}: run the generate stage")
            reset_for_ingest(run.lake)
            stage(run, goals, "ingest", "dump -> Silver", "ingest",
                  after=(lambda row: drop_bronze(run, row)) if run.delete_bronze else None)  # fmt: skip
        elif name == "validate_silver":
            stage(run, goals, name, f"whole Silver, as of {DUMP_END}", "validate", "--stage", "silver",
                  "--as-of", DUMP_END)  # fmt: skip
        elif name == "labels":
            stage(run, goals, name, f"cohort {COHORT}", "labels", "--cohort", COHORT)
        elif name == "features":
            stage(run, goals, name, f"as of {DUMP_END}", "features", "--as-of", DUMP_END,
                  after=lambda row: features_rows(run, row))  # fmt: skip
        elif name == "validate_gold":
            stage(run, goals, name, f"features as of {DUMP_END}", "validate", "--stage", "gold",
                  "--as-of", DUMP_END)  # fmt: skip
        elif name == "train":
            shutil.rmtree(run.state / "mlflow", ignore_errors=True)  # a first training: no champion yet
            stage(run, goals, name, f"cohort {COHORT}, params.yaml", "train", "--cohort", COHORT)
        elif name == "score":
            fresh_database(run)
            stage(run, goals, name, f"{DUMP_END}, published", "score", "--date", DUMP_END)
        elif name == "drop":
            stage(run, goals, name, f"daily drop {DROP_DAY}", "synth", *run.synth_args(), "--daily",
                  f"{DROP_DAY}:{DROP_DAY}")  # fmt: skip
        elif name == "nightly":
            nightly(run, goals)
        elif name == "drift":
            ensure_database(run)
            stage(run, goals, name, f"week ending {WEEK_ENDING}", "drift", "--week-ending", WEEK_ENDING)
        elif name == "api":
            ensure_database(run)
            api_stages(run, goals)


def nightly(run: Run, goals: dict[str, Target]) -> None:
    """The night of the drop's day: each sub-step timed, then their sum as the `nightly` row."""
    ensure_database(run)
    steps = [
        ("nightly_ingest", "the day's drop", ("ingest",)),
        (
            "nightly_validate_silver",
            f"as of {DROP_DAY}",
            ("validate", "--stage", "silver", "--as-of", DROP_DAY),
        ),
        ("nightly_features", f"as of {DROP_DAY}", ("features", "--as-of", DROP_DAY)),
        ("nightly_validate_gold", f"as of {DROP_DAY}", ("validate", "--stage", "gold", "--as-of", DROP_DAY)),
        ("nightly_score", f"{DROP_DAY}, published", ("score", "--date", DROP_DAY)),
    ]
    done = []
    for name, what, args in steps:
        after = (lambda row: features_rows(run, row)) if name == "nightly_features" else None
        done.append(stage(run, goals, name, what, *args, after=after))
        if name == "nightly_ingest" and not done[-1].rows:
            done[-1].status, done[-1].detail["error"] = "failed", "no new drop to ingest"
            record(run, done[-1], goals)
            raise StageError("the night's ingest found no new drop: rerun `drop` (after `ingest`) first")
    row = StageRow("nightly", f"sum of the {len(done)} steps", wall=sum(r.wall for r in done),
                   cpu=sum(r.cpu for r in done), peak_rss=max(r.peak_rss for r in done),
                   tree_rss=max(r.tree_rss or 0 for r in done), rows=done[0].rows, disk=done[-1].disk,
                   disk_peak=max(r.disk_peak or 0 for r in done))  # fmt: skip
    record(run, row, goals)


def write_results(run: Run, goals: dict[str, Target]) -> tuple[Path, Path]:
    """bench/results/full_scale-<variant>.json and .md (the table, the commit, the peak disk)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = RESULTS / f"full_scale-{run.variant}"
    peaks = [r.disk_peak or r.disk or 0 for r in run.rows.values()]
    peak = max(peaks, default=0)
    figures = {
        "name": f"full_scale-{run.variant}", "variant": run.variant, "profile": run.profile,
        "users": run.users, "commit": run.commit, "lake": str(run.lake), "peak_disk_bytes": peak,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": [dataclasses.asdict(run.rows[n]) for n in ROW_ORDER if n in run.rows],
    }  # fmt: skip
    base.with_suffix(".json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    commits = sorted({r.commit for r in run.rows.values()})
    database = max((r.detail.get("database_bytes", 0) for r in run.rows.values()), default=0)
    markdown = "\n".join([
        f"# Full-scale benchmark: {run.variant}", "",
        f"Commit {', '.join(commits) or run.commit}; profile {run.profile}"
        f"{f', {run.users:,} users' if run.users else ''}; peak lake disk {size(peak)}"
        f"{f', scores database up to {size(database)}' if database else ''}. Targets are set for "
        "the real size; every stage also has peak RSS <= 12 GiB (peak RSS: the largest process; tree: "
        "all its processes together, when larger).", "",
        table(run.rows, goals), "",
    ])  # fmt: skip
    base.with_suffix(".md").write_text(markdown)
    return base.with_suffix(".json"), base.with_suffix(".md")


def previous_rows(run: Run) -> dict[str, StageRow]:
    """The last results of this variant (kept for the stages a `--stages` run does not rerun)."""
    path = RESULTS / f"full_scale-{run.variant}.json"
    if not path.exists():
        return {}
    names = {f.name for f in dataclasses.fields(StageRow)}
    try:
        stored = json.loads(path.read_text())["rows"]
        return {r["name"]: StageRow(**{k: v for k, v in r.items() if k in names}) for r in stored}
    except (KeyError, TypeError, ValueError):
        return {}


def parse_stages(text: str | None) -> list[str]:
    """`a,b,c` -> the stages in run order; all of them when not given."""
    if text is None:
        return list(STAGE_ORDER)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in STAGE_ORDER]
    if unknown or not names:
        raise SystemExit(
            f"--stages: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(STAGE_ORDER)}"
        )
    return [name for name in STAGE_ORDER if name in names]


def replaced_rows(wanted: list[str], generate: bool) -> set[str]:
    """The rows a run of these stages measures anew (the others keep their last figures)."""
    rows = {name for name in wanted if name not in ("nightly", "api", "generate")}
    if generate:
        rows.add("generate")
    if "nightly" in wanted:
        rows |= {*NIGHTLY, "nightly"}
    if "api" in wanted:
        rows |= {"api_small", "api_fill", "api_90"}
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=None, help="users of the quick variant (e.g. 200000)")
    parser.add_argument(
        "--profile", default=None, help="generator profile (default full; bench with --users)"
    )
    parser.add_argument(
        "--stages", default=None, help=f"rerun only these, comma-separated: {','.join(STAGE_ORDER)}"
    )
    parser.add_argument(
        "--skip-generate", action="store_true", help="never generate; fail when the dump is missing"
    )
    bronze = parser.add_mutually_exclusive_group()
    bronze.add_argument(
        "--delete-bronze",
        dest="delete_bronze",
        action="store_true",
        default=None,
        help="delete the ingested dump CSVs after the ingest (default for the full profile)",
    )
    bronze.add_argument(
        "--keep-bronze",
        dest="delete_bronze",
        action="store_false",
        help="keep them (default for the other profiles)",
    )
    parser.add_argument("--data", type=Path, default=None, help="lake folder (default bench/data/<variant>)")
    args = parser.parse_args(argv)
    profile = args.profile or ("bench" if args.users else "full")
    wanted = parse_stages(args.stages)
    lake = (args.data or DATA / data_name(profile, args.users)).resolve()
    delete = profile == "full" if args.delete_bronze is None else args.delete_bronze
    run = Run(profile, args.users, lake, delete, git_commit())
    present = dump_present(lake) or ((lake / "silver").exists() and (lake / "synth").exists())
    if args.stages is not None and "generate" in wanted:
        if args.skip_generate:
            raise SystemExit("--skip-generate contradicts --stages generate")
        generate = True
    else:
        generate = not args.skip_generate and "ingest" in wanted and not dump_present(lake)
        if not generate and not present:
            raise SystemExit(f"no generated data in {lake} (drop --skip-generate to generate it)")
    if args.stages is not None or not generate:
        keep = replaced_rows(wanted, generate)
        run.rows = {name: row for name, row in previous_rows(run).items() if name not in keep}
    lake.mkdir(parents=True, exist_ok=True)
    run.state.mkdir(parents=True, exist_ok=True)
    print(f"bench: full-scale {run.variant} in {lake} (commit {run.commit}; stages {', '.join(wanted)}"
          f"{'; generating first' if generate and 'generate' not in wanted else ''}"
          f"{'; Bronze dump deleted after ingest' if delete else ''})", flush=True)  # fmt: skip
    goals = targets(profile)
    failed = None
    try:
        run_stages(run, wanted, generate)
    except StageError as error:
        failed = error
    json_path, md_path = write_results(run, goals)
    print()
    print(table(run.rows, goals))
    print(f"\nbench: results {json_path} and {md_path}")
    if failed is not None:
        print(f"\nbench: stopped: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
