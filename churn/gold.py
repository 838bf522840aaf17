"""Gold: labels per cohort month and features as of a date, built per Silver bucket as Dask tasks.

Users never span buckets, so each bucket is an independent task (no shuffle) and no process ever holds
more than one bucket's rows. Outputs are keyed by msno (with the internal user_id alongside):

    gold/labels/cohort=YYYY-MM/part-NNN.parquet      msno, user_id, is_churn, expiry_date
    gold/features/as_of=YYYY-MM-DD/part-NNN.parquet  msno, user_id, one column per feature of SPEC
    .../_manifest.json                               rows, spec hash, the Silver state read, timings

Re-running replaces the same parts (idempotent). The live path (`user_features`) reads one user's rows
from the same Silver bucket and calls the same `build_features`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from typing import Any

import numpy as np
import pyarrow as pa

from churn import kkbox
from churn.compute import run_tasks
from churn.contracts import features_schema
from churn.errors import ChurnError
from churn.features import FEATURE_NAMES, SPEC_HASH, WINDOWS, build_features
from churn.ingest import LAYOUT, STATE, read_silver
from churn.labels import RENEWAL_WINDOW_DAYS, label_cohort, parse_cohort
from churn.lake import Lake
from churn.settings import Settings
from churn.userkey import bucket_of, decode_msno, user_id_of

log = logging.getLogger(__name__)

RELEASED_LABELS = {"2017-02": "bronze/train.csv", "2017-03": "bronze/train_v2.csv"}


def bucket_count(lake: Lake) -> int:
    """How many buckets Silver is laid out in (fixed when Silver was first written)."""
    if not lake.exists(LAYOUT):
        raise ChurnError(f"no Silver under {lake.uri('silver')}: run `churn ingest` first")
    return int(lake.read_json(LAYOUT)["buckets"])


def silver_version(lake: Lake) -> str:
    """A short hash of the Silver state (which sources, which checksums): the data version read."""
    state = lake.read_json(STATE) if lake.exists(STATE) else {}
    digest = {path: entry["checksum"] for path, entry in sorted(state.items())}
    return hashlib.sha256(json.dumps(digest, sort_keys=True).encode()).hexdigest()[:16]


def silver_last_day(lake: Lake, table: str = "transactions") -> dt.date | None:
    """The latest event date of a Silver table, from the Parquet statistics of its parts."""
    import pyarrow.parquet as pq

    spec = kkbox.TABLES[table]
    latest = None
    for part in lake.glob(f"silver/{table}/bucket=*/*.parquet"):
        with lake.open(part) as handle:
            metadata = pq.ParquetFile(handle).metadata
        column = spec.schema.get_field_index(spec.date_column)
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(column).statistics
            if stats is not None and stats.has_min_max:
                latest = stats.max if latest is None else max(latest, stats.max)
    return latest


# -- labels ---------------------------------------------------------------------------------------------
def _label_task(lake_url: str, options: dict[str, Any], bucket: int, cohort: str, prefix: str) -> int:
    lake = Lake(lake_url, options)
    tx = read_silver(lake, "transactions", bucket)
    labels = label_cohort(tx, cohort, key="user_id")
    users = read_silver(lake, "users", bucket).to_pandas().set_index("user_id")["msno"]
    table = pa.table(
        {
            "msno": users.reindex(labels["user_id"]).to_numpy(),
            "user_id": labels["user_id"].to_numpy(),
            "is_churn": labels["is_churn"].to_numpy().astype(np.int8),
            "expiry_date": pa.array(labels["expiry"].to_numpy().astype(np.int32)).cast(pa.date32()),
        }
    )
    lake.write_parquet(f"{prefix}/part-{bucket:03d}.parquet", table, dictionary=False)
    return table.num_rows


def build_labels(lake: Lake, settings: Settings, cohort: str, run_id: str) -> dict[str, Any]:
    """Gold labels of a cohort: the WSDM rule over Silver when Silver reaches 30 days past the month,
    else the released label file for the cohort (train.csv / train_v2.csv: the truth for real data)."""
    started = time.perf_counter()
    _, month_end = parse_cohort(cohort)
    needed = month_end + dt.timedelta(days=RENEWAL_WINDOW_DAYS)
    prefix = f"gold/labels/cohort={cohort}"
    buckets = bucket_count(lake)
    last = silver_last_day(lake)
    lake.remove(prefix)
    if last is not None and last >= needed:
        tasks = [(lake.url, lake.storage_options, b, cohort, prefix) for b in range(buckets)]
        rows = sum(run_tasks(settings, _label_task, tasks))
        source = "wsdm rule over silver/transactions"
    elif cohort in RELEASED_LABELS and lake.exists(RELEASED_LABELS[cohort]):
        released = lake.read_csv(RELEASED_LABELS[cohort])
        user_ids, bad = decode_msno(released["msno"])
        if bad.any():
            raise ChurnError(f"{RELEASED_LABELS[cohort]}: {int(bad.sum())} rows have a malformed msno")
        table = pa.table({"msno": released["msno"], "user_id": user_ids,
                          "is_churn": released["is_churn"].cast(pa.int8())})  # fmt: skip
        lake.write_parquet(f"{prefix}/part-000.parquet", table, dictionary=False)
        rows, source = table.num_rows, RELEASED_LABELS[cohort]
    else:
        raise ChurnError(
            f"cannot label cohort {cohort}: the rule needs transactions up to {needed}, Silver ends {last}, "
            "and no released label file covers it"
        )
    manifest = {
        "cohort": cohort, "rows": rows, "source": source, "silver_version": silver_version(lake),
        "run_id": run_id, "seconds": round(time.perf_counter() - started, 3),
    }  # fmt: skip
    lake.write_json(f"{prefix}/_manifest.json", manifest)
    return manifest


def read_labels(lake: Lake, cohort: str) -> pa.Table:
    """Gold labels of a cohort (built before)."""
    return lake.read_parquet(f"gold/labels/cohort={cohort}")


# -- features ---------------------------------------------------------------------------------------------
def _silver_for(
    lake: Lake, bucket: int, as_of: dt.date, user_id: int | None = None
) -> tuple[pa.Table, pa.Table, pa.Table, pa.Table]:
    """The Silver rows `build_features` needs for one bucket (or one user of it), pruned by date."""
    only_user = [("user_id", "=", user_id)] if user_id is not None else []
    first_log_day = as_of - dt.timedelta(days=max(WINDOWS) - 1)
    members = read_silver(lake, "members", bucket, filters=only_user or None)
    transactions = read_silver(
        lake, "transactions", bucket, filters=[*only_user, ("transaction_date", "<=", as_of)]
    )
    logs = read_silver(
        lake, "user_logs", bucket, filters=[*only_user, ("date", ">=", first_log_day), ("date", "<=", as_of)]
    )
    users = read_silver(lake, "users", bucket, filters=only_user or None)
    return members, transactions, logs, users


def _feature_task(lake_url: str, options: dict[str, Any], bucket: int, as_of: dt.date, prefix: str) -> int:
    lake = Lake(lake_url, options)
    frame = features_schema().validate(build_features(*_silver_for(lake, bucket, as_of), as_of))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    lake.write_parquet(f"{prefix}/part-{bucket:03d}.parquet", table, dictionary=False)
    return len(frame)


def features_prefix(as_of: dt.date) -> str:
    """Lake folder of the Gold features as of a date."""
    return f"gold/features/as_of={as_of.isoformat()}"


def build_gold_features(lake: Lake, settings: Settings, as_of: dt.date, run_id: str) -> dict[str, Any]:
    """Gold features of every user with a transaction on or before `as_of`, one task per bucket."""
    started = time.perf_counter()
    prefix = features_prefix(as_of)
    buckets = bucket_count(lake)
    tasks = [(lake.url, lake.storage_options, b, as_of, prefix) for b in range(buckets)]
    rows = sum(run_tasks(settings, _feature_task, tasks))
    manifest = {
        "as_of": as_of.isoformat(), "rows": rows, "features": list(FEATURE_NAMES), "spec_hash": SPEC_HASH,
        "silver_version": silver_version(lake), "run_id": run_id, "buckets": buckets,
        "seconds": round(time.perf_counter() - started, 3),
    }  # fmt: skip
    lake.write_json(f"{prefix}/_manifest.json", manifest)
    return manifest


def read_features(lake: Lake, as_of: dt.date) -> pa.Table:
    """Gold features as of a date (built before)."""
    return lake.read_parquet(features_prefix(as_of))


def user_features(lake: Lake, msno: str, as_of: dt.date) -> dict[str, Any] | None:
    """The live path: one user's features as of a date from that user's Silver rows (None if unknown)."""
    try:
        user_id = user_id_of(msno)
    except ValueError as error:
        raise ChurnError(str(error)) from None
    bucket = int(bucket_of(np.array([user_id]), bucket_count(lake))[0])
    frame = build_features(*_silver_for(lake, bucket, as_of, user_id), as_of)
    return None if frame.empty else frame.iloc[0].to_dict()


def _fresh(lake: Lake, manifest_path: str, **expected: str) -> bool:
    if not lake.exists(manifest_path):
        return False
    manifest = lake.read_json(manifest_path)
    return all(manifest.get(key) == value for key, value in expected.items())


def ensure_labels(lake: Lake, settings: Settings, cohort: str, run_id: str) -> bool:
    """Build a cohort's labels unless they were built from the current Silver; True when built."""
    if _fresh(lake, f"gold/labels/cohort={cohort}/_manifest.json", silver_version=silver_version(lake)):
        return False
    log.info("building labels of cohort %s", cohort)
    build_labels(lake, settings, cohort, run_id)
    return True


def ensure_features(lake: Lake, settings: Settings, as_of: dt.date, run_id: str) -> bool:
    """Build the features as of a date unless built from the current Silver and feature spec (a new
    daily drop may add late rows dated on or before D); True when built."""
    manifest = f"{features_prefix(as_of)}/_manifest.json"
    if _fresh(lake, manifest, silver_version=silver_version(lake), spec_hash=SPEC_HASH):
        return False
    log.info("building features as of %s", as_of)
    build_gold_features(lake, settings, as_of, run_id)
    return True


def parse_date(text: str, flag: str) -> dt.date:
    """YYYY-MM-DD -> date, with an error naming the flag."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ChurnError(f"{flag} must be a date like 2017-03-31 (got {text!r})") from None
