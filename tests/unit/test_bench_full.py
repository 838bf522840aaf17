"""The full-scale benchmark's pure parts: targets met or missed, the table, rows read from `churn` output."""

from __future__ import annotations

import pytest

from bench.full_scale import (
    GIB,
    ROWS,
    StageRow,
    Target,
    parse_stages,
    replaced_rows,
    synth_rows,
    table,
    targets,
)


def _row(name: str, wall: float, rss: float = 0.5, **extra: object) -> StageRow:
    return StageRow(name, "what", wall=wall, cpu=wall, peak_rss=int(rss * GIB), **extra)


def test_a_wall_target_is_met_up_to_its_limit_and_missed_past_it() -> None:
    target = Target(12 * 60)
    assert target.describe() == "<= 12 min"
    assert target.met(_row("ingest", 720.0), {}) is True
    assert target.met(_row("ingest", 720.5), {}) is False


def test_every_stage_misses_its_target_past_12_gib_of_peak_rss() -> None:
    assert Target(60).met(_row("labels", 10.0, rss=12.5), {}) is False
    assert Target().met(_row("validate_gold", 10.0, rss=12.5), {}) is False
    assert Target().met(_row("validate_gold", 10.0, rss=11.9), {}) is True


def test_silver_validation_is_held_to_3x_the_feature_build_and_1_5_gib_at_200k() -> None:
    goal = targets("bench")["validate_silver"]
    features = _row("features", 10.0)
    assert goal.describe() == "<= 3x features, peak RSS < 1.50 GiB"
    assert goal.met(_row("validate_silver", 30.0), {"features": features}) is True
    assert goal.met(_row("validate_silver", 31.0), {"features": features}) is False
    assert goal.met(_row("validate_silver", 20.0, rss=1.6), {"features": features}) is False
    assert goal.met(_row("validate_silver", 20.0), {}) is None  # no feature build measured yet
    assert targets("full")["validate_silver"].met(_row("validate_silver", 20.0, rss=1.6),
                                                  {"features": features}) is True  # fmt: skip


def test_the_lookup_target_compares_p99_with_the_small_table() -> None:
    goal = targets("full")["api_90"]
    small = _row("api_small", 20.0, p99_ms=10.0)
    assert goal.met(_row("api_90", 20.0, p99_ms=15.0), {"api_small": small}) is True
    assert goal.met(_row("api_90", 20.0, p99_ms=15.5), {"api_small": small}) is False


def test_a_failed_stage_never_meets_its_target() -> None:
    assert Target(60).met(_row("labels", 1.0, status="failed"), {}) is False


def test_the_table_lists_measured_rows_in_stage_order_with_figures_and_verdicts() -> None:
    goals = targets("bench")
    rows = {
        "features": _row("features", 10.0, rows=20_000_000, unit="Silver rows", disk=3 * GIB),
        "ingest": _row("ingest", 125.0, rows=20_500_000, disk=2 * GIB),
        "validate_silver": _row("validate_silver", 45.0, rss=2.0),
    }
    lines = table(rows, goals).splitlines()
    assert lines[0] == "| stage | wall | CPU | peak RSS | rows | rows/s | disk | target | met? |"
    assert [line.split(" ")[1] for line in lines[2:]] == ["ingest", "validate_silver", "features"]
    assert lines[2] == ("| ingest (what) | 2.1 min | 2.1 min | 512 MiB | 20.5M rows | 164.0k | 2.00 GiB | "
                        "<= 12 min | yes |")  # fmt: skip
    assert lines[3].endswith("| <= 3x features, peak RSS < 1.50 GiB | no (4.50x, RSS 2.00 GiB) |")
    assert "| 20.0M Silver rows | 2.0M |" in lines[4]


def test_rows_are_read_from_the_churn_commands_summary_lines() -> None:
    synth = ("synth bench seed 7 -> /lake/bronze: members_v3.csv 157,538, train.csv 37,190, "
             "user_logs_v2.csv 622,802 (27.22 s)")  # fmt: skip
    assert synth_rows(synth) == 157_538 + 37_190 + 622_802
    ingest = (
        "ingest ingest-1: 2 sources ingested, 0 already in Silver: user_logs 1,000 in, 990 out, "
        "10 quarantined, 0 duplicates; members 20 in, 20 out, 0 quarantined, 0 duplicates -> x"
    )
    assert ROWS["ingest"][0](ingest) == 1_020
    score = "score 2017-03-31: 41,234 active users of 50,000 with features scored by m v1 -> churn_scores"
    assert ROWS["score"][0](score) == 41_234
    assert ROWS["ingest"][0]("ingest ingest-2: 0 sources ingested, 5 already in Silver -> x (0.1 s)") is None


def test_stages_run_in_the_benchmarks_order_and_unknown_names_are_refused() -> None:
    assert parse_stages("api,ingest,train") == ["ingest", "train", "api"]
    assert parse_stages(None)[0] == "generate"
    with pytest.raises(SystemExit, match="unknown scoring"):
        parse_stages("ingest,scoring")
    assert replaced_rows(["nightly"], generate=False) == {
        "nightly", "nightly_ingest", "nightly_validate_silver", "nightly_features", "nightly_validate_gold",
        "nightly_score",
    }  # fmt: skip
