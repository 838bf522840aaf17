"""What the chunks' future holds, kept by the dump so daily drops need not re-simulate every chunk.

A daily drop needs, of each simulated chunk, only what lies after the dump: the membership intervals that
reach past 2017-03-31 (listening is drawn per user-day from them), the transactions and member rows dated
after it, the dump's member rows of those users (what a drop's member update changes) and their msno.
The dump writes these as Parquet under `synth/state/` (rows in chunk order, so a drop built from them is
the one re-simulating gives, byte for byte) and a manifest last; a drop uses them only when the manifest
names the same seed and profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from churn.lake import Lake
from churn.synth.profiles import Profile

if TYPE_CHECKING:
    from churn.synth.writer import Chunk

STATE_PREFIX = "synth/state"
MANIFEST = f"{STATE_PREFIX}/manifest.json"
FORMAT = 2  # bump when what is kept, or how drops are drawn from it, changes


def _schema(*columns: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema(list(columns))


_I32 = pa.int32()
SCHEMAS: dict[str, pa.Schema] = {
    "users": _schema(("uid", pa.int64()), ("msno", pa.string())),
    "intervals": _schema(
        ("uid", pa.int64()), ("start", _I32), ("end", _I32), ("decision", _I32), ("intent", pa.float64())
    ),
    "transactions": _schema(
        ("uid", pa.int64()),
        *((name, _I32) for name in ("payment_method_id", "payment_plan_days", "plan_list_price")),
        ("actual_amount_paid", _I32),
        ("is_auto_renew", pa.int8()),
        ("transaction_date", _I32),
        ("membership_expire_date", _I32),
        ("is_cancel", pa.int8()),
    ),
    "members": _schema(
        ("uid", pa.int64()),
        ("city", _I32),
        ("bd", _I32),
        ("gender", pa.string()),
        ("registered_via", _I32),
        ("registration_init_time", _I32),
    ),
}
SCHEMAS["known_members"] = SCHEMAS["members"]  # the dump's member rows of the future's users
# The day column that places a row of each table in time (intervals overlap a window instead).
_DATE = {"transactions": "transaction_date", "members": "registration_init_time"}


@dataclass
class Future:
    """Rows of one or more chunks (in chunk order) from which daily drops are drawn; the tables of the
    writer read it like a simulated chunk (`seed`, `listening`, `intervals`, `transactions`, `members`,
    `msno`)."""

    seed: int
    listening: float
    uid: np.ndarray  # sorted user indices with their msno, for every user below
    msno_of: pa.Array
    intervals: dict[str, np.ndarray]
    transactions: dict[str, np.ndarray]
    members: dict[str, np.ndarray]
    known_members: dict[str, np.ndarray]  # member rows of these users as of the dump (never windowed)

    def msno(self, uid: np.ndarray) -> pa.Array:
        """The msno strings of global user indices."""
        return self.msno_of.take(pa.array(np.searchsorted(self.uid, uid), pa.int64()))

    def window(self, lo: int, hi: int) -> Future:
        """Only the rows that matter for days lo..hi (day numbers), in the same order."""
        iv = self.intervals
        intervals = _take(iv, (iv["end"] >= lo) & (iv["start"] <= hi))
        transactions = _within(self.transactions, "transaction_date", lo, hi)
        members = _within(self.members, "registration_init_time", lo, hi)
        wanted = np.concatenate([intervals["uid"], transactions["uid"], members["uid"]])
        known = _take(self.known_members, np.isin(self.known_members["uid"], wanted))  # as `read_future`
        return Future(
            self.seed, self.listening, self.uid, self.msno_of, intervals, transactions, members, known
        )


def _take(columns: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in columns.items()}


def _within(columns: dict[str, np.ndarray], date: str, lo: int, hi: int) -> dict[str, np.ndarray]:
    return _take(columns, (columns[date] >= lo) & (columns[date] <= hi))


def future_of(chunk: Chunk, after: int) -> Future:
    """The part of a simulated chunk that lies after day `after` (a day number): what drops draw from."""
    iv, tx, members = chunk.timeline.intervals, chunk.transactions, chunk.members
    intervals = _take(iv, iv["end"] > after)
    transactions = _take(tx, tx["transaction_date"] > after)
    rows = {k: v for k, v in members.items() if k != "has_row"}
    member_rows = _take(rows, members["has_row"] & (members["registration_init_time"] > after))
    uid = np.unique(np.concatenate([intervals["uid"], transactions["uid"], member_rows["uid"]]))
    known = _take(
        rows,
        members["has_row"] & (members["registration_init_time"] <= after) & np.isin(members["uid"], uid),
    )
    return Future(chunk.seed, chunk.listening, uid, chunk.msno(uid), intervals, transactions, member_rows,
                  known)  # fmt: skip


def tables(future: Future) -> dict[str, pa.Table]:
    """A future as the state's Parquet tables."""
    columns = {
        "users": {"uid": future.uid, "msno": future.msno_of},
        "intervals": future.intervals,
        "transactions": future.transactions,
        "members": future.members,
        "known_members": future.known_members,
    }
    return {
        name: pa.table([_array(columns[name][f.name], f.type) for f in schema], schema=schema)
        for name, schema in SCHEMAS.items()
    }


def _array(values: np.ndarray | pa.Array, kind: pa.DataType) -> pa.Array:
    return values.cast(kind) if isinstance(values, pa.Array) else pa.array(values, kind)


def manifest(profile: Profile, seed: int) -> dict[str, object]:
    """What a state was made from: drops use it only for exactly this."""
    return {"format": FORMAT, "seed": seed, "profile": asdict(profile)}


@contextmanager
def state_writer(lake: Lake, profile: Profile, seed: int) -> Iterator[StateWriter]:
    """Write a new state (the old one goes first): one Parquet file per table, a row group per chunk,
    each file appearing only when complete, and the manifest last, so a failed dump leaves none."""
    lake.remove(STATE_PREFIX)
    with ExitStack() as stack:
        writers = {}
        for name, schema in SCHEMAS.items():
            handle = stack.enter_context(lake.open_atomic(f"{STATE_PREFIX}/{name}.parquet"))
            writer = pq.ParquetWriter(handle, schema, compression="zstd")
            stack.callback(writer.close)  # runs before the file is closed and renamed
            writers[name] = writer
        yield StateWriter(writers)
    lake.write_json(MANIFEST, manifest(profile, seed))


@dataclass
class StateWriter:
    """Appends each chunk's future (in chunk order) to the state files."""

    writers: dict[str, pq.ParquetWriter]

    def write(self, parts: dict[str, pa.Table]) -> None:
        """Append one chunk's state tables."""
        for name, table in parts.items():
            self.writers[name].write_table(table)


def read_future(lake: Lake, profile: Profile, seed: int, lo: int, hi: int) -> Future | None:
    """The state's rows for days lo..hi (day numbers), or None when there is no state for this seed and
    profile (then the drop re-simulates). Read batch by batch, keeping only the window's rows."""
    if not lake.exists(MANIFEST) or lake.read_json(MANIFEST) != _jsonable(manifest(profile, seed)):
        return None
    columns: dict[str, dict[str, np.ndarray]] = {}
    for name in ("intervals", "transactions", "members"):
        kept = []
        for batch in _batches(lake, name):
            table = pa.Table.from_batches([batch])
            if name == "intervals":
                mask = (table["end"].to_numpy() >= lo) & (table["start"].to_numpy() <= hi)
            else:
                day = table[_DATE[name]].to_numpy()
                mask = (day >= lo) & (day <= hi)
            kept.append(table.filter(pa.array(mask)))
        columns[name] = _numpy(pa.concat_tables(kept) if kept else SCHEMAS[name].empty_table())
    wanted = np.unique(np.concatenate([columns[n]["uid"] for n in columns]))
    users = [
        table.filter(pa.array(np.isin(table["uid"].to_numpy(), wanted)))
        for table in (pa.Table.from_batches([b]) for b in _batches(lake, "users"))
    ]
    user_table = pa.concat_tables(users) if users else SCHEMAS["users"].empty_table()
    known = [
        table.filter(pa.array(np.isin(table["uid"].to_numpy(), wanted)))
        for table in (pa.Table.from_batches([b]) for b in _batches(lake, "known_members"))
    ]
    return Future(
        seed,
        profile.behaviour.listening,
        user_table["uid"].to_numpy(),  # ascending: chunk by chunk, each chunk's users sorted
        user_table["msno"].combine_chunks(),
        columns["intervals"],
        columns["transactions"],
        columns["members"],
        _numpy(pa.concat_tables(known) if known else SCHEMAS["known_members"].empty_table()),
    )


def _batches(lake: Lake, name: str) -> Iterator[pa.RecordBatch]:
    with lake.open(f"{STATE_PREFIX}/{name}.parquet") as handle:
        yield from pq.ParquetFile(handle).iter_batches(batch_size=1 << 20)


def _numpy(table: pa.Table) -> dict[str, np.ndarray]:
    """Columns as numpy: integers widened to int64 (as simulated), strings as objects."""
    out = {}
    for name in table.column_names:
        values = table[name].to_numpy(zero_copy_only=False)
        out[name] = values.astype(np.int64) if np.issubdtype(values.dtype, np.integer) else values
    return out


def _jsonable(payload: dict[str, object]) -> object:
    """The payload as it reads back from JSON (tuples become lists, and so on)."""
    import json

    return json.loads(json.dumps(payload, sort_keys=True, default=str))
