"""Write simulated users into Bronze: the Kaggle history dump, or daily drops that continue it.

Users are simulated in fixed chunks from (seed, chunk index), so the dump and any daily drop of the same
seed and profile describe the same people. The dump simulates chunks in worker processes and streams
them into each file in chunk order (a header, then every chunk's rows), so its bytes do not depend on the
number of workers and memory stays bounded. It also keeps the chunks' future (`state`), from which a daily
drop draws only its days instead of re-simulating every chunk's whole history.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from churn.data import kkbox
from churn.errors import ChurnError
from churn.features.labels import label_cohort
from churn.lake import Lake, csv_write_options
from churn.logs import progress
from churn.synth import quirks
from churn.synth.listening import simulate_logs
from churn.synth.members import member_updates, simulate_members
from churn.synth.pool import ordered_map
from churn.synth.profiles import Profile
from churn.synth.state import Future, future_of, read_future, state_writer
from churn.synth.state import tables as state_tables
from churn.synth.timeline import Timeline, Users, make_users, simulate

log = logging.getLogger(__name__)

HORIZON = dt.date(2018, 3, 31)  # the simulation runs to here; daily drops can go up to it
ORACLE_PREFIX = "synth/oracle"
SUBMISSION_COHORT = "2017-04"


@dataclass
class Chunk:
    """One simulated chunk of users, with quirks planted."""

    seed: int
    users: Users
    timeline: Timeline
    transactions: dict[str, np.ndarray]
    members: dict[str, np.ndarray]
    listening: float = 1.0  # the profile's scale of listening days (see `Behaviour`)

    def msno(self, uid: np.ndarray) -> pa.Array:
        """The msno strings of global user indices of this chunk (taken in Arrow: a chunk's log rows
        need hundreds of thousands, too many to go through Python strings)."""
        return self._msno.take(pa.array(uid - self.users.uid[0], pa.int64()))

    @cached_property
    def _msno(self) -> pa.Array:
        return pa.array(self.users.msno, pa.string())

    @property
    def intervals(self) -> dict[str, np.ndarray]:
        """The membership intervals listening is drawn from."""
        return self.timeline.intervals


def simulate_chunk(seed: int, profile: Profile, index: int) -> Chunk:
    """Simulate chunk `index` of a profile (deterministic for the seed).

    The chunk's first users subscribe; the profile's `dormant` share after them (drawn from a stream of
    their own, so the subscribers are the same with or without them) only have a member row.
    """
    behaviour = profile.behaviour
    start = index * profile.chunk_users
    n = min(profile.chunk_users, profile.users - start)
    dormant = min(round(n * behaviour.dormant), n - 1)
    history_start = kkbox.day_number(kkbox.DUMP_END) - profile.days + 1
    horizon = kkbox.day_number(HORIZON)
    rng = np.random.default_rng([seed, index])
    users = make_users(rng, start, n - dormant, history_start, horizon, behaviour.established)
    timeline = simulate(rng, users, horizon, behaviour)
    members = simulate_members(rng, users)
    if dormant:
        other = np.random.default_rng([seed, index, 3])
        # Registered like the default population: since 2004, two in five during the history or later.
        idle = make_users(other, start + n - dormant, dormant, history_start, horizon)
        idle_members = simulate_members(other, idle)
        idle_members["has_row"][:] = True  # a member row is all they have
        both = (users, idle)
        users = Users(*(np.concatenate([getattr(u, f.name) for u in both]) for f in fields(Users)))
        members = {k: np.concatenate([members[k], idle_members[k]]) for k in members}
    tx = quirks.transactions(np.random.default_rng([seed, index, 1]), timeline.transactions)
    return Chunk(seed, users, timeline, tx, members, behaviour.listening)


def chunk_count(profile: Profile) -> int:
    """How many chunks the profile's users fill."""
    return -(-profile.users // profile.chunk_users)


# -- arrow tables in the exact KKBox column order ---------------------------------------------------------
def _yyyymmdd(days: np.ndarray) -> pa.Array:
    return pa.array(kkbox.to_yyyymmdd(days), pa.int32())


def transactions_table(chunk: Chunk | Future, rows: np.ndarray) -> pa.Table:
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


def members_table(
    chunk: Chunk | Future, rows: np.ndarray, members: dict[str, np.ndarray] | None = None
) -> pa.Table:
    """members_v3.csv rows (empty gender written as an empty field) of the chunk's members, or of
    `members` (rows shaped like them)."""
    m = chunk.members if members is None else members
    return pa.table(
        {
            "msno": chunk.msno(m["uid"][rows]),
            "city": m["city"][rows].astype(np.int32),
            "bd": m["bd"][rows].astype(np.int32),
            "gender": pa.array(m["gender"][rows], pa.string()),
            "registered_via": m["registered_via"][rows].astype(np.int32),
            "registration_init_time": _yyyymmdd(m["registration_init_time"][rows]),
        }
    )


def user_logs_table(chunk: Chunk | Future, lo: int, hi: int) -> pa.Table:
    """user_logs.csv rows for days lo..hi (day numbers), quirks included."""
    return _logs_table(chunk, _log_rows(chunk, lo, hi))


def _log_rows(chunk: Chunk | Future, lo: int, hi: int) -> dict[str, np.ndarray]:
    """The simulated log rows of days lo..hi (with the user index), quirks included."""
    simulated = simulate_logs(chunk.seed, chunk.intervals, lo, hi, chunk.listening)
    return quirks.user_logs(chunk.seed, simulated)


def _logs_table(chunk: Chunk | Future, logs: dict[str, np.ndarray]) -> pa.Table:
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
DUMP_FILES = (*kkbox.DUMP_FILES, kkbox.SAMPLE_SUBMISSION)  # what the generator writes


@dataclass
class DumpPart:
    """One chunk's share of the dump: each file's CSV bytes (with the header in chunk 0's only), their
    row counts, and the chunk's future for the state."""

    csv: dict[str, pa.Buffer]
    rows: dict[str, int]
    state: dict[str, pa.Table]


@dataclass(frozen=True)
class _Job:
    """What a worker needs to write one chunk (plain values: it crosses a process boundary)."""

    url: str
    storage_options: dict[str, object]
    profile: Profile
    seed: int
    index: int


def _csv(table: pa.Table, header: bool) -> pa.Buffer:
    """CSV bytes as the KKBox files have them (unquoted), with or without the header line (an Arrow
    buffer: no copy into Python bytes)."""
    options = csv_write_options()
    options.include_header = header
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, write_options=options)
    return sink.getvalue()


def dump_chunk(lake: Lake, profile: Profile, seed: int, index: int) -> DumpPart:
    """Simulate one chunk and render its rows of every dump file; its oracle goes straight to the lake."""
    v1_end, dump_end = kkbox.day_number(kkbox.DUMP_V1_END), kkbox.day_number(kkbox.DUMP_END)
    history_start = dump_end - profile.days + 1
    chunk = simulate_chunk(seed, profile, index)
    rng = np.random.default_rng([seed, index, 2])
    tx, members = chunk.transactions, chunk.members
    member_rows = np.flatnonzero(members["has_row"] & (members["registration_init_time"] <= dump_end))
    tables = {"members_v3.csv": _shuffled(members_table(chunk, member_rows), rng)}
    march = march_tables(chunk)
    tables["transactions.csv"] = _shuffled(
        transactions_table(chunk, np.flatnonzero(tx["transaction_date"] <= v1_end)), rng
    )
    tables["transactions_v2.csv"] = _shuffled(march["transactions_v2.csv"], rng)
    tables["user_logs.csv"] = _shuffled(user_logs_table(chunk, history_start, v1_end), rng)
    tables["user_logs_v2.csv"] = _shuffled(march["user_logs_v2.csv"], rng)

    # Labels come from the full simulated future, as KKBox's own did.
    tx_all = _chunk_tx_table(chunk)
    for name, cohort in kkbox.RELEASED_COHORTS.items():
        labels = label_cohort(tx_all, cohort, key="uid")
        lake.write_parquet(
            f"{ORACLE_PREFIX}/cohort={cohort}/part-{index:05d}.parquet", cohort_oracle(chunk, labels)
        )
        tables[name] = pa.table({"msno": chunk.msno(labels["uid"].to_numpy()),
                                 "is_churn": labels["is_churn"].astype(np.int32)})  # fmt: skip
    submission = label_cohort(tx_all, SUBMISSION_COHORT, key="uid")
    lake.write_parquet(
        f"{ORACLE_PREFIX}/cohort={SUBMISSION_COHORT}/part-{index:05d}.parquet",
        cohort_oracle(chunk, submission),
    )
    tables[kkbox.SAMPLE_SUBMISSION] = pa.table(
        {"msno": chunk.msno(submission["uid"].to_numpy()), "is_churn": np.zeros(len(submission), np.int32)}
    )
    lake.write_parquet(f"{ORACLE_PREFIX}/decisions/part-{index:05d}.parquet", oracle_decisions(chunk))
    return DumpPart(
        csv={name: _csv(table, header=index == 0) for name, table in tables.items()},
        rows={name: table.num_rows for name, table in tables.items()},
        state=state_tables(future_of(chunk, dump_end)),
    )


def _dump_job(job: _Job) -> DumpPart:
    return dump_chunk(Lake(job.url, job.storage_options), job.profile, job.seed, job.index)


def write_dump(lake: Lake, profile: Profile, seed: int, workers: int = 1) -> dict[str, Any]:
    """Write the Kaggle-format history dump into `bronze/`, the oracle into `synth/oracle/` and the
    chunks' future into `synth/state/`, simulating chunks in `workers` processes.

    Each file is streamed (it appears only when complete) as chunk 0's rows with the header, then every
    other chunk's rows in chunk order: the same bytes for any number of workers.
    """
    started = time.perf_counter()
    dump_end = kkbox.day_number(kkbox.DUMP_END)
    history_start = dump_end - profile.days + 1
    count = chunk_count(profile)
    lake.remove(ORACLE_PREFIX)
    rows = dict.fromkeys(DUMP_FILES, 0)
    jobs = (_Job(lake.url, lake.storage_options, profile, seed, index) for index in range(count))
    with ExitStack() as stack:
        state = stack.enter_context(state_writer(lake, profile, seed))  # entered first: closed last
        files = {
            name: stack.enter_context(lake.open_atomic(f"bronze/{name}", "text/csv")) for name in DUMP_FILES
        }
        for part in progress(ordered_map(_dump_job, jobs, workers), total=count, desc="synth"):
            for name, data in part.csv.items():
                files[name].write(memoryview(data))
                rows[name] += part.rows[name]
            state.write(part.state)
    summary = {
        "profile": profile.name,
        "seed": seed,
        "users": profile.users,
        "workers": max(workers, 1),
        "history": [kkbox.to_yyyymmdd(np.array([history_start]))[0].item(), 20170331],
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 2),
    }
    lake.write_json("synth/manifest-dump.json", summary)
    return summary


# -- daily drops ----------------------------------------------------------------------------------------
DAILY_WINDOW_DAYS = 7  # days drawn at once without drift (bounds memory; days are independent then)


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
    lake: Lake,
    profile: Profile,
    seed: int,
    start: dt.date,
    end: dt.date,
    drift: float = 0.0,
    member_updates: float = 0.0,
) -> dict[str, Any]:
    """Write one drop per day and table (`bronze/<table>/dt=D/<table>.csv`), same users as the dump;
    `drift` > 0 shifts the drops' listening (see `inject_drift`); `member_updates` > 0 re-delivers that
    share of the dump's member rows each day with a new city and registration channel (see
    `members.member_updates`), so point-in-time member features have something to prove.

    The rows come from the dump's state when it was made from this seed and profile (only the days'
    listening is simulated), else from re-simulating every chunk; both give the same bytes.
    """
    started = time.perf_counter()
    lo, hi = kkbox.day_number(start), kkbox.day_number(end)
    future, source = read_future(lake, profile, seed, lo, hi), "state"
    if future is None:
        future, source = _simulated_future(profile, seed, lo, hi), "simulated"
    # With drift, a chunk's rows of the whole range share one random stream: draw the range at once.
    step = hi - lo + 1 if drift > 0 else DAILY_WINDOW_DAYS
    rows: dict[str, int] = defaultdict(int)
    for first in range(lo, hi + 1, step):
        last = min(first + step - 1, hi)
        drops = _daily_tables(future.window(first, last), first, last, drift, profile.chunk_users,
                              member_updates)  # fmt: skip
        for (table, day), combined in sorted(drops.items()):
            lake.write_csv(kkbox.daily_path(table, kkbox.EPOCH + dt.timedelta(days=day)), combined)
            rows[table] += combined.num_rows
    summary = {"profile": profile.name, "seed": seed, "days": [str(start), str(end)], "rows": dict(rows),
               "drift": drift, "member_updates": member_updates, "source": source,
               "seconds": round(time.perf_counter() - started, 2)}  # fmt: skip
    return summary


def _simulated_future(profile: Profile, seed: int, lo: int, hi: int) -> Future:
    """Days lo..hi of every chunk's future, re-simulated (when the lake holds no state for them)."""
    after = kkbox.day_number(kkbox.DUMP_END)
    futures = [
        future_of(simulate_chunk(seed, profile, index), after).window(lo, hi)
        for index in progress(range(chunk_count(profile)), total=chunk_count(profile), desc="synth daily")
    ]
    return Future(
        seed,
        profile.behaviour.listening,
        np.concatenate([f.uid for f in futures]),
        pa.concat_arrays([f.msno_of for f in futures]),
        *({k: np.concatenate([getattr(f, part)[k] for f in futures]) for k in getattr(futures[0], part)}
          for part in ("intervals", "transactions", "members", "known_members")),
    )  # fmt: skip


def _daily_tables(
    future: Future, lo: int, hi: int, drift: float, chunk_users: int, member_share: float = 0.0
) -> dict[tuple[str, int], pa.Table]:
    """Each day's members (new ones, then updates), transactions and user_logs rows, in chunk order
    (drift drawn per chunk)."""
    logs = _log_rows(future, lo, hi)
    table = _logs_table(future, logs)
    if drift > 0 and table.num_rows:
        chunk = logs["uid"] // chunk_users
        cuts = [0, *(np.flatnonzero(np.diff(chunk)) + 1), table.num_rows]
        table = pa.concat_tables(
            [
                inject_drift(table.slice(a, b - a), drift, future.seed + int(chunk[a]))
                for a, b in itertools.pairwise(cuts)
            ]
        )
    log_days = table["date"].to_numpy()
    tx_days, member_days = future.transactions["transaction_date"], future.members["registration_init_time"]
    drops = {}
    for day in range(lo, hi + 1):
        ymd = kkbox.to_yyyymmdd(np.array([day]))[0]
        members = members_table(future, np.flatnonzero(member_days == day))
        if member_share > 0:
            updates = member_updates(future.seed, future.known_members, day, member_share)
            members = pa.concat_tables(
                [members, members_table(future, np.arange(updates["uid"].size), updates)]
            )
        drops[("members", day)] = members
        drops[("transactions", day)] = transactions_table(future, np.flatnonzero(tx_days == day))
        drops[("user_logs", day)] = table.filter(pa.array(log_days == ymd))
    return drops
