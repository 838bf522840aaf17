"""The validation gate: suites pass on generated data, each targeted corruption fails by name."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from churn.data.ingest import ingest
from churn.data.silver import read_silver
from churn.features.gold import build_gold_features, features_prefix, features_schema, read_features
from churn.features.spec import FEATURE_NAMES
from churn.lake import Lake
from churn.quality.validation import ValidationFailed, validate
from churn.settings import Settings
from churn.synth.profiles import get_profile
from churn.synth.writer import write_dump

AS_OF = dt.date(2017, 3, 31)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated lake, ingested, with Gold features as of 2017-03-31."""
    folder = tmp_path_factory.mktemp("validation") / "lake"
    lake = Lake(str(folder))
    write_dump(lake, get_profile("tiny", users=500, days=150), seed=31)
    settings = Settings(lake_url=lake.url, silver_buckets=4)
    ingest(lake, settings, "dump")
    build_gold_features(lake, settings, AS_OF, "features")
    return folder


@pytest.fixture
def lake(pristine: Path, tmp_path: Path) -> Lake:
    """A private copy of the pristine lake, free to corrupt."""
    shutil.copytree(pristine, tmp_path / "lake")
    return Lake(str(tmp_path / "lake"))


def test_suites_pass_on_generated_data_and_publish_data_docs(lake: Lake) -> None:
    silver = validate(lake, "silver", AS_OF, "run-1")
    assert silver.critical == [] and silver.evaluated > 20
    assert set(silver.rows) == {"members", "transactions", "user_logs"}
    gold = validate(lake, "gold", AS_OF, "run-2")
    assert gold.critical == [] and gold.rows["features"] > 100
    for stage in ("silver", "gold"):
        index = lake.read_text(f"reports/validation/{stage}/2017-03-31/index.html")
        assert "<html" in index.lower() and f"{stage}." in index
        summary = lake.read_json(f"reports/validation/{stage}/2017-03-31/summary.json")
        assert summary["passed"] is True
    assert lake.read_json("reports/validation/silver/_row_counts.json") == silver.rows


def add_silver_part(lake: Lake, table: str, rows: pa.Table) -> None:
    lake.write_parquet(f"silver/{table}/bucket=000/part-corrupt.parquet", rows)


def failure_of(lake: Lake, stage: str, as_of: dt.date) -> str:
    with pytest.raises(ValidationFailed) as caught:
        validate(lake, stage, as_of, "run")
    assert lake.exists(f"reports/validation/{stage}/{as_of}/index.html")  # the docs say why
    return str(caught.value)


def test_duplicated_user_days_fail(lake: Lake) -> None:
    add_silver_part(lake, "user_logs", read_silver(lake, "user_logs", 0).slice(0, 3))
    message = failure_of(lake, "silver", AS_OF)
    expected = "silver.user_logs: expect_compound_columns_to_be_unique(user_id,date) [critical] 6 unexpected"
    assert expected in message  # the 3 copies and their 3 originals


def test_values_out_of_range_fail(lake: Lake) -> None:
    bad = read_silver(lake, "transactions", 0).slice(0, 2)
    bad = bad.set_column(bad.schema.get_field_index("is_cancel"), "is_cancel", pa.array([5, 5], pa.int8()))
    add_silver_part(lake, "transactions", bad)
    message = failure_of(lake, "silver", AS_OF)
    expected = (
        "silver.transactions: expect_column_values_to_be_in_set(is_cancel) [critical] "
        "2 unexpected, e.g. [5, 5]"
    )
    assert expected in message


def test_stale_date_fails_freshness(lake: Lake) -> None:
    message = failure_of(lake, "silver", dt.date(2017, 4, 2))
    assert "silver.user_logs: expect_column_max_to_be_between(date) [critical]" in message


def test_null_keys_fail(lake: Lake) -> None:
    prefix = features_prefix(AS_OF)
    frame = read_features(lake, AS_OF).to_pandas()
    frame.loc[frame.index[:2], "msno"] = None
    lake.remove(prefix)
    lake.write_parquet(f"{prefix}/part-000.parquet", frame)
    message = failure_of(lake, "gold", AS_OF)
    assert "gold.features: expect_column_values_to_not_be_null(msno) [critical] 2 unexpected" in message


def test_all_null_feature_fails(lake: Lake) -> None:
    prefix = features_prefix(AS_OF)
    frame = read_features(lake, AS_OF).to_pandas()
    frame["secs_30d"] = np.nan
    lake.remove(prefix)
    lake.write_parquet(f"{prefix}/part-000.parquet", frame)
    message = failure_of(lake, "gold", AS_OF)
    assert (
        "gold.features: expect_column_unique_value_count_to_be_between(secs_30d) [critical] observed 0"
        in message
    )


def test_rows_lost_since_the_last_passing_run_fail(lake: Lake) -> None:
    validate(lake, "silver", AS_OF, "first")
    lake.remove("silver/members/bucket=000")
    message = failure_of(lake, "silver", AS_OF)
    assert "silver.members: expect_table_row_count_to_be_between [critical]" in message


def test_features_contract_names_the_missing_or_mistyped_column(lake: Lake) -> None:
    frame = read_features(lake, AS_OF).to_pandas()
    with pytest.raises(Exception, match="secs_7d"):
        features_schema().validate(frame.drop(columns=["secs_7d"]))
    frame["age"] = frame["age"].astype(str)
    with pytest.raises(Exception, match="age"):
        features_schema().validate(frame)
    assert list(features_schema().columns) == ["msno", "user_id", *FEATURE_NAMES]


def bounded_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """From here on, every batch validation reads is recorded as (part, rows), at most 64 rows per read,
    and whole-table reads (Lake.read_parquet, which read_silver and read_features use) fail the test."""
    import churn.quality.streaming_checks as checks

    seen: list[tuple[str, int]] = []
    original = checks.batches

    def recorded(lake: Lake, path: str, columns: list[str]):  # type: ignore[no-untyped-def]
        for batch in original(lake, path, columns):
            seen.append((path, batch.num_rows))
            yield batch

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("validation read a whole table")

    monkeypatch.setattr(checks, "MAX_BATCH_ROWS", 64)
    monkeypatch.setattr(checks, "batches", recorded)
    monkeypatch.setattr(Lake, "read_parquet", refused)
    return seen


def test_validation_never_holds_more_than_a_batch_of_rows(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = bounded_reads(monkeypatch)
    silver = validate(lake, "silver", AS_OF, "bounded")
    gold = validate(lake, "gold", AS_OF, "bounded")
    assert silver.critical == [] and gold.critical == []
    assert reads and max(rows for _, rows in reads) <= 64
    # more rows than one batch were checked, so the bound was exercised
    assert silver.rows["user_logs"] > 64 * 10 and gold.rows["features"] > 64


def test_a_second_run_reads_only_the_parts_added_since(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    validate(lake, "silver", AS_OF, "first")
    logs = read_silver(lake, "user_logs", 1).to_pandas()
    rows = pa.Table.from_pandas(logs.drop_duplicates("user_id").head(5), preserve_index=False)
    late = rows.set_column(rows.schema.get_field_index("date"), "date",
                           pa.array([dt.date(2017, 4, 1)] * 5, pa.date32()))  # fmt: skip
    lake.write_parquet("silver/user_logs/bucket=001/part-daily-user_logs-2017-04-01.parquet", late)
    reads = bounded_reads(monkeypatch)
    report = validate(lake, "silver", AS_OF, "second")
    assert report.critical == []
    assert {path for path, _ in reads} == {
        "silver/user_logs/bucket=001/part-daily-user_logs-2017-04-01.parquet"
    }


def test_duplicates_found_across_batch_boundaries(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    logs = read_silver(lake, "user_logs", 2)
    doubled = pa.concat_tables([logs, logs.slice(60, 10)]).sort_by(
        [("user_id", "ascending"), ("date", "ascending")]
    )
    lake.remove("silver/user_logs/bucket=002")
    lake.write_parquet("silver/user_logs/bucket=002/part-dump-user_logs.parquet", doubled)
    bounded_reads(monkeypatch)  # runs of copies straddle 64-row batches
    message = failure_of(lake, "silver", AS_OF)
    assert (
        "silver.user_logs: expect_compound_columns_to_be_unique(user_id,date) [critical] 20 unexpected"
        in message
    )


def test_an_unsorted_part_is_still_checked_exactly(lake: Lake) -> None:
    logs = read_silver(lake, "user_logs", 3)
    shuffled = pa.concat_tables([logs.slice(5, 3), logs]).take(
        pa.array(np.random.default_rng(1).permutation(logs.num_rows + 3))
    )
    lake.remove("silver/user_logs/bucket=003")
    lake.write_parquet("silver/user_logs/bucket=003/part-dump-user_logs.parquet", shuffled)
    message = failure_of(lake, "silver", AS_OF)
    assert "expect_compound_columns_to_be_unique(user_id,date) [critical] 6 unexpected" in message


def test_a_member_delivered_twice_fails_uniqueness(lake: Lake) -> None:
    add_silver_part(lake, "members", read_silver(lake, "members", 0).slice(0, 2))
    message = failure_of(lake, "silver", AS_OF)
    assert "silver.members: expect_column_values_to_be_unique(user_id) [critical] 4 unexpected" in message
