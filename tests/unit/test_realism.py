"""The realism report: its figures on hand-made rows, and the demo profile's March against the real one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from churn.errors import ChurnError
from churn.lake import Lake
from churn.synth.profiles import get_profile
from churn.synth.realism import REFERENCES, Row, format_report, realism_report, report_from_frames, statistic
from churn.synth.writer import chunk_count, march_tables, simulate_chunk

CHURN = str(Path(sys.executable).with_name("churn"))


def real_like_frames() -> dict[str, pd.DataFrame]:
    """100 March user-days and 200 March transactions built to hit every real figure exactly (numpy's
    linear quantiles: p50 averages the 50th and 51st values, p90 is 10% of the way from the 90th to the
    91st), plus February rows with absurd values that the March filter must leave out."""
    n = 100
    logs = pd.DataFrame(
        {
            "date": np.full(n, 20170315),
            "num_25": np.repeat([0, 2, 16], [26, 44, 30]),
            "num_985": np.repeat([0, 3], [55, 45]),
            "num_100": np.repeat([1, 17, 75], [40, 49, 11]),
            "num_unq": np.repeat([1, 19, 67], [40, 49, 11]),
            "total_secs": np.repeat([10.0, 4_600.0, 19_000.0], [40, 49, 11]),
        }
    )
    february = logs.head(5).assign(date=20170228, num_25=99, num_985=99, num_100=0, total_secs=-1.0)
    tx = pd.DataFrame(
        {
            "transaction_date": np.full(200, 20170301),
            "payment_method_id": np.repeat([41, 38], [98, 102]),
            "is_cancel": np.repeat([1, 0], [5, 195]),
        }
    )
    april = tx.head(50).assign(transaction_date=20170401, payment_method_id=38, is_cancel=1)
    return {
        "user_logs_v2.csv": pd.concat([logs, february]),
        "transactions_v2.csv": pd.concat([tx, april]),
    }


def by_figure(rows: list[Row]) -> dict[str, Row]:
    return {f"{r.reference.column} {r.reference.statistic}": r for r in rows}


def test_report_computes_each_figure_on_march_rows_only() -> None:
    rows = by_figure(report_from_frames(real_like_frames()))
    assert len(rows) == len(REFERENCES) == 14
    for row in rows.values():
        assert row.generated == pytest.approx(row.reference.real), row
        assert row.within and row.difference == pytest.approx(0.0), row


def test_report_flags_figures_outside_the_tolerance() -> None:
    frames = real_like_frames()
    logs = frames["user_logs_v2.csv"]
    frames["user_logs_v2.csv"] = logs.assign(
        num_25=logs["num_25"] + 1,  # never 0 (share -100%), median 3 (+50%), p90 17 (+6.25%: still within)
        num_985=np.where(logs["num_985"] == 0, 1, 3),  # median 1 where the real one is 0: outside
        total_secs=logs["total_secs"] * 1.16,  # +16% on both quantiles: just outside 15%
    )
    rows = by_figure(report_from_frames(frames))
    outside = {name for name, row in rows.items() if not row.within}
    assert outside == {
        "num_25 share==0", "num_25 p50", "num_985 share==0", "num_985 p50",
        "total_secs p50", "total_secs p90",
    }  # fmt: skip
    assert rows["num_25 share==0"].difference == pytest.approx(-1.0)
    assert rows["num_25 p50"].difference == pytest.approx(0.5)
    assert rows["num_25 p90"].generated == 17 and rows["num_25 p90"].within
    assert rows["num_985 p50"].difference == float("inf")
    text = format_report(list(rows.values()))
    assert "8 of 14 figures within tolerance" in text
    assert text.count("OUTSIDE") == 6


def test_quantiles_are_numpy_linear_and_shares_exact() -> None:
    assert statistic(np.array([0.0, 10.0]), "p90") == pytest.approx(9.0)  # linear, not nearest or lower
    assert statistic(np.array([0.0, 1.0, 1.0, 5.0]), "p50") == 1.0
    assert statistic(np.array([41.0, 41.0, 38.0, 40.0]), "share==41") == 0.5
    with pytest.raises(ChurnError, match="no rows"):
        statistic(np.array([]), "p50")


def test_report_names_a_missing_file_or_month() -> None:
    frames = real_like_frames()
    with pytest.raises(ChurnError, match=r"needs transactions_v2\.csv"):
        report_from_frames({"user_logs_v2.csv": frames["user_logs_v2.csv"]})
    frames["transactions_v2.csv"] = frames["transactions_v2.csv"].assign(transaction_date=20170401)
    with pytest.raises(ChurnError, match=r"transactions_v2\.csv has no rows dated 20170301\.\.20170331"):
        report_from_frames(frames)


@pytest.fixture(scope="module")
def demo_march(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The demo profile's March files (seed 7), exactly the rows `churn synth --profile demo` writes, in a
    lake of their own (only the March files: the full dump takes several times longer)."""
    lake = Lake(str(tmp_path_factory.mktemp("realism")))
    profile = get_profile("demo")
    parts: dict[str, list[pa.Table]] = {"transactions_v2.csv": [], "user_logs_v2.csv": []}
    for index in range(chunk_count(profile)):
        for name, table in march_tables(simulate_chunk(7, profile, index)).items():
            parts[name].append(table)
    for name, tables in parts.items():
        lake.write_csv(f"bronze/{name}", pa.concat_tables(tables))
    return lake


def test_demo_profile_march_is_within_tolerance_of_the_real_march(demo_march: Lake) -> None:
    rows = realism_report(demo_march)
    assert [r for r in rows if not r.within] == [], format_report(rows)


def test_synth_report_prints_the_table_and_writes_nothing(demo_march: Lake) -> None:
    before = sorted(demo_march.find("bronze"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")} | {"COLUMNS": "200"}
    done = subprocess.run(
        [CHURN, "synth", "--report", "--out", demo_march.uri()], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "num_985 p50" in done.stdout and "14 of 14 figures within tolerance" in done.stdout, done.stdout
    assert sorted(demo_march.find("bronze")) == before
