"""Compressed Bronze inputs as Kaggle distributes them: unpacked streaming, once, to the same Silver."""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import py7zr
import pyarrow as pa
import pytest

from churn.data import kkbox
from churn.data.archives import STATE, ArchiveError, unpack_bronze
from churn.data.ingest import IngestError, ingest
from churn.data.silver import read_silver
from churn.lake import Lake
from churn.settings import Settings
from churn.synth.profiles import get_profile
from churn.synth.writer import write_dump

SMALL = get_profile("tiny", users=200, days=60)
BAD_LOG = "not-a-user-id,20170315,1,0,0,0,1,1,10.5\n"  # quarantined: its line must be named as in the CSV
COMPETITION_ZIP = "bronze/kkbox-churn-prediction-challenge.zip"
FORMS = ["competition-zip", "7z", "zip", "gz"]


def settings_for(lake: Lake) -> Settings:
    return Settings(lake_url=lake.url, silver_buckets=4, dask_workers=2)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A local lake holding a small generated dump, one bad log line in it, ingested as plain CSVs."""
    lake = Lake(str(tmp_path_factory.mktemp("plain") / "lake"))
    write_dump(lake, SMALL, seed=11)
    logs = lake.read_bytes("bronze/user_logs_v2.csv")
    lake.write_bytes("bronze/user_logs_v2.csv", logs + BAD_LOG.encode())
    ingest(lake, settings_for(lake), "plain")
    return lake


def csv_files(lake: Lake) -> dict[str, bytes]:
    """The plain Kaggle CSVs of a lake's Bronze, by file name."""
    return {p.rsplit("/", 1)[-1]: lake.read_bytes(p) for p in lake.glob("bronze/*.csv")}


def seven_zip(name: str, data: bytes) -> bytes:
    """A .7z holding one CSV (LZMA2, as Kaggle's), the v2 ones under a folder as in the real archives."""
    buffer = io.BytesIO()
    folder = "data/churn_comp_refresh/" if "_v2" in name else ""
    with py7zr.SevenZipFile(buffer, "w") as archive:
        archive.writestr(data, f"{folder}{name}")
    return buffer.getvalue()


def pack(source: Lake, target: Lake, form: str) -> list[str]:
    """Write the source's Bronze CSVs into the target's Bronze in one compressed form; the archives."""
    files = csv_files(source)
    if form == "competition-zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as outer:
            for name, data in files.items():
                outer.writestr(f"{name}.7z", seven_zip(name, data))
            outer.writestr("WSDMChurnLabeller.scala", "object WSDMChurnLabeller\n")  # not a CSV: left alone
        target.write_bytes(COMPETITION_ZIP, buffer.getvalue())
        return [COMPETITION_ZIP]
    if form == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in files.items():
                archive.writestr(name, data)
        target.write_bytes("bronze/kkbox.zip", buffer.getvalue())
        return ["bronze/kkbox.zip"]
    paths = []
    for name, data in files.items():
        path = f"bronze/{name}.{form}"
        target.write_bytes(path, seven_zip(name, data) if form == "7z" else gzip.compress(data))
        paths.append(path)
    return paths


def assert_same_silver(ours: Lake, reference: Lake) -> None:
    for table in [*kkbox.TABLES, "users"]:
        mine, theirs = read_silver(ours, table), read_silver(reference, table)
        order = [(c, "ascending") for c in mine.column_names if c != "gender"]
        assert mine.num_rows > 0, table
        assert mine.sort_by(order).equals(theirs.sort_by(order)), table


def quarantined(lake: Lake) -> pa.Table:
    [path] = lake.glob("quarantine/user_logs/*/*.parquet")
    return lake.read_parquet(path).select(["source", "line", "field", "reason"])


@pytest.mark.parametrize("form", FORMS)
def test_archives_give_the_silver_of_the_plain_csvs(plain: Lake, tmp_path: Path, form: str) -> None:
    packed = Lake(str(tmp_path / "packed"))
    archives = pack(plain, packed, form)
    report = ingest(packed, settings_for(packed), "packed")
    assert_same_silver(packed, plain)
    # Bad rows are quarantined with the unpacked CSV's name and their line in it, as for the plain file.
    assert quarantined(packed).equals(quarantined(plain))
    assert quarantined(packed)["source"].to_pylist() == ["bronze/user_logs_v2.csv"]
    names = sorted(csv_files(plain))
    assert sorted(u["target"] for u in report.unpacked) == [f"bronze/{n}" for n in names]
    assert {u["archive"] for u in report.unpacked} == set(archives)
    assert csv_files(packed) == csv_files(plain)
    assert not packed.exists("bronze/WSDMChurnLabeller.scala")


@pytest.mark.parametrize("form", FORMS)
def test_a_rerun_unpacks_and_ingests_nothing(plain: Lake, tmp_path: Path, form: str) -> None:
    packed = Lake(str(tmp_path / "packed"))
    pack(plain, packed, form)
    first = ingest(packed, settings_for(packed), "first")
    assert first.unpacked and first.sources
    written = {p: Path(packed.path(p)).stat().st_mtime_ns for p in packed.glob("bronze/*.csv")}
    again = ingest(packed, settings_for(packed), "again")
    assert again.unpacked == [] and again.sources == []
    assert {p: Path(packed.path(p)).stat().st_mtime_ns for p in packed.glob("bronze/*.csv")} == written
    assert unpack_bronze(packed).unpacked == []


def test_an_unpacked_csv_that_was_deleted_is_unpacked_again(plain: Lake, tmp_path: Path) -> None:
    packed = Lake(str(tmp_path / "packed"))
    pack(plain, packed, "7z")
    unpack_bronze(packed)
    packed.remove("bronze/members_v3.csv")
    again = unpack_bronze(packed)
    assert [u.target for u in again.unpacked] == ["bronze/members_v3.csv"]
    assert packed.read_bytes("bronze/members_v3.csv") == plain.read_bytes("bronze/members_v3.csv")


def truncate(lake: Lake, path: str) -> None:
    data = lake.read_bytes(path)
    lake.write_bytes(path, data[: len(data) * 2 // 3])


@pytest.mark.parametrize("form", FORMS)
def test_a_truncated_archive_is_a_clear_error_and_publishes_nothing(
    plain: Lake, tmp_path: Path, form: str
) -> None:
    packed = Lake(str(tmp_path / "packed"))
    archives = pack(plain, packed, form)
    broken = next(a for a in archives if "user_logs_v2" in a or len(archives) == 1)
    truncate(packed, broken)
    with pytest.raises(IngestError, match=packed.uri(broken).replace(".", r"\.")) as caught:
        ingest(packed, settings_for(packed), "broken")
    assert "truncated or corrupt" in str(caught.value)
    if form == "gz":  # a gzip file holds one member, named by the archive's name
        assert "member user_logs_v2.csv" in str(caught.value)
    assert not packed.exists("silver")
    leftovers = [p for p in packed.find("bronze") if p not in archives]
    # Other archives of the run may be unpacked, but never the broken one, and no temporary file stays.
    assert all(p.endswith(".csv") and "user_logs_v2" not in p for p in leftovers if p != STATE), leftovers
    if len(archives) == 1:
        assert [p for p in leftovers if p != STATE] == []


def flip_byte(lake: Lake, path: str, at: float) -> None:
    data = bytearray(lake.read_bytes(path))
    data[int(len(data) * at)] ^= 0xFF
    lake.write_bytes(path, bytes(data))


@pytest.mark.parametrize(
    ("form", "member"), [("7z", "user_logs_v2.csv"), ("competition-zip", "user_logs_v2.csv.7z")]
)
def test_corrupt_member_data_names_the_archive_and_the_member(
    plain: Lake, tmp_path: Path, form: str, member: str
) -> None:
    packed = Lake(str(tmp_path / "packed"))
    archives = pack(plain, packed, form)
    broken = next(a for a in archives if "user_logs_v2" in a or len(archives) == 1)
    if form == "7z":
        flip_byte(packed, broken, 0.3)
    else:  # rewrite the competition zip with a damaged user_logs_v2.csv.7z inside (intact zip CRCs)
        source = zipfile.ZipFile(io.BytesIO(packed.read_bytes(broken)))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as outer:
            for info in source.infolist():
                data = bytearray(source.read(info))
                if info.filename == member:
                    data[len(data) // 3] ^= 0xFF
                outer.writestr(info.filename, bytes(data))
        packed.write_bytes(broken, buffer.getvalue())
    with pytest.raises(IngestError, match=rf"member (\S+/)?{re.escape(member)}\b") as caught:
        ingest(packed, settings_for(packed), "broken")
    assert packed.uri(broken) in str(caught.value)
    assert not packed.exists("silver")
    assert not packed.exists("bronze/user_logs_v2.csv")


def test_a_broken_redelivery_leaves_the_unpacked_csv_and_silver_as_they_were(
    plain: Lake, tmp_path: Path
) -> None:
    packed = Lake(str(tmp_path / "packed"))
    pack(plain, packed, "gz")
    ingest(packed, settings_for(packed), "good")
    before = {p: packed.read_bytes(p) for p in packed.find("silver") if p.endswith(".parquet")}
    csv = packed.read_bytes("bronze/members_v3.csv")
    packed.write_bytes("bronze/members_v3.csv.gz", gzip.compress(csv + csv)[:-40])  # a new, broken version
    with pytest.raises(IngestError, match=r"members_v3\.csv\.gz"):
        ingest(packed, settings_for(packed), "bad")
    assert packed.read_bytes("bronze/members_v3.csv") == csv
    assert {p: packed.read_bytes(p) for p in packed.find("silver") if p.endswith(".parquet")} == before
    assert [p for p in packed.find("bronze") if ".csv.gz" not in p and p != STATE] == sorted(
        f"bronze/{n}" for n in csv_files(plain)
    )


def test_a_plain_csv_beside_its_archive_is_refused(plain: Lake, tmp_path: Path) -> None:
    packed = Lake(str(tmp_path / "packed"))
    pack(plain, packed, "gz")
    packed.write_bytes("bronze/members_v3.csv", b"msno,city\n")  # not unpacked by us: which one is right?
    with pytest.raises(IngestError, match=r"bronze/members_v3\.csv already exists") as caught:
        unpack_bronze(packed)
    assert "members_v3.csv.gz" in str(caught.value)
    assert packed.read_bytes("bronze/members_v3.csv") == b"msno,city\n"


def test_an_archive_replacing_a_removed_one_takes_over_its_csv(plain: Lake, tmp_path: Path) -> None:
    packed = Lake(str(tmp_path / "packed"))
    pack(plain, packed, "7z")
    unpack_bronze(packed)
    packed.remove("bronze/members_v3.csv.7z")
    members = plain.read_bytes("bronze/members_v3.csv")
    packed.write_bytes("bronze/members_v3.csv.gz", gzip.compress(members))
    again = unpack_bronze(packed)
    assert [(u.archive, u.target) for u in again.unpacked] == [
        ("bronze/members_v3.csv.gz", "bronze/members_v3.csv")
    ]
    assert "bronze/members_v3.csv.7z" not in packed.read_json(STATE)


def test_a_daily_drop_may_come_gzipped(plain: Lake, tmp_path: Path) -> None:
    packed = Lake(str(tmp_path / "packed"))
    pack(plain, packed, "gz")
    row = plain.read_text("bronze/transactions_v2.csv").splitlines()[1]
    drop = f"{','.join(kkbox.TRANSACTIONS.column_names)}\n{row}\n"
    packed.write_bytes("bronze/transactions/dt=2017-04-01/transactions.csv.gz", gzip.compress(drop.encode()))
    report = ingest(packed, settings_for(packed), "with-drop")
    assert "bronze/transactions/dt=2017-04-01/transactions.csv" in [s.source.path for s in report.sources]


def log_lines(count: int) -> bytes:
    """A user_logs CSV of `count` varied rows (compressing about 3:1, as real logs)."""
    rng = np.random.default_rng(count)
    days, counts = rng.integers(20170301, 20170331, count), rng.integers(0, 50, (count, 6))
    rows = [
        f"u{i % 5000},{d},{','.join(map(str, c))},{c[0] * 61.5}"
        for i, (d, c) in enumerate(zip(days, counts, strict=True))
    ]
    return "\n".join([",".join(kkbox.USER_LOGS.column_names), *rows, ""]).encode()


def peak_unpacking(tmp_path: Path, data: bytes) -> int:
    """Peak Python memory while unpacking one 7z member (small dictionary, so the member dominates)."""
    lake = Lake(str(tmp_path / f"lake-{len(data)}"))
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w", filters=[{"id": py7zr.FILTER_LZMA2, "preset": 1}]) as archive:
        archive.writestr(data, "user_logs_v2.csv")
    lake.write_bytes("bronze/user_logs_v2.csv.7z", buffer.getvalue())
    del buffer
    tracemalloc.start()
    try:
        unpack_bronze(lake)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lake.size("bronze/user_logs_v2.csv") == len(data)
    return peak


@pytest.mark.slow
def test_unpacking_streams_in_bounded_memory(tmp_path: Path) -> None:
    """Memory does not grow with the member: a 4x larger one unpacks within the same peak, below its size."""
    small, large = log_lines(150_000), log_lines(600_000)
    small_peak = peak_unpacking(tmp_path, small)
    large_peak = peak_unpacking(tmp_path, large)
    assert large_peak < small_peak * 1.25, (small_peak, large_peak)
    assert large_peak < len(large), (large_peak, len(large))


@pytest.mark.s3
def test_an_s3_lake_unpacks_the_competition_zip_through_its_file_objects(
    plain: Lake, s3_endpoint: str, s3_bucket: str
) -> None:
    remote = Lake(
        f"s3://{s3_bucket}/lake", {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    )
    pack(plain, remote, "competition-zip")
    settings = Settings(
        lake_url=remote.url, s3_endpoint_url=s3_endpoint, s3_access_key_id="testing",
        s3_secret_access_key="testing", silver_buckets=4,
    )  # fmt: skip
    report = ingest(remote, settings, "s3")
    assert len(report.unpacked) == len(csv_files(plain))
    assert_same_silver(remote, plain)
    again = ingest(remote, settings, "s3-again")
    assert again.unpacked == [] and again.sources == []


def zip_of(members: dict[str, bytes], tweak: dict[str, dict[str, int]] | None = None) -> bytes:
    """A zip of the given members; `tweak` sets central-directory fields of some members (flag bits for
    an encrypted member, a compression method such as deflate64) that Python cannot write itself."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, fields in (tweak or {}).items():
            info = archive.getinfo(name)
            for key, value in fields.items():
                setattr(info, key, getattr(info, key) | value if key == "flag_bits" else value)
    return buffer.getvalue()


def bronze_csvs(lake: Lake) -> list[str]:
    """Every CSV (or temporary file) anywhere under Bronze, but the archives' state."""
    return [p for p in lake.find("bronze") if ".csv" in p and not re.search(r"\.(zip|7z|gz)$", p)]


def unsupported_7z(name: str, data: bytes) -> bytes:
    """A 7z whose member is stored with a method py7zr does not know (Deflate's id, last byte changed),
    its header and CRCs otherwise intact, as an archive made by a newer 7-Zip would be."""
    buffer = io.BytesIO()
    archive = py7zr.SevenZipFile(buffer, "w", filters=[{"id": py7zr.FILTER_DEFLATE}])
    archive.encoded_header_mode = False
    archive.writestr(data, name)
    archive.close()
    raw = bytearray(buffer.getvalue())
    offset, size = struct.unpack("<QQ", raw[12:28])
    header = 32 + offset
    method = raw.index(bytes.fromhex("040108"), header)
    raw[method + 2] = 0x07
    raw[28:32] = struct.pack("<I", zlib.crc32(raw[header : header + size]))
    raw[8:12] = struct.pack("<I", zlib.crc32(raw[12:32]))
    return bytes(raw)


@pytest.mark.parametrize("header_encryption", [False, True])
def test_an_encrypted_7z_is_a_clear_error_naming_the_archive(
    plain: Lake, tmp_path: Path, header_encryption: bool
) -> None:
    packed = Lake(str(tmp_path / "packed"))
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w", password="secret", header_encryption=header_encryption) as archive:
        archive.writestr(plain.read_bytes("bronze/train.csv"), "train.csv")
    packed.write_bytes("bronze/train.csv.7z", buffer.getvalue())
    with pytest.raises(ArchiveError, match=r"encrypted") as caught:
        unpack_bronze(packed)
    assert packed.uri("bronze/train.csv.7z") in str(caught.value)
    assert "truncated" not in str(caught.value)
    assert bronze_csvs(packed) == []


@pytest.mark.parametrize(
    ("tweak", "says"),
    [({"flag_bits": 0x1}, "encrypted"), ({"compress_type": 9}, "compression method")],
    ids=["encrypted", "deflate64"],
)
def test_an_encrypted_or_unsupported_zip_member_is_named_and_nothing_is_unpacked(
    plain: Lake, tmp_path: Path, tweak: dict[str, int], says: str
) -> None:
    packed = Lake(str(tmp_path / "packed"))
    members = {n: plain.read_bytes(f"bronze/{n}") for n in ("members_v3.csv", "train.csv", "train_v2.csv")}
    packed.write_bytes("bronze/kkbox.zip", zip_of(members, {"train.csv": tweak}))
    with pytest.raises(ArchiveError, match=rf"{re.escape(packed.uri('bronze/kkbox.zip'))} member train\.csv"):
        unpack_bronze(packed)
    with pytest.raises(ArchiveError, match=says) as caught:
        unpack_bronze(packed)
    assert "truncated" not in str(caught.value)
    assert bronze_csvs(packed) == []


@pytest.mark.parametrize("kind", ["encrypted", "unsupported"])
def test_an_encrypted_or_unsupported_7z_inside_the_competition_zip_is_named(
    plain: Lake, tmp_path: Path, kind: str
) -> None:
    packed = Lake(str(tmp_path / "packed"))
    data = plain.read_bytes("bronze/train.csv")
    if kind == "unsupported":
        inner = unsupported_7z("train.csv", data)
    else:
        buffer = io.BytesIO()
        with py7zr.SevenZipFile(buffer, "w", password="secret") as archive:
            archive.writestr(data, "train.csv")
        inner = buffer.getvalue()
    members = {"members_v3.csv.7z": seven_zip("members_v3.csv", plain.read_bytes("bronze/members_v3.csv"))}
    members |= {"train.csv.7z": inner, "train_v2.csv.7z": seven_zip("train_v2.csv", b"msno,is_churn\n")}
    packed.write_bytes(COMPETITION_ZIP, zip_of(members))
    with pytest.raises(ArchiveError, match=r"member train\.csv\.7z") as caught:
        ingest(packed, settings_for(packed), "locked")
    message = str(caught.value)
    assert packed.uri(COMPETITION_ZIP) in message
    assert ("encrypted" if kind == "encrypted" else "compression method") in message
    assert "truncated" not in message
    assert bronze_csvs(packed) == []


def test_only_csv_members_are_unpacked_and_mac_metadata_is_skipped(
    plain: Lake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    packed = Lake(str(tmp_path / "packed"))
    train = plain.read_bytes("bronze/train.csv")
    members = {
        "train.csv.7z": seven_zip("train.csv", train),
        "train_v2.csv.gz": gzip.compress(plain.read_bytes("bronze/train_v2.csv")),
        "notes.txt.gz": gzip.compress(b"not a table\n"),
        "pkg.tar.gz": gzip.compress(b"\0" * 1024),
        "__MACOSX/._train.csv.7z": b"\x00\x05\x16\x07 resource fork, no 7z",
        "._members_v3.csv": b"\x00\x05\x16\x07 resource fork",
        "readme.md": b"# KKBox\n",
    }
    packed.write_bytes("bronze/kkbox.zip", zip_of(members))
    with caplog.at_level(logging.INFO, logger="churn.data.archives"):
        report = unpack_bronze(packed)
    assert sorted(u.target for u in report.unpacked) == ["bronze/train.csv", "bronze/train_v2.csv"]
    assert packed.read_bytes("bronze/train.csv") == train
    assert sorted(bronze_csvs(packed)) == ["bronze/train.csv", "bronze/train_v2.csv"]
    assert not packed.exists("bronze/notes.txt") and not packed.exists("bronze/pkg.tar")
    skipped = {"notes.txt.gz", "pkg.tar.gz", "__MACOSX/._train.csv.7z", "._members_v3.csv", "readme.md"}
    assert set(report.ignored) == skipped
    assert all(name in caplog.text for name in skipped), caplog.text


def test_an_archive_in_a_subfolder_puts_the_kaggle_files_where_the_ingest_reads_them(
    plain: Lake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    packed = Lake(str(tmp_path / "packed"))
    train = plain.read_bytes("bronze/train.csv")
    packed.write_bytes("bronze/downloads/k.zip", zip_of({"train.csv": train, "extra.csv": b"a,b\n1,2\n"}))
    with caplog.at_level(logging.WARNING, logger="churn.data.archives"):
        report = unpack_bronze(packed)
    assert sorted(u.target for u in report.unpacked) == ["bronze/downloads/extra.csv", "bronze/train.csv"]
    assert packed.read_bytes("bronze/train.csv") == train
    assert not packed.exists("bronze/downloads/train.csv")
    # A CSV the ingest does not know stays beside its archive, with a warning saying so.
    warned = [r.getMessage() for r in caplog.records if "extra.csv" in r.getMessage()]
    assert (
        warned
        and "not read by the ingest" in warned[0]
        and packed.uri("bronze/downloads/extra.csv") in warned[0]
    )


def test_a_daily_drop_zip_stays_in_its_folder(plain: Lake, tmp_path: Path) -> None:
    packed = Lake(str(tmp_path / "packed"))
    row = plain.read_text("bronze/transactions_v2.csv").splitlines()[:2]
    folder = "bronze/transactions/dt=2017-04-01"
    packed.write_bytes(f"{folder}/drop.zip", zip_of({"transactions.csv": "\n".join([*row, ""]).encode()}))
    assert [u.target for u in unpack_bronze(packed).unpacked] == [f"{folder}/transactions.csv"]


def test_conflicts_are_found_before_anything_is_unpacked(plain: Lake, tmp_path: Path) -> None:
    """The competition zip unzipped inside Bronze: the zip and its own .7z files all yield the same CSVs."""
    packed = Lake(str(tmp_path / "packed"))
    pack(plain, packed, "competition-zip")
    members = plain.read_bytes("bronze/members_v3.csv")
    packed.write_bytes("bronze/members_v3.csv.7z", seven_zip("members_v3.csv", members))
    with pytest.raises(ArchiveError, match=r"bronze/members_v3\.csv") as caught:
        unpack_bronze(packed)
    assert COMPETITION_ZIP in str(caught.value) and "bronze/members_v3.csv.7z" in str(caught.value)
    assert bronze_csvs(packed) == []
    assert not packed.exists(STATE)


def test_two_new_archives_yielding_one_csv_are_refused_before_either_is_unpacked(
    plain: Lake, tmp_path: Path
) -> None:
    packed = Lake(str(tmp_path / "packed"))
    members = plain.read_bytes("bronze/members_v3.csv")
    packed.write_bytes("bronze/members_v3.csv.gz", gzip.compress(members))
    packed.write_bytes("bronze/members_v3.csv.7z", seven_zip("members_v3.csv", members))
    packed.write_bytes("bronze/a-train.csv.gz", gzip.compress(plain.read_bytes("bronze/train.csv")))
    with pytest.raises(ArchiveError, match=r"members_v3\.csv\.7z.*members_v3\.csv\.gz"):
        unpack_bronze(packed)
    assert bronze_csvs(packed) == []


def test_a_plain_csv_beside_a_later_archive_is_refused_before_anything_is_unpacked(
    plain: Lake, tmp_path: Path
) -> None:
    packed = Lake(str(tmp_path / "packed"))
    packed.write_bytes("bronze/a.zip", zip_of({"train.csv": plain.read_bytes("bronze/train.csv")}))
    packed.write_bytes("bronze/members_v3.csv", b"msno,city\n")
    packed.write_bytes("bronze/z.zip", zip_of({"members_v3.csv": plain.read_bytes("bronze/members_v3.csv")}))
    with pytest.raises(ArchiveError, match=r"bronze/members_v3\.csv already exists"):
        unpack_bronze(packed)
    assert not packed.exists("bronze/train.csv")


def test_members_with_paths_outside_the_archive_are_unpacked_by_base_name_and_logged(
    plain: Lake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    packed = Lake(str(tmp_path / "packed"))
    train = plain.read_bytes("bronze/train.csv")
    members = {"../../train.csv": train, "/abs/train_v2.csv": plain.read_bytes("bronze/train_v2.csv")}
    packed.write_bytes("bronze/k.zip", zip_of(members))
    with caplog.at_level(logging.WARNING, logger="churn.data.archives"):
        report = unpack_bronze(packed)
    assert sorted(u.target for u in report.unpacked) == ["bronze/train.csv", "bronze/train_v2.csv"]
    assert packed.read_bytes("bronze/train.csv") == train
    assert not (tmp_path / "train.csv").exists() and not Path("/abs/train_v2.csv").exists()
    for member, name in (("../../train.csv", "train.csv"), ("/abs/train_v2.csv", "train_v2.csv")):
        warned = [r.getMessage() for r in caplog.records if member in r.getMessage()]
        assert warned and f"as {name}" in warned[0], caplog.text


def test_a_corrupt_middle_member_publishes_nothing_from_its_archive(plain: Lake, tmp_path: Path) -> None:
    packed = Lake(str(tmp_path / "packed"))
    names = sorted(csv_files(plain))
    middle = names[len(names) // 2]
    members = {f"{n}.7z": seven_zip(n, plain.read_bytes(f"bronze/{n}")) for n in names}
    damaged = bytearray(members[f"{middle}.7z"])
    damaged[len(damaged) // 3] ^= 0xFF
    members[f"{middle}.7z"] = bytes(damaged)
    packed.write_bytes(COMPETITION_ZIP, zip_of(members))
    with pytest.raises(ArchiveError, match=rf"member {re.escape(middle)}\.7z") as caught:
        unpack_bronze(packed)
    assert "truncated or corrupt" in str(caught.value)
    assert names.index(middle) not in (0, len(names) - 1)
    assert bronze_csvs(packed) == []


def test_the_ingest_summary_names_the_missing_files_and_the_unpacked_archives(
    plain: Lake, tmp_path: Path
) -> None:
    packed = Lake(str(tmp_path / "packed"))
    v2 = ("members_v3.csv", "transactions_v2.csv", "user_logs_v2.csv", "train_v2.csv")
    packed.write_bytes("bronze/kkbox.zip", zip_of({n: plain.read_bytes(f"bronze/{n}") for n in v2}))
    churn = str(Path(sys.executable).with_name("churn"))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")}
    environment |= {"CHURN_LAKE_URL": packed.url, "CHURN_SILVER_BUCKETS": "4", "CHURN_DASK_WORKERS": "1"}
    result = subprocess.run([churn, "ingest"], capture_output=True, text=True, env=environment, check=False)
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("ingest ")]
    assert "missing bronze/transactions.csv, bronze/user_logs.csv, bronze/train.csv" in line, line
    assert "unpacked bronze/kkbox.zip (4 CSVs)" in line, line
