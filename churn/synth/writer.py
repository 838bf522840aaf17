"""Write simulated users into Bronze: the Kaggle history dump, or daily drops that continue it.

Users are simulated in fixed chunks from (seed, chunk index), so the dump and any daily drop of the same
seed and profile describe the same people. Large files are streamed chunk by chunk (bounded memory).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from churn import kkbox
from churn.errors import ChurnError
from churn.labels import label_cohort
from churn.lake import Lake, csv_write_options
from churn.logs import progress
from churn.synth import quirks
from churn.synth.listening import simulate_logs
from churn.synth.members import simulate_members
from churn.synth.profiles import Profile
from churn.synth.timeline import Timeline, Users, make_users, simulate

log = logging.getLogger(__name__)

HORIZON = dt.date(2018, 3, 31)  # the simulation runs to here; daily drops can go up to it
ORACLE_PREFIX = "synth/oracle"
DUMP_COHORTS = {"train.csv": "2017-02", "train_v2.csv": "2017-03"}
SUBMISSION_COHORT = "2017-04"


@dataclass
class Chunk:
    """One simulated chunk of users, with quirks planted."""

    seed: int
    users: Users
    timeline: Timeline
    transactions: dict[str, np.ndarray]
    members: dict[str, np.ndarray]

    def msno(self, uid: np.ndarray) -> np.ndarray:
        """The msno strings of global user indices of this chunk."""
        return self.users.msno[uid - self.users.uid[0]]


def simulate_chunk(seed: int, profile: Profile, index: int) -> Chunk:
    """Simulate chunk `index` of a profile (deterministic for the seed)."""
    start = index * profile.chunk_users
    n = min(profile.chunk_users, profile.users - start)
    history_start = kkbox.day_number(kkbox.DUMP_END) - profile.days + 1
    horizon = kkbox.day_number(HORIZON)
    rng = np.random.default_rng([seed, index])
    users = make_users(rng, start, n, history_start, horizon)
    timeline = simulate(rng, users, horizon)
    members = simulate_members(rng, users)
    tx = quirks.transactions(np.random.default_rng([seed, index, 1]), timeline.transactions)
    return Chunk(seed, users, timeline, tx, members)


def chunk_count(profile: Profile) -> int:
    """How many chunks the profile's users fill."""
    return -(-profile.users // profile.chunk_users)


# -- arrow tables in the exact KKBox column order ---------------------------------------------------------
def _yyyymmdd(days: np.ndarray) -> pa.Array:
    return pa.array(kkbox.to_yyyymmdd(days), pa.int32())


def transactions_table(chunk: Chunk, rows: np.ndarray) -> pa.Table:
    """transactions.csv rows (dates as integer YYYYMMDD)."""
    tx = chunk.transactions
    return pa.table(
        {
            "msno": chunk.msno(tx["uid"][rows]),
            **{c: tx[c][rows].astype(np.int32) for c in kkbox.TRANSACTIONS.column_names[1:6]},
            "transaction_date": _yyyymmdd(tx["transaction_date"][rows]),
            "membership_expire_date": _yyyymmdd(tx["membership_expire_date"][rows]),
            "is_cancel": tx["is_cancel"][rows].astype(np.int32),
        }
    )


def members_table(chunk: Chunk, rows: np.ndarray) -> pa.Table:
    """members_v3.csv rows (empty gender written as an empty field)."""
    m = chunk.members
    return pa.table(
        {
            "msno": chunk.msno(m["uid"][rows]),
            "city": m["city"][rows].astype(np.int32),
            "bd": m["bd"][rows].astype(np.int32),
            "gender": m["gender"][rows],
            "registered_via": m["registered_via"][rows].astype(np.int32),
            "registration_init_time": _yyyymmdd(m["registration_init_time"][rows]),
        }
    )


def user_logs_table(chunk: Chunk, lo: int, hi: int) -> pa.Table:
    """user_logs.csv rows for days lo..hi (day numbers), quirks included."""
    logs = quirks.user_logs(chunk.seed, simulate_logs(chunk.seed, chunk.timeline.intervals, lo, hi))
    if not logs:
        return pa.table({c: pa.array([], t) for c, t in _log_csv_types()})
    return pa.table(
        {
            "msno": chunk.msno(logs["uid"]),
            "date": _yyyymmdd(logs["date"]),
            **{c: logs[c].astype(np.int32) for c in kkbox.USER_LOGS.column_names[2:8]},
            "total_secs": logs["total_secs"],
        }
    )


def march_tables(chunk: Chunk) -> dict[str, pa.Table]:
    """The chunk's rows of the dump's March-2017 files (transactions_v2.csv, user_logs_v2.csv), unshuffled;
    the realism report measures these against the real March."""
    v1_end, dump_end = kkbox.day_number(kkbox.DUMP_V1_END), kkbox.day_number(kkbox.DUMP_END)
    tdate = chunk.transactions["transaction_date"]
    march = np.flatnonzero((tdate > v1_end) & (tdate <= dump_end))
    return {
        "transactions_v2.csv": transactions_table(chunk, march),
        "user_logs_v2.csv": user_logs_table(chunk, v1_end + 1, dump_end),
    }


def _log_csv_types() -> list[tuple[str, pa.DataType]]:
    return [("msno", pa.string()), ("date", pa.int32())] + [
        (c, pa.int32()) for c in kkbox.USER_LOGS.column_names[2:8]
    ] + [("total_secs", pa.float64())]  # fmt: skip


def _shuffled(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """Rows in no particular order, as in the real files (readers must not rely on order)."""
    return table.take(pa.array(rng.permutation(table.num_rows)))


def _chunk_tx_table(chunk: Chunk) -> pa.Table:
    tx = chunk.transactions
    return pa.table({k: pa.array(v) for k, v in tx.items()})


def oracle_decisions(chunk: Chunk) -> pa.Table:
    """Every simulated churn decision with its true probability (outside the real formats)."""
    d = chunk.timeline.decisions
    return pa.table(
        {
            "msno": chunk.msno(d["uid"]),
            "expiry_date": pa.array(d["expiry"].astype(np.int32)).cast(pa.date32()),
            "churn_probability": d["probability"],
            "is_churn": d["is_churn"].astype(np.int8),
            "is_cancel": d["is_cancel"].astype(np.int8),
        }
    )


def cohort_oracle(chunk: Chunk, labels: pd.DataFrame) -> pa.Table:
    """The true churn probability of each user of a cohort: the decision at the expiry the rule measures.

    `labels` are the rule's output keyed by `uid` (with `expiry`); each decision has its own expiry day.
    """
    d = chunk.timeline.decisions
    decisions = pd.DataFrame({"uid": d["uid"], "expiry": d["expiry"], "churn_probability": d["probability"],
                              "planted_is_churn": d["is_churn"].astype(np.int8)})  # fmt: skip
    joined = labels.merge(decisions, on=["uid", "expiry"], how="inner")
    return pa.table(
        {
            "msno": chunk.msno(joined["uid"].to_numpy()),
            "churn_probability": joined["churn_probability"].to_numpy(),
            "planted_is_churn": joined["planted_is_churn"].to_numpy(),
        }
    )


# -- the history dump ----------------------------------------------------------------------------------
@dataclass
class _Writers:
    """Streaming CSV writers of the dump's files, opened lazily; each file appears only when complete."""

    lake: Lake
    stack: ExitStack
    writers: dict[str, pacsv.CSVWriter] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def write(self, name: str, table: pa.Table) -> None:
        """Append a table to `bronze/<name>`, writing the header with the first one."""
        if name not in self.writers:
            handle = self.stack.enter_context(self.lake.open_atomic(f"bronze/{name}", "text/csv"))
            writer = pacsv.CSVWriter(handle, table.schema, write_options=csv_write_options())
            self.stack.callback(writer.close)  # runs before the file is closed and renamed
            self.writers[name] = writer
        self.writers[name].write_table(table)
        self.rows[name] += table.num_rows


def write_dump(lake: Lake, profile: Profile, seed: int) -> dict[str, object]:
    """Write the Kaggle-format history dump into `bronze/`, the oracle into `synth/oracle/`."""
    started = time.perf_counter()
    v1_end, dump_end = kkbox.day_number(kkbox.DUMP_V1_END), kkbox.day_number(kkbox.DUMP_END)
    history_start = dump_end - profile.days + 1
    lake.remove(ORACLE_PREFIX)
    with ExitStack() as stack:
        writers = _Writers(lake, stack)
        for index in progress(range(chunk_count(profile)), total=chunk_count(profile), desc="synth"):
            chunk = simulate_chunk(seed, profile, index)
            rng = np.random.default_rng([seed, index, 2])
            tx = chunk.transactions
            members = chunk.members
            member_rows = np.flatnonzero(members["has_row"] & (members["registration_init_time"] <= dump_end))
            writers.write("members_v3.csv", _shuffled(members_table(chunk, member_rows), rng))
            march = march_tables(chunk)
            v1_rows = np.flatnonzero(tx["transaction_date"] <= v1_end)
            writers.write("transactions.csv", _shuffled(transactions_table(chunk, v1_rows), rng))
            writers.write("transactions_v2.csv", _shuffled(march["transactions_v2.csv"], rng))
            writers.write("user_logs.csv", _shuffled(user_logs_table(chunk, history_start, v1_end), rng))
            writers.write("user_logs_v2.csv", _shuffled(march["user_logs_v2.csv"], rng))

            # Labels come from the full simulated future, as KKBox's own did.
            tx_all = _chunk_tx_table(chunk)
            for name, cohort in DUMP_COHORTS.items():
                labels = label_cohort(tx_all, cohort, key="uid")
                lake.write_parquet(
                    f"{ORACLE_PREFIX}/cohort={cohort}/part-{index:05d}.parquet", cohort_oracle(chunk, labels)
                )
                writers.write(name, pa.table({"msno": chunk.msno(labels["uid"].to_numpy()),
                                              "is_churn": labels["is_churn"].astype(np.int32)}))  # fmt: skip
            submission = label_cohort(tx_all, SUBMISSION_COHORT, key="uid")
            lake.write_parquet(
                f"{ORACLE_PREFIX}/cohort={SUBMISSION_COHORT}/part-{index:05d}.parquet",
                cohort_oracle(chunk, submission),
            )
            writers.write(kkbox.SAMPLE_SUBMISSION, pa.table({
                "msno": chunk.msno(submission["uid"].to_numpy()),
                "is_churn": np.zeros(len(submission), np.int32),
            }))  # fmt: skip
            lake.write_parquet(f"{ORACLE_PREFIX}/decisions/part-{index:05d}.parquet", oracle_decisions(chunk))
    summary = {
        "profile": profile.name,
        "seed": seed,
        "users": profile.users,
        "history": [kkbox.to_yyyymmdd(np.array([history_start]))[0].item(), 20170331],
        "rows": dict(writers.rows),
        "seconds": round(time.perf_counter() - started, 2),
    }
    lake.write_json("synth/manifest-dump.json", summary)
    return summary


# -- daily drops ----------------------------------------------------------------------------------------
def parse_range(text: str) -> tuple[dt.date, dt.date]:
    """`START:END` (YYYY-MM-DD, inclusive) -> dates, within the simulated period after the dump."""
    try:
        start_text, end_text = text.split(":")
        start, end = dt.date.fromisoformat(start_text), dt.date.fromisoformat(end_text)
    except ValueError:
        raise ChurnError(f"--daily must be START:END in YYYY-MM-DD (got {text!r})") from None
    if start > end:
        raise ChurnError(f"--daily start {start} is after end {end}")
    if start < kkbox.DAILY_START or end > HORIZON:
        raise ChurnError(f"--daily dates must lie in {kkbox.DAILY_START}..{HORIZON} (got {start}..{end})")
    return start, end


def inject_drift(logs: pa.Table, strength: float, seed: int) -> pa.Table:
    """Listening that shifted (a new plan, a price change, a holiday): a `strength` share of the log rows
    disappear, the rest play `strength` less, and that share of full plays become skipped ones. 0 is no
    change; the same seed drops the same rows."""
    if strength <= 0.0 or logs.num_rows == 0:
        return logs
    keep = np.random.default_rng(seed).random(logs.num_rows) >= strength
    logs = logs.filter(pa.array(keep))
    scale = 1.0 - strength

    def scaled(name: str) -> np.ndarray:
        return np.floor(logs[name].to_numpy().astype(np.float64) * scale)

    num_100 = logs["num_100"].to_numpy()
    full = np.floor(num_100 * scale)
    columns = {
        **{name: scaled(name).astype(np.int32) for name in ("num_50", "num_75", "num_985", "num_unq")},
        "num_25": (logs["num_25"].to_numpy() + (num_100 - full)).astype(np.int32),
        "num_100": full.astype(np.int32),
        "total_secs": logs["total_secs"].to_numpy() * scale,
    }
    for name, values in columns.items():
        logs = logs.set_column(
            logs.schema.get_field_index(name), name, pa.array(values, logs.schema.field(name).type)
        )
    return logs


def write_daily(
    lake: Lake, profile: Profile, seed: int, start: dt.date, end: dt.date, drift: float = 0.0
) -> dict[str, object]:
    """Write one drop per day and table (`bronze/<table>/dt=D/<table>.csv`), same users as the dump;
    `drift` > 0 shifts the drops' listening (see `inject_drift`)."""
    started = time.perf_counter()
    lo, hi = kkbox.day_number(start), kkbox.day_number(end)
    parts: dict[tuple[str, int], list[pa.Table]] = defaultdict(list)
    for index in progress(range(chunk_count(profile)), total=chunk_count(profile), desc="synth daily"):
        chunk = simulate_chunk(seed, profile, index)
        members, tx = chunk.members, chunk.transactions
        logs = inject_drift(user_logs_table(chunk, lo, hi), drift, seed + index)
        log_days = np.asarray(logs["date"].to_numpy())
        for day in range(lo, hi + 1):
            ymd = kkbox.to_yyyymmdd(np.array([day]))[0]
            rows = np.flatnonzero(members["has_row"] & (members["registration_init_time"] == day))
            parts[("members", day)].append(members_table(chunk, rows))
            parts[("transactions", day)].append(
                transactions_table(chunk, np.flatnonzero(tx["transaction_date"] == day))
            )
            parts[("user_logs", day)].append(logs.filter(pa.array(log_days == ymd)))
    rows: dict[str, int] = defaultdict(int)
    for (table, day), tables in sorted(parts.items()):
        combined = pa.concat_tables(tables)
        lake.write_csv(kkbox.daily_path(table, dt.date(1970, 1, 1) + dt.timedelta(days=day)), combined)
        rows[table] += combined.num_rows
    summary = {"profile": profile.name, "seed": seed, "days": [str(start), str(end)], "rows": dict(rows),
               "drift": drift,
               "seconds": round(time.perf_counter() - started, 2)}  # fmt: skip
    return summary
