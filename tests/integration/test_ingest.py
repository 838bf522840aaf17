"""Bronze -> Silver: typed and bucketed output, idempotent reruns, quarantine of bad rows, clear errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from churn.data import kkbox
from churn.data.ingest import IngestError, ingest
from churn.data.silver import read_silver, silver_parts
from churn.data.userkey import bucket_of, decode_msno
from churn.lake import Lake
from churn.settings import Settings
from churn.synth.profiles import get_profile
from churn.synth.writer import write_daily, write_dump

SMALL = get_profile("tiny", users=400, days=120)
TX_HEADER = ",".join(kkbox.TRANSACTIONS.column_names)
GOOD_MSNO = "waLDQMmcOu2jLDaV1ddDkgCrB/jl6sD66Xzs0Vqax1Y="


def settings_for(lake: Lake, **overrides: object) -> Settings:
    return Settings(lake_url=lake.url, silver_buckets=8, dask_workers=2, **overrides)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    """A local lake holding a small generated dump."""
    lake = Lake(str(tmp_path / "lake"))
    write_dump(lake, SMALL, seed=5)
    return lake


def bronze_rows(lake: Lake, *names: str) -> pd.DataFrame:
    frames = [pd.read_csv(lake.path(f"bronze/{n}"), dtype={"msno": str, "gender": str}, keep_default_na=False)
              for n in names]  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_dump_becomes_typed_bucketed_silver(lake: Lake) -> None:
    report = ingest(lake, settings_for(lake), "run-1")
    tables = report.summary()["tables"]
    tx_in = bronze_rows(lake, "transactions.csv", "transactions_v2.csv")
    assert tables["transactions"]["rows_in"] == len(tx_in)
    assert tables["transactions"]["duplicates"] == int(tx_in.duplicated().sum()) > 0
    assert tables["transactions"]["rows_out"] == len(tx_in.drop_duplicates())
    assert tables["user_logs"]["rows_out"] == len(bronze_rows(lake, "user_logs.csv", "user_logs_v2.csv"))
    for table, spec in kkbox.TABLES.items():
        silver = read_silver(lake, table)
        assert silver.schema.equals(spec.schema), table
        assert tables[table]["quarantined"] == 0
    logs = read_silver(lake, "user_logs")
    assert logs["date"].type == pa.date32() and logs["num_25"].type == pa.int32()
    users = read_silver(lake, "users")
    key, bad = decode_msno(users["msno"])
    assert not bad.any() and (key == users["user_id"].to_numpy()).all()
    assert users.num_rows == len(set(users["user_id"].to_pylist()))  # one msno per user
    assert set(logs["user_id"].to_pylist()) <= set(users["user_id"].to_pylist())
    files = [f for t in kkbox.TABLES.values() for f in t.dump_files]
    all_msno = set(bronze_rows(lake, *files)["msno"])
    assert set(users["msno"].to_pylist()) == all_msno
    members = read_silver(lake, "members").to_pandas()
    assert members["gender"].isna().mean() > 0.5  # empty gender is unknown (null), not a category ""
    # Every part holds one bucket's users only, sorted by user and date.
    for part in silver_parts(lake, "user_logs"):
        table = lake.read_parquet(part)
        bucket = int(part.split("bucket=")[1][:3])
        assert (bucket_of(table["user_id"].to_numpy(), 8) == bucket).all()
        frame = table.select(["user_id", "date"]).to_pandas()
        assert frame.equals(frame.sort_values(["user_id", "date"], kind="stable"))


def test_rerun_is_idempotent_and_force_rewrites_the_same_silver(lake: Lake) -> None:
    settings = settings_for(lake)
    ingest(lake, settings, "run-1")
    before = {t: read_silver(lake, t) for t in kkbox.TABLES}
    again = ingest(lake, settings, "run-2")
    assert again.sources == [] and len(again.skipped) == 5
    forced = ingest(lake, settings, "run-3", force=True)
    assert len(forced.sources) == 5
    for table, silver in before.items():
        assert read_silver(lake, table).equals(silver), table
    manifest = lake.read_json("silver/_manifests/run-3.json")
    assert {i["path"] for i in manifest["inputs"]} == {
        f"bronze/{f}" for t in kkbox.TABLES.values() for f in t.dump_files
    }
    assert all(len(i["checksum"]) == 32 and i["size"] > 0 for i in manifest["inputs"])
    assert manifest["schema_version"] == 1


def test_daily_drops_are_added_once(lake: Lake) -> None:
    settings = settings_for(lake)
    ingest(lake, settings, "run-1")
    write_daily(lake, SMALL, 5, dt.date(2017, 4, 1), dt.date(2017, 4, 2))
    report = ingest(lake, settings, "run-2")
    assert sorted(r.source.path for r in report.sources) == sorted(
        kkbox.daily_path(t, dt.date(2017, 4, d)) for t in kkbox.TABLES for d in (1, 2)
    )
    logs = read_silver(lake, "user_logs").to_pandas()
    assert logs["date"].max() == dt.date(2017, 4, 2)
    assert not logs.duplicated(["user_id", "date"]).any()
    assert ingest(lake, settings, "run-3").sources == []


def test_small_blocks_give_the_same_silver_and_exact_line_numbers(lake: Lake, tmp_path: Path) -> None:
    path = Path(lake.path("bronze/user_logs.csv"))
    lines = path.read_text().splitlines(keepends=True)
    target = len(lines) - 3  # deep in the file, well past the first block
    lines[target - 1] = lines[target - 1].replace(",", ",oops,", 1)
    path.write_text("".join(lines))
    one_block = ingest(lake, settings_for(lake, ingest_block_mb=64, quarantine_max_fraction=0.5), "big")
    silver = read_silver(lake, "user_logs")
    many = ingest(
        lake, settings_for(lake, ingest_block_mb=1, quarantine_max_fraction=0.5), "small", force=True
    )
    assert read_silver(lake, "user_logs").equals(silver)
    for report in (one_block, many):
        logs = next(r for r in report.sources if r.source.path == "bronze/user_logs.csv")
        assert logs.quarantined == 1
        bad = lake.read_parquet(logs.quarantine_uri.removeprefix(lake.root + "/")).to_pylist()
        assert bad[0]["line"] == target
        assert bad[0]["reason"] == "expected 9 fields, got 10"
        assert bad[0]["row"] == lines[target - 1].rstrip("\n")
        assert bad[0]["source"] == "bronze/user_logs.csv"


def write_drop(lake: Lake, body: str, day: str = "2017-04-01") -> str:
    path = f"bronze/transactions/dt={day}/transactions.csv"
    lake.write_text(path, body)
    return path


def good_row(msno: str = GOOD_MSNO, date: str = "20170401") -> str:
    return f"{msno},41,30,149,149,1,{date},20170501,0"


def test_each_kind_of_bad_row_is_quarantined_with_file_line_and_reason(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    rows = [good_row() for _ in range(3)] + [
        f"{GOOD_MSNO},41,30,abc,149,1,20170401,20170501,0",  # line 5: text in a numeric field
        f"{GOOD_MSNO},41,30,149,149,1,20170231,20170501,0",  # line 6: impossible date
        ",41,30,149,149,1,20170401,20170501,0",  # line 7: empty key
        f"{GOOD_MSNO},41,30,149,149,7,20170401,20170501,0",  # line 8: is_auto_renew outside 0/1
        f"{GOOD_MSNO},41,30,149,149,1,20170401,,0",  # line 9: empty required field
        good_row(),
        f"{GOOD_MSNO},41,30,149",  # line 11: truncated last line, no newline
    ]
    path = write_drop(lake, TX_HEADER + "\n" + "\n".join(rows))
    with pytest.raises(IngestError) as caught:
        ingest(lake, settings_for(lake), "strict")
    message = str(caught.value)
    assert message.startswith(
        "ingest stopped, Silver unchanged: bronze/transactions/dt=2017-04-01/transactions.csv:"
    )
    assert "6 of 10 rows bad" in message
    assert not lake.exists("silver/transactions")  # nothing published
    assert not lake.exists("silver/_staging")

    report = ingest(lake, settings_for(lake, quarantine_max_fraction=0.9), "lenient")
    item = report.sources[0]
    assert (item.rows_in, item.quarantined, item.rows_out) == (10, 6, 1)  # 4 good rows, identical: 1 kept
    assert item.duplicates == 3
    bad = lake.read_parquet("quarantine/transactions/dt-2017-04-01/lenient.parquet").to_pandas()
    by_line = {int(r.line): (r.field, r.reason) for r in bad.itertuples()}
    assert by_line[5] == ("plan_list_price", "not a number: 'abc'")
    assert by_line[6] == ("transaction_date", "impossible date 20170231")
    assert by_line[7] == ("msno", "msno must be 44 base64 characters ending in '='")
    assert by_line[8][0] == "is_auto_renew" and by_line[8][1].startswith("isin(")
    assert by_line[9] == ("membership_expire_date", "empty value in field membership_expire_date")
    assert by_line[11] == (None, "expected 9 fields, got 4")
    assert set(bad["source"]) == {path}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", r"transactions\.csv is empty \(expected the header msno,payment_method_id"),
        (
            "a,b,c\n" + good_row() + "\n",
            r"transactions\.csv line 1: header is 'a,b,c', expected 'msno,payment",
        ),
    ],
)
def test_empty_file_and_wrong_header_are_clear_errors(tmp_path: Path, body: str, expected: str) -> None:
    lake = Lake(str(tmp_path / "lake"))
    write_drop(lake, body)
    with pytest.raises(IngestError, match=expected):
        ingest(lake, settings_for(lake), "run")


def test_header_only_drop_is_fine(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    write_drop(lake, TX_HEADER + "\n")
    report = ingest(lake, settings_for(lake), "run")
    assert report.sources[0].rows_in == 0 and report.sources[0].rows_out == 0


def test_a_partial_dump_ingests_and_names_what_is_missing(lake: Lake, tmp_path: Path) -> None:
    lake.remove("bronze/user_logs_v2.csv")
    report = ingest(lake, settings_for(lake), "run")
    assert report.summary()["missing"] == ["bronze/user_logs_v2.csv"]
    assert "bronze/user_logs.csv" in {r.source.path for r in report.sources}
    empty = Lake(str(tmp_path / "empty"))
    with pytest.raises(IngestError, match="no Bronze input under"):
        ingest(empty, settings_for(empty), "run")


def test_changing_the_bucket_count_is_refused(lake: Lake) -> None:
    ingest(lake, settings_for(lake), "run-1")
    with pytest.raises(IngestError, match="has 8 buckets but CHURN_SILVER_BUCKETS is 4"):
        ingest(lake, Settings(lake_url=lake.url, silver_buckets=4), "run-2", force=True)


@pytest.mark.s3
def test_s3_lake_matches_local(lake: Lake, s3_endpoint: str, s3_bucket: str) -> None:
    remote = Lake(
        f"s3://{s3_bucket}/lake", {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    )
    write_dump(remote, SMALL, seed=5)
    s3_settings = Settings(
        lake_url=remote.url, s3_endpoint_url=s3_endpoint, s3_access_key_id="testing",
        s3_secret_access_key="testing", silver_buckets=8,
    )  # fmt: skip
    remote_report = ingest(remote, s3_settings, "s3-run")
    local_report = ingest(lake, settings_for(lake), "local-run")
    assert remote_report.summary()["tables"] == local_report.summary()["tables"]
    for table in [*kkbox.TABLES, "users"]:
        ours, theirs = read_silver(remote, table), read_silver(lake, table)
        order = [(c, "ascending") for c in ours.column_names if c != "gender"]
        assert ours.sort_by(order).equals(theirs.sort_by(order)), table
    assert remote.exists("silver/_manifests/s3-run.json")
    assert ingest(remote, s3_settings, "s3-again").sources == []
    assert int(pc.sum(read_silver(remote, "transactions")["is_cancel"]).as_py()) > 0
    assert np.isfinite(read_silver(remote, "user_logs")["total_secs"].to_numpy()).all()


def test_odd_text_is_quarantined_with_the_right_reason_and_line(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    rows = [
        good_row(),
        f"{GOOD_MSNO},41,30,99999999999999999999,149,1,20170401,20170501,0",  # line 3: overflows int64
        f'"{GOOD_MSNO[:-2]}=,41,30,149,149,1,20170401,20170501,0',  # line 4: stray quote (KKBox never quotes)
        f"{GOOD_MSNO},41,30,nan,149,1,20170401,20170501,0",  # line 5: 'nan' is not an empty value
        good_row(date="20170402"),
    ]
    write_drop(lake, TX_HEADER + "\n" + "\n".join(rows) + "\n")
    item = ingest(lake, settings_for(lake, quarantine_max_fraction=0.9), "run").sources[0]
    assert (item.rows_in, item.quarantined, item.rows_out) == (5, 3, 2)
    bad = lake.read_parquet("quarantine/transactions/dt-2017-04-01/run.parquet").to_pandas()
    by_line = {int(r.line): (r.field, r.reason) for r in bad.itertuples()}
    assert by_line[3] == ("plan_list_price", "integer out of range: '99999999999999999999'")
    assert by_line[4] == ("msno", "msno must be 44 base64 characters ending in '='")
    assert by_line[5] == ("plan_list_price", "not a number: 'nan'")


def test_carriage_return_inside_a_line_is_a_clear_error(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    path = write_drop(
        lake, TX_HEADER + "\n" + good_row() + "\n" + good_row().replace(",41,", ",4\r1,") + "\n"
    )
    with pytest.raises(IngestError, match=rf"{path} bytes \d+-\d+: 2 lines but 3 rows"):
        ingest(lake, settings_for(lake), "run")
    assert not lake.exists("silver/transactions")


def test_two_files_in_one_daily_folder_are_two_sources(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    lake.write_text("bronze/transactions/dt=2017-04-01/a.csv", TX_HEADER + "\n" + good_row() + "\n")
    other = "waLDQMmcOu2jLDaV1ddDkgCrB/jl6sD66Xzs0VqaxZZ="
    lake.write_text("bronze/transactions/dt=2017-04-01/b.csv", TX_HEADER + "\n" + good_row(other) + "\n")
    report = ingest(lake, settings_for(lake), "run")
    assert sorted(r.source.slug for r in report.sources) == ["dt-2017-04-01-a", "dt-2017-04-01-b"]
    assert read_silver(lake, "transactions").num_rows == 2


def test_a_failure_while_compacting_leaves_silver_as_it_was(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    import churn.data.ingest as module

    settings = settings_for(lake)
    ingest(lake, settings, "first")
    before = {t: read_silver(lake, t) for t in [*kkbox.TABLES, "users"]}
    original = module.sort_and_deduplicate
    calls = {"n": 0}

    def failing(table: pa.Table, spec: kkbox.Table) -> tuple[pa.Table, int]:
        calls["n"] += 1
        if calls["n"] == 7:
            raise OSError("disk full")
        return original(table, spec)

    monkeypatch.setattr(module, "sort_and_deduplicate", failing)
    with pytest.raises(OSError, match="disk full"):
        ingest(lake, settings, "second", force=True)
    for table, silver in before.items():
        assert read_silver(lake, table).equals(silver), table
    assert not lake.exists("silver/_staging")
