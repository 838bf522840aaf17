"""Partial Kaggle downloads: the v2 set alone, the v1 set alone, members absent; released labels first.

The fixture files are written here in the exact KKBox formats (header, column order, YYYYMMDD dates,
44-character msno): a few users whose labels are easy to follow by hand.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from churn.data import kkbox
from churn.data.ingest import ingest
from churn.data.silver import read_silver
from churn.db import make_engine
from churn.errors import ChurnError
from churn.features.gold import build_gold_features, build_labels, read_features, read_labels
from churn.features.labels import knowable_on
from churn.features.spec import SPEC
from churn.lake import Lake
from churn.migrations import upgrade
from churn.model import registry
from churn.model.params import Params
from churn.model.training import ShortHistoryError, train
from churn.quality.validation import ValidationFailed, validate
from churn.scores.scoring import score
from churn.settings import Settings

V2_SET = ("members_v3.csv", "transactions_v2.csv", "user_logs_v2.csv", "train_v2.csv")
V1_SET = ("members_v3.csv", "transactions.csv", "user_logs.csv", "train.csv")
DAY = dt.date(2017, 3, 31)


def msno(name: str) -> str:
    """A real-looking msno: base64 of 32 bytes (44 characters ending with '=')."""
    return base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()


A, B, C, D, E, F = (msno(n) for n in "abcdef")


def tx(
    user: str, day: str, expire: str, *, cancel: int = 0, plan: int = 30, price: int = 149, method: int = 41,
    paid: int | None = None, auto: int = 1,
) -> str:  # fmt: skip
    """One transactions row: msno,payment_method_id,payment_plan_days,plan_list_price,actual_amount_paid,
    is_auto_renew,transaction_date,membership_expire_date,is_cancel."""
    return f"{user},{method},{plan},{price},{price if paid is None else paid},{auto},{day},{expire},{cancel}"


def logs(user: str, first: dt.date, last: dt.date) -> list[str]:
    """One user_logs row per day: msno,date,num_25,num_50,num_75,num_985,num_100,num_unq,total_secs."""
    days = (last - first).days + 1
    return [
        f"{user},{(first + dt.timedelta(d)).strftime('%Y%m%d')},{d % 4},1,0,{d % 3},{10 + d},{12 + d},"
        f"{2500.5 + 37 * d}"
        for d in range(days)
    ]


# Cohort 2017-02 (expiry in February after January's transactions): A renews in time, B never does,
# D renews 19 days late (not churn). Cohort 2017-03: A (expires 03-06), C (expires 03-03).
FILES: dict[str, list[str]] = {
    "members_v3.csv": [
        f"{A},1,0,,7,20150302",
        f"{B},13,28,male,9,20160115",
        f"{C},5,31,female,3,20140601",
        f"{D},1,0,,4,20161201",
    ],
    "transactions.csv": [
        tx(A, "20170105", "20170204"),
        tx(A, "20170203", "20170306"),
        tx(B, "20161001", "20161031", method=39, plan=7, price=0, auto=0),
        tx(B, "20170110", "20170209", method=36, price=180, paid=129, auto=0),
        tx(C, "20170201", "20170303"),
        tx(D, "20161220", "20170119"),
        tx(D, "20170120", "20170219"),
    ],
    "transactions_v2.csv": [
        tx(A, "20170305", "20170405"),
        tx(C, "20170302", "20170402"),
        tx(D, "20170310", "20170410"),
        tx(E, "20170315", "20170415", method=38, plan=90, price=447),
        tx(F, "20170320", "20170331", cancel=1),
        tx(E, "20170331", "20170715", method=38, plan=90, price=447),
    ],
    "user_logs.csv": [
        *logs(A, dt.date(2017, 1, 1), dt.date(2017, 2, 28)),
        *logs(B, dt.date(2017, 1, 10), dt.date(2017, 2, 5)),
        *logs(D, dt.date(2016, 12, 20), dt.date(2017, 2, 28)),
    ],
    "user_logs_v2.csv": [
        *logs(A, dt.date(2017, 3, 1), dt.date(2017, 3, 31)),
        *logs(C, dt.date(2017, 3, 2), dt.date(2017, 3, 30)),
        *logs(E, dt.date(2017, 3, 15), dt.date(2017, 3, 31)),
    ],
    # Released: D is churn in train.csv although the rule says not (the rule reproduces ~95-99% of the
    # real labels); F is released but not in the rule's cohort.
    "train.csv": [f"{A},0", f"{B},1", f"{D},1", f"{F},0"],
    "train_v2.csv": [f"{A},0", f"{C},0", f"{E},1"],
}
HEADERS = {
    "members_v3.csv": kkbox.MEMBERS, "transactions.csv": kkbox.TRANSACTIONS,
    "transactions_v2.csv": kkbox.TRANSACTIONS, "user_logs.csv": kkbox.USER_LOGS,
    "user_logs_v2.csv": kkbox.USER_LOGS, "train.csv": kkbox.LABELS, "train_v2.csv": kkbox.LABELS,
}  # fmt: skip


def write_files(lake: Lake, names: tuple[str, ...]) -> None:
    """Write the named fixture files into Bronze, as the Kaggle download names them."""
    for name in names:
        header = ",".join(HEADERS[name].column_names)
        lake.write_bytes(f"bronze/{name}", ("\n".join([header, *FILES[name]]) + "\n").encode(), "text/csv")


def settings_for(lake: Lake, **extra: object) -> Settings:
    return Settings(lake_url=lake.url, silver_buckets=2, dask_workers=1, **extra)


@pytest.fixture
def v2_lake(tmp_path: Path) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    write_files(lake, V2_SET)
    return lake


def test_the_v2_set_alone_ingests_and_names_what_is_missing(
    v2_lake: Lake, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="churn.data.ingest"):
        report = ingest(v2_lake, settings_for(v2_lake), "v2")
    missing = ["bronze/transactions.csv", "bronze/user_logs.csv", "bronze/train.csv"]
    assert report.summary()["missing"] == missing
    assert v2_lake.read_json("silver/_manifests/v2.json")["missing"] == missing
    assert any(all(m in r.getMessage() for m in missing) for r in caplog.records)
    assert read_silver(v2_lake, "transactions").num_rows == len(FILES["transactions_v2.csv"])
    assert read_silver(v2_lake, "user_logs").num_rows == len(FILES["user_logs_v2.csv"])


def test_the_v1_set_alone_ingests(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    write_files(lake, V1_SET)
    report = ingest(lake, settings_for(lake), "v1")
    assert report.summary()["missing"] == [
        "bronze/transactions_v2.csv", "bronze/user_logs_v2.csv", "bronze/train_v2.csv"
    ]  # fmt: skip
    assert read_silver(lake, "transactions").num_rows == len(FILES["transactions.csv"])
    assert read_silver(lake, "user_logs").num_rows == len(FILES["user_logs.csv"])
    # The v1 set ends 2017-02-28: the rule cannot see February's renewal window, train.csv can.
    assert build_labels(lake, settings_for(lake), "2017-02", "l")["source"] == "bronze/train.csv"


def test_members_absent_ingests_and_features_say_no_member_row(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    write_files(lake, ("transactions.csv", "transactions_v2.csv", "user_logs.csv", "user_logs_v2.csv"))
    report = ingest(lake, settings_for(lake), "no-members")
    assert "bronze/members_v3.csv" in report.summary()["missing"]
    build_gold_features(lake, settings_for(lake), DAY, "f")
    features = read_features(lake, DAY).to_pandas()
    assert len(features) == 6
    assert (features["has_member_row"] == 0).all()
    assert features[["city", "age", "registered_via", "registration_days"]].isna().all().all()
    # Validation reports the absent table as absent, not its empty feature group as critical.
    silver = validate(lake, "silver", None, "vs")
    assert silver.absent == ["members"] and "members" not in silver.rows
    gold = validate(lake, "gold", DAY, "vg")
    assert gold.absent == ["members"]
    assert not [f for f in gold.failures if f.column in ("city", "age", "registered_via")]
    assert lake.read_json("reports/validation/gold/2017-03-31/summary.json")["absent"] == ["members"]


def test_absent_user_logs_give_missing_listening_features_not_zeros(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    write_files(lake, ("members_v3.csv", "transactions.csv", "transactions_v2.csv"))
    ingest(lake, settings_for(lake), "no-logs")
    build_gold_features(lake, settings_for(lake), DAY, "f")  # Silver's newest day: the last transaction
    features = read_features(lake, DAY).to_pandas()
    assert features[["secs_30d", "plays_7d", "active_days_90d", "days_since_listen"]].isna().all().all()
    assert features["has_member_row"].sum() == 4  # A-D have members rows


def test_released_labels_win_for_their_cohort_and_the_rule_serves_the_others(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    write_files(lake, tuple(FILES))
    ingest(lake, settings_for(lake), "full")
    manifest = build_labels(lake, settings_for(lake), "2017-02", "l")
    assert manifest["source"] == "bronze/train.csv"
    labels = read_labels(lake, "2017-02").to_pandas().set_index("msno")["is_churn"].to_dict()
    assert labels == {A: 0, B: 1, D: 1, F: 0}  # the released file, D included
    # The rule's cohort is A, B, D: all three released too; the rule disagrees on D.
    assert manifest["rule_agreement"] == {
        "released_users": 4, "rule_users": 3, "both": 3, "agree": 2, "share": pytest.approx(2 / 3)
    }  # fmt: skip
    other = build_labels(lake, settings_for(lake), "2017-01", "l")
    assert other["source"] == "wsdm rule over silver/transactions" and "rule_agreement" not in other
    # 2017-03 cannot be checked by the rule (Silver ends 2017-03-31): released, no agreement figure.
    march = build_labels(lake, settings_for(lake), "2017-03", "l")
    assert march["source"] == "bronze/train_v2.csv" and march["rule_agreement"] is None


# -- the v2 set: labels, features and scores with a champion trained elsewhere; no training ----------------
@pytest.fixture
def v2_settings(v2_lake: Lake, champion_store: dict[str, str], pg_url: str) -> Iterator[Settings]:
    engine = make_engine(pg_url)
    upgrade(engine)
    engine.dispose()
    ingest(v2_lake, settings_for(v2_lake), "v2")
    yield settings_for(v2_lake, database_url=pg_url, **champion_store)


def test_the_v2_set_labels_march_scores_with_a_champion_and_refuses_training(
    v2_lake: Lake, v2_settings: Settings, params: Params
) -> None:
    manifest = build_labels(v2_lake, v2_settings, "2017-03", "l")
    assert manifest["source"] == "bronze/train_v2.csv" and manifest["rows"] == 3
    report = score(v2_lake, v2_settings, DAY, "score-v2")
    assert report.model_version == registry.alias_version(v2_settings, registry.CHAMPION)
    assert report.rows >= 3  # A, C, D, E hold memberships past the day
    features = read_features(v2_lake, DAY).to_pandas()
    assert np.isnan(features["last_plan_days"]).sum() == 0 and len(features) == 5
    for opt_in in (False, True):  # nothing to train on: the opt-in cannot help and is not offered
        with pytest.raises(ShortHistoryError) as caught:
            train(v2_lake, v2_settings, params, "2017-03", "t-v2", allow_short_history=opt_in)
        message = str(caught.value)
        for expected in ("no leak-free training", "2016-12-31", "transactions", "user logs",
                         "transactions.csv", "user_logs.csv", "--allow-short-history cannot help",
                         "train_v2.csv for 2017-03", "champion trained elsewhere"):  # fmt: skip
            assert expected in message, (expected, message)
        assert "pass --allow-short-history" not in message
    assert not v2_lake.exists("gold/labels/cohort=2017-01")  # stopped before building anything


def test_a_stray_early_row_is_not_history(v2_lake: Lake, params: Params) -> None:
    """One 2015 transaction and one 2015 log row do not make the v2 set a history: coverage counts."""
    header = ",".join(kkbox.TRANSACTIONS.column_names)
    v2_lake.write_bytes(
        "bronze/transactions_v2.csv",
        "\n".join([header, *FILES["transactions_v2.csv"], tx(B, "20150101", "20150131")]).encode() + b"\n",
    )
    logs_header = ",".join(kkbox.USER_LOGS.column_names)
    v2_lake.write_bytes("bronze/user_logs_v2.csv", "\n".join(
        [logs_header, *FILES["user_logs_v2.csv"], logs(B, dt.date(2015, 1, 5), dt.date(2015, 1, 5))[0]]
    ).encode() + b"\n")  # fmt: skip
    ingest(v2_lake, settings_for(v2_lake), "v2")
    with pytest.raises(ShortHistoryError, match="no leak-free training"):
        train(v2_lake, settings_for(v2_lake), params, "2017-03", "t-stray", allow_short_history=True)


def test_short_history_trains_only_when_asked_and_never_promotes(tmp_path: Path, params: Params) -> None:
    from churn.synth.profiles import get_profile
    from churn.synth.writer import write_dump

    lake = Lake(str(tmp_path / "lake"))
    write_dump(lake, get_profile("tiny", users=1500, days=240), seed=9)
    lake.remove("bronze/user_logs.csv")  # listening history starts 2017-03-01
    root = tmp_path / "mlflow"
    settings = settings_for(
        lake, mlflow_tracking_uri=f"sqlite:///{root}.db", mlflow_artifact_location=str(root)
    )
    ingest(lake, settings, "dump")
    with pytest.raises(
        ShortHistoryError,
        match=r"2017-01 \(eve 2016-12-31\): no user logs in 2016-12.*user_logs\.csv.*"
        r"pass --allow-short-history",
    ):
        train(lake, settings, params, "2017-03", "t-refused")
    result = train(lake, settings, params, "2017-03", "t-short", allow_short_history=True)
    assert result.train_cohorts == ["2016-12", "2017-01"]  # transactions cover every eve
    assert not result.decision.promote and "short history" in result.decision.reason
    assert registry.alias_version(settings, registry.CHAMPION) is None
    tags = registry.client(settings).get_model_version(settings.model_name, str(result.version)).tags
    assert "no user logs in 2016-12" in tags["short_history"]
    # The model learnt without listening: those features are missing, not "did not listen".
    eve = read_features(lake, dt.date(2016, 12, 31)).to_pandas()
    assert eve[["secs_7d", "plays_30d", "active_days_180d"]].isna().all().all()


def test_short_history_opt_in_trains_on_the_cohorts_whose_eve_has_history(
    tmp_path: Path, params: Params
) -> None:
    from churn.synth.profiles import get_profile
    from churn.synth.writer import write_dump

    lake = Lake(str(tmp_path / "lake"))
    write_dump(lake, get_profile("tiny", users=1500, days=131), seed=9)  # history from 2016-11-21
    root = tmp_path / "mlflow"
    settings = settings_for(
        lake, mlflow_tracking_uri=f"sqlite:///{root}.db", mlflow_artifact_location=str(root)
    )
    ingest(lake, settings, "dump")
    # November holds 10 days of data: the eve of 2016-12 has no history behind it, that of 2017-01 has.
    with pytest.raises(ShortHistoryError, match=r"2016-12 \(eve 2016-11-30\): no transactions, user logs"):
        train(lake, settings, params, "2017-03", "t-refused")
    result = train(lake, settings, params, "2017-03", "t-short", allow_short_history=True)
    assert result.train_cohorts == ["2017-01"]
    expiry = read_labels(lake, "2017-01")["expiry_date"].cast("int32").to_numpy()
    assert result.metrics["rows_train"] == knowable_on(expiry, dt.date(2017, 2, 28)).sum() > 100
    assert not lake.exists("gold/labels/cohort=2016-12")  # the dropped cohorts are not built
    assert not result.decision.promote


# -- released label files are checked row by row --------------------------------------------------------
@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["msno,is_churn", f"{A},0", f"{A},1", f"{B},1"], r"line 3: msno .* repeats line 2"),
        (["msno,is_churn", f"{A},2", f"{B},1"], r"line 2: is_churn is '2'"),
        (["msno,is_churn", f"{A},", f"{B},1"], r"line 2: is_churn is ''"),
        (["msno,is_churn", f"{A},yes", f"{B},1"], r"line 2: is_churn is 'yes'"),
        (["msno,is_churn", f"{A},0", "short,1"], r"line 3: msno 'short' is not"),
        (["msno,churn", f"{A},0"], r"line 1: header is 'msno,churn', expected 'msno,is_churn'"),
        (["msno,is_churn", f"{A},0,1"], r"line 2: "),
    ],
    ids=["duplicate", "two", "empty", "text", "bad-msno", "header", "extra-field"],
)
def test_a_bad_released_label_file_is_refused_naming_file_line_and_field(
    tmp_path: Path, lines: list[str], expected: str
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    write_files(lake, ("members_v3.csv", "transactions.csv", "transactions_v2.csv"))
    ingest(lake, settings_for(lake), "x")
    lake.write_bytes("bronze/train.csv", ("\n".join(lines) + "\n").encode())
    with pytest.raises(ChurnError, match=r"bronze/train\.csv " + expected):
        build_labels(lake, settings_for(lake), "2017-02", "l")
    assert not lake.exists("gold/labels/cohort=2017-02")


def test_released_label_parts_carry_the_rules_expiry_where_it_has_one(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    write_files(lake, tuple(FILES))
    ingest(lake, settings_for(lake), "full")
    build_labels(lake, settings_for(lake), "2017-02", "l")
    parts = read_labels(lake, "2017-02").to_pandas().set_index("msno")["expiry_date"]
    # A, B, D are in the rule's cohort (expiries 02-04, 02-09, 02-19); F is not: no expiry.
    assert parts.to_dict() == {
        A: dt.date(2017, 2, 4), B: dt.date(2017, 2, 9), D: dt.date(2017, 2, 19), F: None
    }  # fmt: skip


def test_churn_labels_prints_the_rule_agreement(tmp_path: Path) -> None:
    from tests.unit.test_cli import run_churn

    lake = Lake(str(tmp_path / "lake"))
    write_files(lake, tuple(FILES))
    ingest(lake, settings_for(lake), "full")
    env = {"CHURN_LAKE_URL": lake.url, "CHURN_SILVER_BUCKETS": "2", "CHURN_DASK_WORKERS": "1"}
    result = run_churn("labels", "--cohort", "2017-02", env=env)
    assert result.returncode == 0, result.stderr
    assert "rule agrees with it on 2 of 3 users both label (66.7%)" in result.stdout, result.stdout
    assert "already built" not in result.stdout


def test_churn_labels_and_features_keep_a_current_build_unless_forced(tmp_path: Path) -> None:
    """The command line ensures, like the nightly tasks: a second run keeps the build (same run id in
    the manifest), `--force` rebuilds it."""
    from tests.unit.test_cli import run_churn

    lake = Lake(str(tmp_path / "lake"))
    write_files(lake, tuple(FILES))
    ingest(lake, settings_for(lake), "full")
    env = {"CHURN_LAKE_URL": lake.url, "CHURN_SILVER_BUCKETS": "2", "CHURN_DASK_WORKERS": "1"}
    commands = [(["labels", "--cohort", "2017-02"], "gold/labels/cohort=2017-02"),
                (["features", "--as-of", "2017-03-31"], "gold/features/as_of=2017-03-31")]  # fmt: skip
    for command, manifest in commands:
        first = run_churn(*command, env=env)
        assert first.returncode == 0 and "already built" not in first.stdout, first.stderr
        build = lake.read_json(f"{manifest}/_manifest.json")["run_id"]
        again = run_churn(*command, env=env)
        assert again.returncode == 0, again.stderr
        assert f"already built from the current Silver (build {build}" in again.stdout, again.stdout
        assert lake.read_json(f"{manifest}/_manifest.json")["run_id"] == build
        forced = run_churn(*command, "--force", env=env)
        assert forced.returncode == 0 and "already built" not in forced.stdout, forced.stderr
        assert lake.read_json(f"{manifest}/_manifest.json")["run_id"] != build


def test_a_lake_of_daily_drops_alone_is_not_a_partial_dump(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from churn.synth.profiles import get_profile
    from churn.synth.writer import write_daily

    lake = Lake(str(tmp_path / "lake"))
    write_daily(lake, get_profile("tiny", users=200, days=60), 3, dt.date(2017, 4, 1), dt.date(2017, 4, 2))
    with caplog.at_level(logging.WARNING, logger="churn.data.ingest"):
        report = ingest(lake, settings_for(lake), "drops")
    assert report.sources and report.summary()["missing"] == []
    assert not [r for r in caplog.records if "Kaggle files not in" in r.getMessage()]


# -- listening before the user logs begin is unknown, not silence ----------------------------------------
def test_listening_windows_before_the_user_logs_begin_are_missing(tmp_path: Path) -> None:
    """All but the 30 GB user_logs.csv: the logs begin 2017-03-01, so nothing is known of listening
    before; a window reaching before that day is missing, one inside it is counted."""
    lake = Lake(str(tmp_path / "lake"))
    write_files(lake, ("members_v3.csv", "transactions.csv", "transactions_v2.csv", "user_logs_v2.csv"))
    ingest(lake, settings_for(lake), "x")
    eve = dt.date(2017, 2, 28)
    build_gold_features(lake, settings_for(lake), eve, "f")
    before = read_features(lake, eve).to_pandas()
    listening = [f.name for f in SPEC if f.group == "listening"]
    assert len(before) == 4 and before[listening].isna().all().all()
    build_gold_features(lake, settings_for(lake), DAY, "f")
    march = read_features(lake, DAY).to_pandas().set_index("msno")
    assert march.loc[A, "secs_30d"] == pytest.approx(sum(2500.5 + 37 * d for d in range(1, 31)))
    assert march.loc[A, "active_days_7d"] == 7 and march.loc[A, "days_since_listen"] == 0
    assert march[["secs_90d", "plays_180d", "secs_trend_30_90"]].isna().all().all()
    # Missing by design, so the Gold suite does not call those columns constant or all-null (four users
    # make other columns constant: those failures are real and stay).
    failing = gold_failures(lake, eve)
    assert "last_plan_days" in failing and not set(failing) & set(listening), failing
    failing = gold_failures(lake, DAY)
    assert not {"secs_90d", "plays_180d", "secs_trend_30_90"} & set(failing), failing


def gold_failures(lake: Lake, day: dt.date) -> list[str]:
    """The columns the Gold suite fails as of a day (critical or not), from its summary."""
    with contextlib.suppress(ValidationFailed):
        validate(lake, "gold", day, "vg")
    summary = lake.read_json(f"reports/validation/gold/{day.isoformat()}/summary.json")
    return [failure["column"] for failure in summary["failures"]]
