"""The generator: exact KKBox formats, determinism, the real data's quirks, a realistic churn rate."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from churn.data import kkbox
from churn.features.labels import label_cohort
from churn.lake import Lake
from churn.synth.profiles import get_profile
from churn.synth.writer import _chunk_tx_table, chunk_count, simulate_chunk, write_daily, write_dump

MSNO = re.compile(r"^[A-Za-z0-9+/]{43}=$")
HEADERS = {
    "members_v3.csv": "msno,city,bd,gender,registered_via,registration_init_time",
    "transactions.csv": "msno,payment_method_id,payment_plan_days,plan_list_price,actual_amount_paid,"
    "is_auto_renew,transaction_date,membership_expire_date,is_cancel",
    "user_logs.csv": "msno,date,num_25,num_50,num_75,num_985,num_100,num_unq,total_secs",
    "train.csv": "msno,is_churn",
    "train_v2.csv": "msno,is_churn",
    "sample_submission_v2.csv": "msno,is_churn",
}
HEADERS["transactions_v2.csv"] = HEADERS["transactions.csv"]
HEADERS["user_logs_v2.csv"] = HEADERS["user_logs.csv"]


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny profile's dump (seed 7), written once for the module."""
    root = tmp_path_factory.mktemp("synth")
    write_dump(Lake(str(root)), get_profile("tiny"), seed=7)
    return root / "bronze"


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, dtype={"msno": str, "gender": str}, keep_default_na=False)


def test_every_file_has_the_real_header_and_no_quotes(dump: Path) -> None:
    for name, header in HEADERS.items():
        text = (dump / name).read_text()
        assert text.splitlines()[0] == header, name
        assert '"' not in text, name


def test_values_have_the_real_formats(dump: Path) -> None:
    for name in HEADERS:
        frame = read(dump, name)
        assert frame["msno"].str.match(MSNO).all(), name
    members = read(dump, "members_v3.csv")
    assert set(members["gender"]) <= {"", "male", "female"}
    for name, column in [
        ("transactions.csv", "transaction_date"),
        ("transactions.csv", "membership_expire_date"),
        ("user_logs.csv", "date"),
        ("members_v3.csv", "registration_init_time"),
    ]:
        values = read(dump, name)[column]
        assert values.dtype == np.int64 and values.astype(str).str.fullmatch(r"\d{8}").all(), (name, column)
    logs = read(dump, "user_logs.csv")
    assert logs["total_secs"].dtype == np.float64
    assert (logs[["num_25", "num_50", "num_75", "num_985", "num_100", "num_unq"]] >= 0).all().all()
    assert not logs.duplicated(["msno", "date"]).any()  # one row per user-day


def test_files_span_the_real_dates(dump: Path) -> None:
    tx, tx2 = read(dump, "transactions.csv"), read(dump, "transactions_v2.csv")
    logs, logs2 = read(dump, "user_logs.csv"), read(dump, "user_logs_v2.csv")
    assert tx["transaction_date"].min() >= 20150101 and tx["transaction_date"].max() <= 20170228
    assert tx2["transaction_date"].between(20170301, 20170331).all()
    assert logs["date"].min() == 20150101 and logs["date"].max() == 20170228
    assert logs2["date"].between(20170301, 20170331).all() and logs2["date"].max() == 20170331


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    def digest(seed: int, folder: str) -> dict[str, str]:
        root = tmp_path / folder
        write_dump(Lake(str(root)), get_profile("tiny", users=300, days=90), seed=seed)
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / "bronze").iterdir())
        }

    first, again, other = digest(3, "a"), digest(3, "b"), digest(4, "c")
    assert first == again
    assert all(first[name] != other[name] for name in first)


def test_every_quirk_of_the_real_files_is_present(dump: Path) -> None:
    members = read(dump, "members_v3.csv")
    tx = pd.concat([read(dump, "transactions.csv"), read(dump, "transactions_v2.csv")])
    logs = pd.concat([read(dump, "user_logs.csv"), read(dump, "user_logs_v2.csv")])
    labelled = pd.concat([read(dump, "train.csv"), read(dump, "train_v2.csv")])["msno"].unique()

    assert 0.58 <= (members["gender"] == "").mean() <= 0.72
    assert 0.60 <= (members["bd"] == 0).mean() <= 0.74
    assert ((members["bd"] < 0) | (members["bd"] > 100)).any()
    assert 0.70 * 0.85 <= (members["city"] == 1).mean() <= 0.71 * 1.15
    assert members["registered_via"].isin([3, 4, 7, 9]).mean() >= 0.97
    assert 0.05 <= 1 - np.isin(labelled, members["msno"]).mean() <= 0.18  # labelled users with no member row
    assert tx.duplicated().sum() >= 1
    assert (tx["membership_expire_date"] == 19700101).any()
    assert (tx["membership_expire_date"] >= 20360101).any()
    assert 0.02 <= (tx["payment_plan_days"] == 0).mean() <= 0.06
    assert ((tx["payment_plan_days"] == 7) & (tx["actual_amount_paid"] == 0)).any()  # free trials
    assert 0.02 <= tx["is_cancel"].mean() <= 0.06
    assert tx.duplicated(["msno", "transaction_date"], keep=False).mean() > 0.005  # several on one day
    assert (tx.loc[tx["payment_plan_days"] == 30, "plan_list_price"].value_counts().index[0]) == 149
    assert ((tx["payment_plan_days"] == 410) & tx["plan_list_price"].isin([1499, 1788])).any()
    assert (logs["total_secs"] < 0).any()
    assert (logs["total_secs"] > 86_400).any()


def _simulated(users: int) -> tuple[pa.Table, pd.DataFrame]:
    profile = get_profile("tiny", users=users)
    tables, decisions = [], []
    for index in range(chunk_count(profile)):
        chunk = simulate_chunk(11, profile, index)
        tables.append(_chunk_tx_table(chunk))
        d = chunk.timeline.decisions
        decisions.append(pd.DataFrame({"uid": d["uid"], "expiry": d["expiry"], "planted": d["is_churn"]}))
    return pa.concat_tables(tables), pd.concat(decisions)


@pytest.fixture(scope="module")
def simulated() -> tuple[pa.Table, pd.DataFrame]:
    """5,000 simulated users: transactions (with quirks) and every planted churn decision."""
    return _simulated(5_000)


@pytest.mark.parametrize("cohort", ["2016-03", "2016-09", "2017-01", "2017-02", "2017-03", "2017-04"])
def test_monthly_churn_rate_is_realistic(simulated: tuple[pa.Table, pd.DataFrame], cohort: str) -> None:
    labels = label_cohort(simulated[0], cohort, key="uid")
    assert len(labels) > 700
    assert 0.05 <= labels["is_churn"].mean() <= 0.11, labels["is_churn"].mean()


def test_overall_churn_rate_is_within_the_real_range(simulated: tuple[pa.Table, pd.DataFrame]) -> None:
    cohorts = [
        f"{y}-{m:02d}" for y, m in [(2016, m) for m in range(1, 13)] + [(2017, 1), (2017, 2), (2017, 3)]
    ]
    rates = [label_cohort(simulated[0], c, key="uid")["is_churn"].mean() for c in cohorts]
    assert 0.06 <= float(np.mean(rates)) <= 0.10


def test_label_rule_recovers_the_planted_decisions(simulated: tuple[pa.Table, pd.DataFrame]) -> None:
    tx, decisions = simulated
    assert not decisions.duplicated(["uid", "expiry"]).any()  # one decision per expiry day
    for cohort in ["2016-06", "2017-02", "2017-03"]:
        labels = label_cohort(tx, cohort, key="uid")
        joined = labels.merge(decisions, on=["uid", "expiry"], how="left")
        assert joined["planted"].notna().mean() >= 0.995, cohort
        matched = joined.dropna(subset=["planted"])
        assert (matched["planted"].astype(int) == matched["is_churn"]).mean() >= 0.995, cohort


def test_daily_drops_continue_the_same_users(dump: Path, tmp_path: Path) -> None:
    lake = Lake(str(dump.parent))
    profile = get_profile("tiny")
    write_daily(lake, profile, 7, dt.date(2017, 4, 1), dt.date(2017, 4, 3))
    drop = read(dump, "transactions/dt=2017-04-02/transactions.csv")
    assert (dump / "user_logs/dt=2017-04-03/user_logs.csv").read_text().splitlines()[0] == HEADERS[
        "user_logs.csv"
    ]
    assert (drop["transaction_date"] == 20170402).all() and len(drop) > 0
    known = set(read(dump, "transactions.csv")["msno"]) | set(read(dump, "transactions_v2.csv")["msno"])
    assert np.isin(drop["msno"], list(known)).mean() > 0.9
    logs = read(dump, "user_logs/dt=2017-04-02/user_logs.csv")
    assert (logs["date"] == 20170402).all() and len(logs) > 0

    alone = Lake(str(tmp_path / "alone"))
    write_daily(alone, profile, 7, dt.date(2017, 4, 2), dt.date(2017, 4, 2))
    for table in ("members", "transactions", "user_logs"):
        path = kkbox.daily_path(table, dt.date(2017, 4, 2))
        assert alone.read_text(path) == lake.read_text(path), table  # a day is the same in any range


def test_oracle_gives_each_labelled_user_a_true_probability(dump: Path) -> None:
    lake = Lake(str(dump.parent))
    for name, cohort in (("train.csv", "2017-02"), ("train_v2.csv", "2017-03")):
        labels = read(dump, name)
        oracle = lake.read_parquet(f"synth/oracle/cohort={cohort}").to_pandas()
        joined = labels.merge(oracle, on="msno", how="left")
        assert joined["churn_probability"].notna().all(), name
        assert joined["churn_probability"].between(0, 1).all()
        assert (joined["planted_is_churn"] == joined["is_churn"]).mean() >= 0.99
        # The oracle separates churners well but not perfectly: the outcome stays uncertain.
        assert (
            joined.loc[joined["is_churn"] == 1, "churn_probability"].mean()
            > 2 * joined["churn_probability"].mean()
        )
        assert joined.loc[joined["is_churn"] == 1, "churn_probability"].median() < 0.9


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    ranks = pd.Series(score).rank().to_numpy()
    positives = label == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_no_single_transaction_field_gives_the_label_away(simulated: tuple[pa.Table, pd.DataFrame]) -> None:
    tx, _ = simulated
    labels = label_cohort(tx, "2017-02", key="uid")
    frame = tx.to_pandas()
    before = frame[frame["transaction_date"] <= kkbox.day_number(dt.date(2017, 1, 31))]  # the cohort's cutoff
    last = before.sort_values(["uid", "transaction_date", "is_cancel"]).groupby("uid").last()
    joined = labels.join(last, on="uid")
    y = joined["is_churn"].to_numpy()
    for column in (
        "is_auto_renew",
        "is_cancel",
        "payment_plan_days",
        "actual_amount_paid",
        "payment_method_id",
    ):
        auc = _auc(joined[column].to_numpy(dtype=float), y)
        assert 0.2 < auc < 0.85, (column, auc)  # informative at most, never decisive
