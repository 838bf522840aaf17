"""Gold over a generated lake: labels by the rule, point-in-time features, batch/live parity."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.data.ingest import ingest
from churn.data.silver import silver_first_day
from churn.errors import ChurnError
from churn.features.gold import build_gold_features, build_labels, read_features, read_labels
from churn.features.spec import FEATURE_NAMES
from churn.lake import Lake
from churn.scores.live import user_features
from churn.settings import Settings
from churn.synth.profiles import get_profile
from churn.synth.writer import write_daily, write_dump

PROFILE = get_profile("tiny", users=600, days=240)
AS_OF = dt.date(2017, 3, 31)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A small generated dump, ingested into Silver (8 buckets)."""
    lake = Lake(str(tmp_path_factory.mktemp("gold") / "lake"))
    write_dump(lake, PROFILE, seed=21)
    ingest(lake, Settings(lake_url=lake.url, silver_buckets=8), "dump")
    return lake


def settings(lake: Lake) -> Settings:
    return Settings(lake_url=lake.url, silver_buckets=8)


def test_released_labels_are_used_and_the_rule_agrees_with_them_on_generated_data(lake: Lake) -> None:
    manifest = build_labels(lake, settings(lake), "2017-02", "run")
    assert manifest["source"] == "bronze/train.csv"
    ours = read_labels(lake, "2017-02").to_pandas().set_index("msno")["is_churn"]
    released = pd.read_csv(lake.path("bronze/train.csv")).set_index("msno")["is_churn"]
    assert len(ours) == len(released) > 50
    assert ours.sort_index().equals(released.sort_index().astype(ours.dtype))
    # The generator labels train.csv by the rule, so the rule over Silver reproduces every label.
    agreement = manifest["rule_agreement"]
    assert agreement["released_users"] == agreement["rule_users"] == agreement["both"] == len(released)
    assert agreement["agree"] == len(released) and agreement["share"] == 1.0


def test_cohort_beyond_silver_uses_the_released_file_or_says_why(lake: Lake) -> None:
    assert build_labels(lake, settings(lake), "2017-03", "run")["source"] == "bronze/train_v2.csv"
    with pytest.raises(
        ChurnError, match=r"cannot label cohort 2017-04: the rule needs transactions up to 2017-05-30"
    ):
        build_labels(lake, settings(lake), "2017-04", "run")


def test_batch_and_live_features_agree_exactly(lake: Lake) -> None:
    manifest = build_gold_features(lake, settings(lake), AS_OF, "run")
    gold = read_features(lake, AS_OF).to_pandas().set_index("msno")
    assert manifest["rows"] == len(gold) > 100 and manifest["features"] == list(FEATURE_NAMES)
    sample = gold.sample(25, random_state=3)
    for msno, row in sample.iterrows():
        live = user_features(lake, msno, AS_OF, logs_from=silver_first_day(lake, "user_logs"))
        assert live is not None
        for name in FEATURE_NAMES:
            a, b = row[name], live[name]
            assert (np.isnan(a) and np.isnan(b)) or a == b, (msno, name, a, b)
    assert user_features(lake, "A" * 43 + "=", AS_OF, logs_from=None) is None  # unknown user


def test_features_as_of_d_ignore_later_drops_and_rebuild_identically(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    write_dump(lake, PROFILE, seed=22)
    ingest(lake, settings(lake), "dump")
    build_gold_features(lake, settings(lake), AS_OF, "first")
    first = read_features(lake, AS_OF)
    # Rows dated after D, and members of the dump re-delivered with a new city and channel (rows that carry
    # no date of their own: only their delivery says they were not known on D).
    write_daily(lake, PROFILE, 22, dt.date(2017, 4, 1), dt.date(2017, 4, 5), member_updates=0.1)
    ingest(lake, settings(lake), "drops")
    build_gold_features(lake, settings(lake), AS_OF, "second")
    assert read_features(lake, AS_OF).equals(first)
    later = dt.date(2017, 4, 5)
    build_gold_features(lake, settings(lake), later, "later")
    before, after = (read_features(lake, day).to_pandas().set_index("msno") for day in (AS_OF, later))
    assert not after[list(FEATURE_NAMES)].equals(before[list(FEATURE_NAMES)])  # new rows count from their day
    both = before.index.intersection(after.index)
    for name in ("city", "registered_via"):  # each update changes both; about 10% a day over five days
        moved = (before.loc[both, name] != after.loc[both, name]) & before.loc[both, "has_member_row"].eq(1)
        assert 0.2 < moved.sum() / before.loc[both, "has_member_row"].sum() < 0.6, name


def test_ingest_and_the_gold_builds_log_their_progress_in_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Outside a terminal (here, Airflow) each long stage logs what it did: per source the blocks and rows
    parsed, the rows compacted, and per Gold build the buckets and rows, with rows/s."""
    lake = Lake(str(tmp_path / "lake"))
    write_dump(lake, get_profile("tiny", users=200, days=60), seed=23)
    progress = logging.getLogger("churn.progress")
    progress.addHandler(caplog.handler)
    progress.setLevel(logging.INFO)
    try:
        report = ingest(lake, settings(lake), "dump")
        features = build_gold_features(lake, settings(lake), AS_OF, "run")
        build_labels(lake, settings(lake), "2017-02", "run")
    finally:
        progress.removeHandler(caplog.handler)
        progress.setLevel(logging.NOTSET)
    told = [r.getMessage() for r in caplog.records if r.name == "churn.progress"]
    logs = next(r for r in report.sources if r.source.path == "bronze/user_logs_v2.csv")
    assert any(
        line.startswith("ingest bronze/user_logs_v2.csv: 1 of 1 blocks in ")
        and f"; {logs.rows_in:,} rows, " in line
        for line in told
    ), told
    staged = sum(r.rows_out + r.duplicates for r in report.sources)
    assert any(line.startswith(f"ingest compaction into 8 buckets: {staged:,} of {staged:,} rows in ")
               for line in told), told  # fmt: skip
    assert any(line.startswith("features as of 2017-03-31: 8 of 8 buckets in ")
               and f"; {features['rows']:,} rows, " in line for line in told), told  # fmt: skip
    assert any(line.startswith("labels of cohort 2017-02: 8 of 8 buckets in ") for line in told), told
