"""The dump in parallel and the daily drops drawn from its kept state: the same bytes as the slow way."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import shutil
from pathlib import Path

import pytest

from churn.lake import Lake
from churn.synth import writer
from churn.synth.profiles import Profile, get_profile
from churn.synth.state import MANIFEST
from churn.synth.writer import write_daily, write_dump

SEED = 7


def small_full() -> Profile:
    """The full profile's behaviour (members-only people, plans paid ahead) on 2,400 people in 4 chunks."""
    return dataclasses.replace(get_profile("full", users=2_400, days=120), chunk_users=600)


def digests(root: Path, under: str = "") -> dict[str, str]:
    """sha256 of every file below `root/under` but the dump's summary (it holds the seconds taken)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / under).rglob("*"))
        if p.is_file() and p.name != "manifest-dump.json"
    }


@pytest.fixture(scope="module")
def dumped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small full-behaviour dump written by one process (its state included)."""
    root = tmp_path_factory.mktemp("serial")
    write_dump(Lake(str(root)), small_full(), SEED, workers=1)
    return root


def test_dump_bytes_do_not_depend_on_the_number_of_workers(dumped: Path, tmp_path: Path) -> None:
    summary = write_dump(Lake(str(tmp_path)), small_full(), SEED, workers=2)
    assert summary["workers"] == 2
    serial, parallel = digests(dumped), digests(tmp_path)
    assert {p for p in serial if p.startswith("bronze/")} == {f"bronze/{n}" for n in writer.DUMP_FILES}
    assert any(p.startswith("synth/state/") for p in serial) and MANIFEST in serial
    assert len([p for p in serial if "oracle/decisions" in p]) == 4  # one part per chunk
    assert parallel == serial


def drops(root: Path) -> dict[str, str]:
    return {p: d for p, d in digests(root, "bronze").items() if "/dt=" in p}


def with_state(dumped: Path, root: Path) -> Lake:
    """A lake holding only the dump's state (no Bronze)."""
    shutil.copytree(dumped / "synth", root / "synth")
    return Lake(str(root))


@pytest.mark.parametrize(
    ("first", "last", "drift", "updates"),
    [
        ("2017-04-01", "2017-04-10", 0.0, 0.0),  # more days than are drawn at once without drift
        ("2017-05-30", "2017-06-02", 0.5, 0.0),  # drift: one random stream per chunk over the whole range
        ("2018-03-31", "2018-03-31", 0.0, 0.0),  # the simulation's last day
        ("2017-04-01", "2017-04-09", 0.0, 0.05),  # members re-delivered with a new city and channel
    ],
)
def test_daily_drops_from_the_state_are_the_re_simulated_ones(
    dumped: Path, tmp_path: Path, first: str, last: str, drift: float, updates: float
) -> None:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    lake = with_state(dumped, tmp_path / "with-state")
    from_state = write_daily(lake, small_full(), SEED, start, end, drift, updates)
    simulated = write_daily(Lake(str(tmp_path / "fresh")), small_full(), SEED, start, end, drift, updates)
    assert (from_state["source"], simulated["source"]) == ("state", "simulated")
    assert from_state["rows"] == simulated["rows"] and from_state["rows"]["user_logs"] > 0
    ours, theirs = drops(tmp_path / "with-state"), drops(tmp_path / "fresh")
    assert len(ours) == 3 * ((end - start).days + 1)
    assert ours == theirs
    if updates:  # the updates are there, and they are rows of members the dump already had
        new_members = write_daily(Lake(str(tmp_path / "plain")), small_full(), SEED, start, end, drift)
        assert from_state["rows"]["members"] > new_members["rows"]["members"] + 20


def test_a_state_made_from_another_seed_or_profile_is_not_used(dumped: Path, tmp_path: Path) -> None:
    lake, fresh = with_state(dumped, tmp_path / "with-state"), Lake(str(tmp_path / "fresh"))
    day = dt.date(2017, 4, 2)
    assert write_daily(lake, small_full(), SEED + 1, day, day)["source"] == "simulated"
    write_daily(fresh, small_full(), SEED + 1, day, day)
    assert drops(tmp_path / "with-state") == drops(tmp_path / "fresh")  # seed 8's users, not 7's
    smaller = dataclasses.replace(small_full(), users=1_800)
    assert write_daily(lake, smaller, SEED, day, day)["source"] == "simulated"
    assert write_daily(lake, small_full(), SEED, day, day)["source"] == "state"


def test_a_failed_dump_leaves_neither_files_nor_state(
    dumped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = with_state(dumped, tmp_path)  # an older state, which the new dump replaces first
    real = writer.dump_chunk

    def failing(lake: Lake, profile: Profile, seed: int, index: int) -> writer.DumpPart:
        if index == 2:
            raise RuntimeError("disk full")
        return real(lake, profile, seed, index)

    monkeypatch.setattr(writer, "dump_chunk", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        write_dump(lake, small_full(), SEED, workers=1)
    assert not lake.exists(MANIFEST) and lake.find("synth/state") == []
    assert lake.find("bronze") == []
    assert write_daily(lake, small_full(), SEED, dt.date(2017, 4, 1), dt.date(2017, 4, 1))["source"] == (
        "simulated"
    )


def test_s3_lake_gets_the_same_dump_and_drops(
    dumped: Path, tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    remote = Lake(
        f"s3://{s3_bucket}/lake", {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    )
    write_dump(remote, small_full(), SEED, workers=2)
    local = Lake(str(dumped))
    for name in writer.DUMP_FILES:
        assert remote.read_bytes(f"bronze/{name}") == local.read_bytes(f"bronze/{name}"), name
    assert remote.read_bytes("synth/state/intervals.parquet") == local.read_bytes(
        "synth/state/intervals.parquet"
    )
    day = dt.date(2017, 4, 5)
    assert write_daily(remote, small_full(), SEED, day, day)["source"] == "state"
    local = with_state(dumped, tmp_path)
    write_daily(local, small_full(), SEED, day, day)
    for table in ("members", "transactions", "user_logs"):
        path = f"bronze/{table}/dt={day}/{table}.csv"
        assert remote.read_bytes(path) == local.read_bytes(path), table
