"""Gold: labels per cohort month and features as of a date, built per Silver bucket as Dask tasks.

Users never span buckets, so each bucket is an independent task (no shuffle) and no process ever holds
more than one bucket's rows. Outputs are keyed by msno (with the internal user_id alongside):

    gold/labels/cohort=YYYY-MM/part-NNN.parquet      msno, user_id, is_churn, expiry_date (the rule's;
                                                     null for released labels the rule cannot place)
    gold/features/as_of=YYYY-MM-DD/part-NNN.parquet  msno, user_id, one column per feature of SPEC
    .../_manifest.json                               rows, spec hash, the Silver state read, timings

Re-running replaces the same parts (idempotent). The live path (`churn.scores.live.user_features`) reads
one user's rows of the same Silver bucket through the same `features.inputs.feature_inputs` and calls
the same `build_features`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc

from churn.compute import run_tasks
from churn.data import kkbox
from churn.data.silver import (
    bucket_count,
    read_silver,
    require_silver_covers,
    silver_first_day,
    silver_last_day,
    silver_version,
    user_bucket,
)
from churn.data.userkey import decode_msno
from churn.errors import ChurnError
from churn.features.inputs import feature_inputs
from churn.features.labels import (
    RENEWAL_WINDOW_DAYS,
    label_cohort,
    parse_cohort,
    released_file,
    rule_agreement,
)
from churn.features.spec import FEATURE_NAMES, SPEC_HASH, build_features
from churn.lake import Lake
from churn.logs import Progress
from churn.settings import Settings

log = logging.getLogger(__name__)


# -- labels ---------------------------------------------------------------------------------------------
def _label_task(
    lake_url: str, options: dict[str, Any], bucket: int, cohort: str, prefix: str | None
) -> pa.Table:
    """The rule's labels of one bucket (user_id, is_churn, expiry_date), written as a Gold part when
    `prefix` is set."""
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
    if prefix is not None:
        lake.write_parquet(f"{prefix}/part-{bucket:03d}.parquet", table, dictionary=False)
    return table.select(["user_id", "is_churn", "expiry_date"])


class LabelFileError(ChurnError):
    """A released label file that is not `msno,is_churn` rows with a well-formed, unique msno and 0/1."""


def _released_labels(lake: Lake, path: str) -> pa.Table:
    """A released label file (msno,is_churn) as Gold rows (msno, user_id, is_churn).

    Checked before anything is written, since it overrides the rule for its cohort: the header, then per
    row an is_churn of 0 or 1 (empty, 2 or text would be stored as a label or a null), a well-formed and
    unique msno (a repeat would label a user twice). The first bad row is named by file line (the header
    is line 1), field and value, with the count of rows failing the same check."""
    import pyarrow.csv as pacsv

    expected = ",".join(kkbox.LABELS.column_names)
    with lake.open(path, "rb") as handle:
        header = handle.readline().decode("utf-8", "replace").rstrip("\r\n").lstrip("\ufeff")
    if header != expected:
        raise LabelFileError(f"{lake.uri(path)} line 1: header is {header[:200]!r}, expected {expected!r}")
    uneven: list[Any] = []  # rows with too many or too few fields, numbered by file line

    def keep_aside(row: Any) -> str:
        uneven.append(row)
        return "skip"

    with lake.open(path, "rb") as handle:
        rows = pacsv.read_csv(
            handle,
            read_options=pacsv.ReadOptions(
                column_names=kkbox.LABELS.column_names, skip_rows=1, use_threads=False
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=keep_aside),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in kkbox.LABELS.column_names},
                strings_can_be_null=False,
            ),
        )
    if uneven:
        raise LabelFileError(
            f"{lake.uri(path)} line {uneven[0].number}: {uneven[0].actual_columns} fields, expected "
            f"msno,is_churn ({len(uneven)} such rows); nothing written"
        )
    msno = rows["msno"].combine_chunks()
    churn = rows["is_churn"].to_numpy(zero_copy_only=False)
    user_ids, bad_msno = decode_msno(msno)
    names = msno.to_numpy(zero_copy_only=False)
    _, first_seen, inverse = np.unique(names, return_index=True, return_inverse=True)
    repeat = first_seen[inverse] != np.arange(names.size)
    problems = [
        (~np.isin(churn, ["0", "1"]), lambda i: f"is_churn is {churn[i]!r}, expected 0 or 1"),
        (bad_msno, lambda i: f"msno {names[i][:60]!r} is not a 44-character KKBox id"),
        (repeat, lambda i: f"msno {names[i]} repeats line {first_seen[inverse[i]] + 2}"),
    ]
    for failing, describe in problems:
        if failing.any():
            first = int(np.flatnonzero(failing)[0])
            raise LabelFileError(
                f"{lake.uri(path)} line {first + 2}: {describe(first)} ({int(failing.sum())} such rows); "
                "nothing written"
            )
    return pa.table({"msno": msno, "user_id": user_ids,
                     "is_churn": pa.array(churn.astype(np.int8))})  # fmt: skip


def released_version(lake: Lake, cohort: str) -> str:
    """Identity (size and stamp) of the cohort's released label file, "" when there is none: labels
    built before the file arrived (or changed) are rebuilt."""
    path = released_file(cohort)
    return f"{lake.size(path)}:{lake.stamp(path)}" if path and lake.exists(path) else ""


def _with_rule_expiry(released: pa.Table, rule: pa.Table | None) -> pa.Table:
    """Released labels with the expiry the rule measures the gap from, for the users of the rule's
    cohort; null for the others and when the rule cannot run (Silver ends before the renewal window)."""
    expiry = pa.nulls(released.num_rows, pa.date32())
    if rule is not None:
        at = pc.index_in(released["user_id"], value_set=rule["user_id"].combine_chunks())
        expiry = pc.take(rule["expiry_date"].combine_chunks(), at)
    return released.append_column("expiry_date", expiry)


def build_labels(lake: Lake, settings: Settings, cohort: str, run_id: str) -> dict[str, Any]:
    """Gold labels of a cohort: the released label file where one covers the cohort (train.csv:
    2017-02, train_v2.csv: 2017-03; the truth the challenge scored against), else the WSDM rule over
    Silver, which needs transactions up to 30 days past the month. Where both are possible the manifest
    records the rule's agreement with the released file on the users both label."""
    started = time.perf_counter()
    _, month_end = parse_cohort(cohort)
    needed = month_end + dt.timedelta(days=RENEWAL_WINDOW_DAYS)
    prefix = labels_prefix(cohort)
    buckets = bucket_count(lake)
    last = silver_last_day(lake)
    path = released_file(cohort)
    released = _released_labels(lake, path) if path and lake.exists(path) else None
    rule_possible = last is not None and last >= needed
    if released is None and not rule_possible:
        raise ChurnError(
            f"cannot label cohort {cohort}: the rule needs transactions up to {needed}, Silver ends {last}, "
            "and no released label file covers it"
        )
    log.info("building labels of cohort %s", cohort)
    lake.remove(prefix)
    rule = None
    if rule_possible:
        tasks = [
            (lake.url, lake.storage_options, b, cohort, None if released else prefix) for b in range(buckets)
        ]
        with Progress(f"labels of cohort {cohort}", buckets, "buckets") as done:
            parts = run_tasks(settings, _label_task, tasks, lambda _, part: done.advance(rows=part.num_rows))
        rule = pa.concat_tables(parts)
    extra: dict[str, Any] = {}
    if released is not None:
        lake.write_parquet(f"{prefix}/part-000.parquet", _with_rule_expiry(released, rule), dictionary=False)
        rows, source = released.num_rows, path
        extra["rule_agreement"] = None if rule is None else rule_agreement(
            rule["user_id"].to_numpy(), rule["is_churn"].to_numpy(),
            released["user_id"].to_numpy(), released["is_churn"].to_numpy(),
        )  # fmt: skip
    else:
        assert rule is not None  # no released file, so the rule was possible (checked above)
        rows, source = rule.num_rows, "wsdm rule over silver/transactions"
    manifest = {
        "cohort": cohort, "rows": rows, "source": source, **extra, "silver_version": silver_version(lake),
        "released_version": released_version(lake, cohort), "run_id": run_id,
        "seconds": round(time.perf_counter() - started, 3),
    }  # fmt: skip
    lake.write_json(f"{prefix}/_manifest.json", manifest)
    return manifest


def read_labels(lake: Lake, cohort: str) -> pa.Table:
    """Gold labels of a cohort (built before)."""
    return lake.read_parquet(labels_prefix(cohort))


# -- features ---------------------------------------------------------------------------------------------


@cache
def features_schema() -> pandera.DataFrameSchema:
    """The contract of a feature frame at the Gold boundary (after the build, before training and scoring):
    exactly the spec's columns in order, float features (missing allowed), one row per user."""
    columns = {
        "msno": pandera.Column(str, pandera.Check.str_length(44, 44), unique=True),
        "user_id": pandera.Column("int64", unique=True),
        **{name: pandera.Column("float64", nullable=True) for name in FEATURE_NAMES},
    }
    return pandera.DataFrameSchema(columns, strict=True, ordered=True, name="gold.features")


def _feature_task(
    lake_url: str,
    options: dict[str, Any],
    bucket: int,
    as_of: dt.date,
    prefix: str,
    logs_from: dt.date | None,
) -> int:
    lake = Lake(lake_url, options)
    frame = build_features(*feature_inputs(lake, bucket, as_of), as_of, logs_from=logs_from)
    frame = features_schema().validate(frame)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    lake.write_parquet(f"{prefix}/part-{bucket:03d}.parquet", table, dictionary=False)
    return len(frame)


def features_prefix(as_of: dt.date) -> str:
    """Lake folder of the Gold features as of a date."""
    return f"gold/features/as_of={as_of.isoformat()}"


def build_gold_features(lake: Lake, settings: Settings, as_of: dt.date, run_id: str) -> dict[str, Any]:
    """Gold features of every user with a transaction on or before `as_of`, one task per bucket; a date
    outside Silver is refused before anything is written (SilverRangeError). Listening windows that
    start before Silver's first user-log day are missing (see `churn.features.spec.uncovered_features`)."""
    started = time.perf_counter()
    prefix = features_prefix(as_of)
    buckets = bucket_count(lake)
    require_silver_covers(lake, as_of, "features as of")
    log.info("building features as of %s", as_of)
    logs_from = silver_first_day(lake, "user_logs")
    tasks = [(lake.url, lake.storage_options, b, as_of, prefix, logs_from) for b in range(buckets)]
    with Progress(f"features as of {as_of}", buckets, "buckets") as done:
        rows = sum(run_tasks(settings, _feature_task, tasks, lambda _, users: done.advance(rows=users)))
    manifest = {
        "as_of": as_of.isoformat(), "rows": rows, "features": list(FEATURE_NAMES), "spec_hash": SPEC_HASH,
        "logs_from": logs_from.isoformat() if logs_from else None,
        "silver_version": silver_version(lake), "run_id": run_id, "buckets": buckets,
        "seconds": round(time.perf_counter() - started, 3),
    }  # fmt: skip
    lake.write_json(f"{prefix}/_manifest.json", manifest)
    return manifest


def read_features(lake: Lake, as_of: dt.date) -> pa.Table:
    """Gold features as of a date (built before)."""
    return lake.read_parquet(features_prefix(as_of))


def read_user_features(lake: Lake, as_of: dt.date, msno: str) -> pd.DataFrame | None:
    """One user's Gold features as of a date, read from the one bucket part that holds them (the API's
    reasons for a stored score); None when the date's features or the user are not there."""
    try:
        _, bucket = user_bucket(lake, msno)
    except ValueError:
        return None
    part = f"{features_prefix(as_of)}/part-{bucket:03d}.parquet"
    if not lake.exists(part):
        return None
    table = lake.read_parquet_where(part, [("msno", "=", msno)])
    return None if table.num_rows == 0 else table.to_pandas()


def _fresh(lake: Lake, manifest_path: str, **expected: str) -> bool:
    if not lake.exists(manifest_path):
        return False
    manifest = lake.read_json(manifest_path)
    return all(manifest.get(key) == value for key, value in expected.items())


def labels_prefix(cohort: str) -> str:
    """Lake folder of a cohort's Gold labels."""
    return f"gold/labels/cohort={cohort}"


def labels_manifest(lake: Lake, cohort: str) -> dict[str, Any]:
    """The manifest of a cohort's labels build (built before)."""
    return lake.read_json(f"{labels_prefix(cohort)}/_manifest.json")


def ensure_labels(lake: Lake, settings: Settings, cohort: str, run_id: str, *, force: bool = False) -> bool:
    """Build a cohort's labels unless they were built from the current Silver (always with `force`);
    True when built."""
    manifest = f"{labels_prefix(cohort)}/_manifest.json"
    if not force and _fresh(
        lake, manifest, silver_version=silver_version(lake), released_version=released_version(lake, cohort)
    ):
        return False
    build_labels(lake, settings, cohort, run_id)
    return True


def features_manifest(lake: Lake, as_of: dt.date) -> dict[str, Any] | None:
    """The manifest of the date's features build (its `run_id` names the build), None before any."""
    path = f"{features_prefix(as_of)}/_manifest.json"
    return lake.read_json(path) if lake.exists(path) else None


def _features_problem(lake: Lake, manifest: dict[str, Any] | None, run_id: str | None) -> str | None:
    """Why a features build is not the one to use (None when it is): no build, another build than
    `run_id` (any build when None), or a build from another Silver state or feature spec."""
    if manifest is None:
        return "found no build"
    if run_id is not None and manifest.get("run_id") != run_id:
        return f"found build {manifest.get('run_id')}"
    current = silver_version(lake)
    if manifest.get("silver_version") != current:
        return (f"found build {manifest.get('run_id')} made from Silver {manifest.get('silver_version')}, "
                f"but Silver is now {current} (data was ingested since)")  # fmt: skip
    if manifest.get("spec_hash") != SPEC_HASH:
        return (f"found build {manifest.get('run_id')} made for feature spec {manifest.get('spec_hash')}, "
                f"but this code builds spec {SPEC_HASH}")  # fmt: skip
    return None


class FeaturesBuildError(ChurnError):
    """The date's features are not the build the caller was told to use, or that build is stale."""


def require_features_build(lake: Lake, as_of: dt.date, run_id: str) -> dict[str, Any]:
    """The manifest of features build `run_id` as of a date, which must be the date's current build and
    fresh for the current Silver and feature spec; else FeaturesBuildError, naming the date, both builds
    and what to run. Whoever was told which build was validated checks it here: never a rebuild, which
    would use features no one validated; the remedy is a new run that builds, validates and uses them."""
    manifest = features_manifest(lake, as_of)
    problem = _features_problem(lake, manifest, run_id)
    if problem or manifest is None:
        raise FeaturesBuildError(
            f"features as of {as_of}: expected build {run_id} (the one validated), {problem}. Build, "
            f"validate and score again: rerun the whole nightly run of {as_of} (clear all its tasks), or "
            f"by hand `churn features --as-of {as_of}`, `churn validate --stage gold --as-of {as_of}`, "
            f"then `churn score --date {as_of}`"
        )
    return manifest


def ensure_features(
    lake: Lake, settings: Settings, as_of: dt.date, run_id: str, *, force: bool = False
) -> bool:
    """Build the features as of a date unless built from the current Silver and feature spec (a new
    daily drop may add late rows dated on or before D; always with `force`); True when built. The
    build's id is then the `run_id` of `features_manifest`."""
    if not force and _features_problem(lake, features_manifest(lake, as_of), None) is None:
        return False
    build_gold_features(lake, settings, as_of, run_id)
    return True


def parse_date(text: str, name: str) -> dt.date:
    """YYYY-MM-DD -> date, with an error naming the parameter."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ChurnError(f"{name} must be a date like 2017-03-31 (got {text!r})") from None
