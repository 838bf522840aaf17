"""Lake I/O: the same cases on a local folder and on an S3 server on loopback."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from churn.lake import Lake, LakeError
from churn.settings import Settings


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    """A lake on a local folder, then on a fresh bucket of the loopback S3 server, via Settings."""
    if request.param == "local":
        settings = Settings(lake_url=str(tmp_path / "lake"))
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        settings = Settings(
            lake_url=f"s3://{bucket}/prefix",
            s3_endpoint_url=endpoint,
            s3_access_key_id="testing",
            s3_secret_access_key="testing",
        )
    return Lake.from_settings(settings)


def test_parquet_round_trip_keeps_types(lake: Lake) -> None:
    table = pa.table(
        {
            "msno": ["waLDQMmcOu2jLDaV1ddDkgCrB/jl6sD66Xzs0Vqax1Y=", "+/abc="],
            "date": pa.array([17000, 17001], pa.date32()),
            "num_25": pa.array([1, 2], pa.int16()),
            "total_secs": [1.5, -3.0],
        }
    )
    uri = lake.write_parquet("silver/user_logs/bucket=000/part-0.parquet", table)
    assert uri.endswith("silver/user_logs/bucket=000/part-0.parquet")
    assert lake.read_parquet("silver/user_logs/bucket=000/part-0.parquet").equals(table)
    assert lake.read_parquet("silver/user_logs").num_rows == 2  # a folder reads as one table


def test_csv_is_written_unquoted_like_kkbox(lake: Lake) -> None:
    frame = pd.DataFrame({"msno": ["a+b/c="], "gender": [""], "bd": [0]})
    lake.write_csv("bronze/members_v3.csv", frame)
    assert lake.read_text("bronze/members_v3.csv") == "msno,gender,bd\na+b/c=,,0\n"
    assert lake.read_csv("bronze/members_v3.csv").num_rows == 1


def test_text_json_html_and_listing(lake: Lake) -> None:
    lake.write_json("reports/a/summary.json", {"b": 1, "a": [1, 2]})
    lake.write_html("reports/a/index.html", "<html><body>ok</body></html>")
    lake.write_text("reports/b/notes.txt", "hello")
    assert lake.read_json("reports/a/summary.json") == {"a": [1, 2], "b": 1}
    assert lake.read_text("reports/a/index.html").startswith("<html>")
    assert lake.find("reports") == ["reports/a/index.html", "reports/a/summary.json", "reports/b/notes.txt"]
    assert lake.glob("reports/*/index.html") == ["reports/a/index.html"]
    assert lake.size("reports/b/notes.txt") == 5
    assert lake.find("nothing/here") == []


def test_overwrite_and_remove_are_idempotent(lake: Lake) -> None:
    lake.write_text("gold/x.txt", "one")
    lake.write_text("gold/x.txt", "two")
    assert lake.read_text("gold/x.txt") == "two"
    lake.remove("gold")
    lake.remove("gold")
    assert not lake.exists("gold/x.txt")


def test_missing_file_names_its_uri(lake: Lake) -> None:
    with pytest.raises(LakeError, match=r"not found: .*silver/absent.parquet"):
        lake.read_parquet("silver/absent.parquet")
    with pytest.raises(LakeError, match=r"not found: .*bronze/absent.csv"):
        lake.read_bytes("bronze/absent.csv")


def test_paths_cannot_escape_the_root(lake: Lake) -> None:
    with pytest.raises(LakeError, match="leaves the lake root"):
        lake.write_text("../outside.txt", "x")


def test_streaming_open_reads_in_chunks(lake: Lake) -> None:
    payload = b"msno,date\n" + b"x,20170101\n" * 10_000
    lake.write_bytes("bronze/user_logs.csv", payload)
    with lake.open("bronze/user_logs.csv") as handle:
        chunks = iter(lambda: handle.read(4096), b"")
        assert b"".join(chunks) == payload


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    for i in range(3):
        lake.write_text("silver/manifest.json", str(i))
    assert sorted(p.name for p in (tmp_path / "lake" / "silver").iterdir()) == ["manifest.json"]
    assert lake.uri("silver/manifest.json") == str(tmp_path / "lake" / "silver" / "manifest.json")


def test_s3_uri_has_scheme(s3_endpoint: str, s3_bucket: str) -> None:
    lake = Lake(f"s3://{s3_bucket}/p", {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"})
    assert lake.uri("reports/x.html") == f"s3://{s3_bucket}/p/reports/x.html"


def test_a_failed_streaming_write_publishes_nothing(lake: Lake) -> None:
    """A writer that fails half-way leaves no file or object under the name, local or S3 (the old file,
    if any, stays as it was)."""
    lake.write_bytes("bronze/old.csv", b"old")
    for name in ("bronze/new.csv", "bronze/old.csv"):
        with pytest.raises(RuntimeError, match="writer failed"), lake.open_atomic(name) as handle:
            handle.write(b"x" * 1_000)
            raise RuntimeError("writer failed")
    assert not lake.exists("bronze/new.csv")
    assert lake.read_bytes("bronze/old.csv") == b"old"
