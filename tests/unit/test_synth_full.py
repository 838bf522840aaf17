"""The full profile: the real dump's row counts per file, measured on a 40,000-person sample of it.

Fitted on 200,000 people (seed 7), the full profile's 8.85M people give, against the real dump
(../shared/kkbox-data.md): members_v3 6.78M (+0.2%), transactions 24.4M (+13.2%), transactions_v2 1.34M
(-6.6%), user_logs 346M (-11.7%), user_logs_v2 20.8M (+13.1%), train 0.89M (-10.0%), train_v2 1.02M
(+5.2%), sample_submission_v2 1.02M (+12.5%). A sample of 40,000 adds a few percent of noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from churn.data import kkbox
from churn.features.labels import label_cohort
from churn.lake import Lake
from churn.synth.profiles import PROFILES, get_profile
from churn.synth.realism import format_report, report_from_frames
from churn.synth.writer import (
    DumpPart,
    _chunk_tx_table,
    chunk_count,
    dump_chunk,
    march_tables,
    simulate_chunk,
)

REAL_ROWS = {
    "members_v3.csv": 6_769_473,
    "transactions.csv": 21_547_746,
    "transactions_v2.csv": 1_431_009,
    "user_logs.csv": 392_106_543,
    "user_logs_v2.csv": 18_396_362,
    "train.csv": 992_931,
    "train_v2.csv": 970_960,
    "sample_submission_v2.csv": 907_471,
}
SAMPLE = 40_000


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> list[DumpPart]:
    """Every chunk of the full profile cut down to 40,000 people, as the dump writes them."""
    lake = Lake(str(tmp_path_factory.mktemp("full")))
    profile = get_profile("full", users=SAMPLE)
    return [dump_chunk(lake, profile, 7, index) for index in range(chunk_count(profile))]


def test_full_profile_has_the_real_dumps_row_counts_per_file(sample: list[DumpPart]) -> None:
    scale = PROFILES["full"].users / SAMPLE
    for name, real in REAL_ROWS.items():
        expected = scale * sum(part.rows[name] for part in sample)
        assert abs(expected / real - 1) <= 0.2, (name, f"{expected:,.0f}", f"{real:,}")


def test_full_profile_march_is_within_tolerance_of_the_real_march() -> None:
    profile = get_profile("full", users=SAMPLE)
    parts: dict[str, list[pa.Table]] = {"transactions_v2.csv": [], "user_logs_v2.csv": []}
    for index in range(chunk_count(profile)):
        for name, table in march_tables(simulate_chunk(7, profile, index)).items():
            parts[name].append(table)
    rows = report_from_frames({name: pa.concat_tables(t).to_pandas() for name, t in parts.items()})
    assert [r for r in rows if not r.within] == [], format_report(rows)


def test_labels_recover_the_planted_decisions_with_plans_paid_ahead() -> None:
    profile = get_profile("full", users=SAMPLE)
    chunks = [simulate_chunk(11, profile, index) for index in range(chunk_count(profile))]
    tx = pa.concat_tables([_chunk_tx_table(c) for c in chunks])
    decisions = pd.concat(
        pd.DataFrame({k: c.timeline.decisions[k] for k in ("uid", "expiry", "is_churn")}) for c in chunks
    )
    assert not decisions.duplicated(["uid", "expiry"]).any()
    frame = tx.to_pandas()
    renewals = frame[frame["is_cancel"] == 0].sort_values(["uid", "transaction_date"])
    gap = renewals.groupby("uid")["transaction_date"].diff()
    assert (gap.between(1, 10)).mean() > 0.05  # second plans bought a few days into a paid one
    for cohort in ("2016-06", "2017-02", "2017-03"):
        labels = label_cohort(tx, cohort, key="uid")
        joined = labels.merge(decisions, on=["uid", "expiry"], how="left")
        assert joined["is_churn_y"].notna().mean() >= 0.995, cohort
        matched = joined.dropna(subset=["is_churn_y"])
        assert (matched["is_churn_y"].astype(int) == matched["is_churn_x"]).mean() >= 0.995, cohort
        assert 0.05 <= labels["is_churn"].mean() <= 0.11, cohort


def test_members_only_people_have_a_member_row_and_nothing_else() -> None:
    profile = get_profile("full", users=10_000)
    chunk = simulate_chunk(7, profile, 0)
    subscribers = 10_000 - round(10_000 * profile.behaviour.dormant)
    dormant = chunk.users.uid[subscribers:]
    assert dormant.size == 4_800
    members = chunk.members
    assert members["has_row"][subscribers:].all()
    assert not np.isin(dormant, chunk.transactions["uid"]).any()
    assert not np.isin(dormant, chunk.timeline.intervals["uid"]).any()
    dump_end = kkbox.day_number(kkbox.DUMP_END)
    in_dump = members["has_row"] & (members["registration_init_time"] <= dump_end)
    without_tx = ~np.isin(members["uid"][in_dump], chunk.transactions["uid"])
    assert 0.45 <= without_tx.mean() <= 0.65  # most member rows belong to people without transactions
