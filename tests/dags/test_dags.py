"""The Airflow DAGs: they load, are wired and scheduled as designed, parse fast, and run end to end with
`dag.test()` against real PostgreSQL. Airflow runs in subprocesses with their own AIRFLOW_HOME (SQLite
metadata), so its configuration never leaks into the other tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from churn.db import make_engine
from churn.lake import Lake
from churn.migrations import upgrade

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


def airflow_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "AIRFLOW"))}
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    })  # fmt: skip
    return env | (extra or {})


def run_python(code: str, env: dict[str, str], timeout: int = 600) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


LOAD = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={dags!r})
print(json.dumps({{
    "errors": {{k: v[-300:] for k, v in bag.import_errors.items()}},
    "dags": {{d.dag_id: {{
        "tasks": sorted(t.task_id for t in d.tasks),
        "edges": sorted([t.task_id, d2] for t in d.tasks for d2 in t.downstream_task_ids),
        "timetable": type(d.timetable).__name__,
        "cron": getattr(d.timetable, "_expression", None),
        "catchup": d.catchup, "max_active_runs": d.max_active_runs,
        "params": sorted(d.params.keys()),
        "outlets": sorted(a.name for t in d.tasks for a in getattr(t, "outlets", [])),
    }} for d in bag.dags.values()}},
}}))
"""


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("airflow")
    return json.loads(run_python(LOAD.format(dags=str(DAGS)), airflow_env(home)).strip().splitlines()[-1])


def test_every_dag_loads_without_import_errors(dagbag: dict) -> None:
    assert dagbag["errors"] == {}
    assert set(dagbag["dags"]) == {
        "churn_ingest",
        "churn_training",
        "churn_nightly_scoring",
        "churn_weekly_drift",
    }


def test_nightly_scoring_is_wired_and_scheduled_as_designed(dagbag: dict) -> None:
    dag = dagbag["dags"]["churn_nightly_scoring"]
    assert (dag["timetable"], dag["cron"]) == ("CronDataIntervalTimetable", "0 2 * * *")
    assert dag["catchup"] is False and dag["max_active_runs"] == 1
    # features hands its build id to validate_gold and score_and_publish: the build checked is the one
    # scored
    assert dag["edges"] == [["features", "score_and_publish"], ["features", "validate_gold"],
                            ["validate_gold", "score_and_publish"],
                            ["validate_silver", "features"]]  # fmt: skip
    assert dag["outlets"] == ["churn_scores"]


def test_training_is_manual_with_a_params_form(dagbag: dict) -> None:
    dag = dagbag["dags"]["churn_training"]
    assert dag["timetable"] == "NullTimetable"
    assert dag["params"] == ["cohort", "overrides", "promote", "sample_fraction"]
    assert dag["edges"] == [["gold_data", "validate_gold"], ["validate_gold", "train_register_promote"]]
    assert dag["outlets"] == ["churn_champion"]


def test_weekly_drift_reports_then_checks_on_mondays(dagbag: dict) -> None:
    dag = dagbag["dags"]["churn_weekly_drift"]
    assert (dag["timetable"], dag["cron"]) == ("CronDataIntervalTimetable", "0 3 * * 1")
    assert dag["catchup"] is False and dag["max_active_runs"] == 1
    assert dag["edges"] == [["drift_report", "check_thresholds"]]
    assert dag["outlets"] == ["churn_drift_report"]


def test_ingest_is_daily(dagbag: dict) -> None:
    """The nightly run builds the day's features itself: no other DAG builds them."""
    ingest = dagbag["dags"]["churn_ingest"]
    assert (ingest["timetable"], ingest["cron"]) == ("CronDataIntervalTimetable", "0 1 * * *")
    assert ingest["outlets"] == ["churn_silver"]


def test_dag_files_import_fast(tmp_path: Path) -> None:
    code = f"""
import importlib.util, json, pathlib, time
# the framework's own first-use cost is not the DAG file's: warm it up with a throwaway DAG
import datetime as dt
from airflow.sdk import Asset, Param, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable
@dag(dag_id="warm_up", schedule=CronDataIntervalTimetable("0 1 * * *", timezone="UTC"),
     start_date=dt.datetime(2017, 1, 1, tzinfo=dt.timezone.utc), params={{"p": Param(1, type="integer")}})
def warm_up():
    @task(outlets=[Asset(name="warm", uri="churn://warm")])
    def t() -> None: ...
    t()
warm_up()
times = {{}}
for path in sorted(pathlib.Path({str(DAGS)!r}).glob("churn_*.py")):  # the DAG files
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    started = time.perf_counter()
    spec.loader.exec_module(module)
    times[path.name] = time.perf_counter() - started
print(json.dumps(times))
"""
    times = json.loads(run_python(code, airflow_env(tmp_path)).strip().splitlines()[-1])
    assert len(times) == 4
    assert all(seconds < 0.5 for seconds in times.values()), times


def copy_lake(lake: Lake, root: Path) -> Lake:
    """The lake's Bronze and Silver (no Gold: other tests' builds stay out) in a folder of its own."""
    for layer in ("bronze", "silver"):
        shutil.copytree(Path(lake.url) / layer, root / layer)
    return Lake(str(root))


def copy_to_s3(lake: Lake, endpoint: str, bucket: str) -> str:
    """The lake's Bronze (its released label files label the newest cohort) and Silver on the loopback S3
    server; returns its s3:// URL."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    root = Path(lake.url)
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and relative.startswith(("bronze/", "silver/")):
            client.upload_file(str(path), bucket, f"lake/{relative}")
    return f"s3://{bucket}/lake"


@pytest.mark.slow
def test_nightly_scoring_dag_runs_publish_a_rerun_replaces_and_a_date_range_backfills(
    small_lake: Lake, champion_store: dict[str, str], pg_url: str, tmp_path: Path
) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    engine.dispose()
    lake = copy_lake(small_lake, tmp_path / "nightly-lake")  # no Gold built by other tests
    env = airflow_env(tmp_path, {
        "CHURN_LAKE_URL": lake.url, "CHURN_DATABASE_URL": pg_url, "CHURN_SILVER_BUCKETS": "4",
        "CHURN_DASK_WORKERS": "1", "CHURN_MLFLOW_TRACKING_URI": champion_store["mlflow_tracking_uri"],
        "CHURN_MLFLOW_ARTIFACT_LOCATION": champion_store["mlflow_artifact_location"],
    })  # fmt: skip
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env=env, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    code = f"""
import datetime as dt, json
from airflow.dag_processing.dagbag import DagBag
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

def returned(run):  # what each task of the run returned
    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, key="return_value"))
        return {{x.task_id: XComModel.deserialize_value(x) for x in rows}}

dag = DagBag(dag_folder={str(DAGS)!r}).get_dag("churn_nightly_scoring")
for _ in range(2):  # the same interval twice: the second run replaces the first
    run = dag.test(logical_date=dt.datetime(2017, 4, 1, 2, tzinfo=dt.timezone.utc))  # scores 2017-03-31
    print("STATE", run.state)
    print("RETURNED", json.dumps(returned(run)))
for day in (29, 30):  # a range of earlier intervals, one run each as a backfill makes them
    run = dag.test(logical_date=dt.datetime(2017, 3, day + 1, 2, tzinfo=dt.timezone.utc))
    print("STATE", run.state)
"""
    out = run_python(code, env)
    assert out.count("STATE success") == 4, out[-3000:]
    first, second = (json.loads(line[len("RETURNED ") :]) for line in out.splitlines()
                     if line.startswith("RETURNED "))  # fmt: skip
    # One build of 2017-03-31's features over both runs, made by the features task; both runs checked and
    # scored exactly that build (score never built its own).
    build = lake.read_json("gold/features/as_of=2017-03-31/_manifest.json")["run_id"]
    assert build == first["features"]["run_id"] and build.startswith("features-")
    assert (first["features"]["built"], second["features"]["built"]) == (True, False)
    for night in (first, second):
        assert night["features"]["features_run_id"] == build
        assert night["validate_gold"]["build_run_id"] == build
        assert night["score_and_publish"]["features_run_id"] == build
    check = create_engine(pg_url)
    with check.connect() as connection:
        query = (
            "SELECT status, rows_scored, airflow_dag_id, airflow_run_id FROM score_runs WHERE score_date = :d"
        )
        runs = connection.execute(text(query + " ORDER BY started_at"), {"d": "2017-03-31"}).all()
        rows = connection.execute(
            text("SELECT count(*) FROM churn_scores WHERE score_date = '2017-03-31'")
        ).scalar()
        dates = (
            connection.execute(
                text("SELECT score_date FROM score_runs WHERE status = 'published' ORDER BY score_date")
            )
            .scalars()
            .all()
        )
    check.dispose()
    assert [str(d) for d in dates] == ["2017-03-29", "2017-03-30", "2017-03-31"]
    assert [r.status for r in runs] == ["superseded", "published"]
    assert runs[1].rows_scored == rows > 0
    assert runs[1].airflow_dag_id == "churn_nightly_scoring" and runs[1].airflow_run_id


@pytest.mark.slow
def test_training_scoring_and_drift_dags_on_the_s3_lake(
    small_lake: Lake, pg_url: str, tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    """The whole scheduled path on the loopback S3 server, its credentials given as an Airflow connection
    (read through the amazon provider), never as CHURN_S3_*: training from the Params form, a nightly
    scoring run, the weekly drift run whose report lands in the bucket."""
    import boto3

    engine = make_engine(pg_url)
    upgrade(engine)
    engine.dispose()
    store = tmp_path / "mlflow"
    connection = {"conn_type": "aws", "login": "testing", "password": "testing",
                  "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}  # fmt: skip
    env = airflow_env(tmp_path, {
        "CHURN_LAKE_URL": copy_to_s3(small_lake, s3_endpoint, s3_bucket), "CHURN_DATABASE_URL": pg_url,
        "AIRFLOW_CONN_CHURN_LAKE": json.dumps(connection), "CHURN_SILVER_BUCKETS": "4",
        "CHURN_DASK_WORKERS": "1", "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
        "CHURN_MLFLOW_ARTIFACT_LOCATION": str(store / "artifacts"),
        "CHURN_PARAMS_FILE": str(REPO / "params.yaml"), "TMPDIR": str(tmp_path),
    })  # fmt: skip
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env=env, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    overrides = {"train.train_cohorts": 2, "lightgbm.n_estimators": 200, "lightgbm.learning_rate": 0.1}
    conf = {"cohort": "2017-03", "sample_fraction": 1.0, "promote": True, "overrides": overrides}
    code = f"""
import datetime as dt
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(DAGS)!r})
utc = dt.timezone.utc
print("STATE", bag.get_dag("churn_training").test(run_conf={conf!r}).state)
night = dt.datetime(2017, 3, 27, 2, tzinfo=utc)  # scores Sunday 2017-03-26
print("STATE", bag.get_dag("churn_nightly_scoring").test(logical_date=night).state)
monday = dt.datetime(2017, 3, 27, 3, tzinfo=utc)  # the week 2017-03-20..2017-03-26
print("STATE", bag.get_dag("churn_weekly_drift").test(logical_date=monday).state)
"""
    out = run_python(code, env, timeout=900)
    assert out.count("STATE success") == 3, out[-4000:]

    from churn.model import registry
    from churn.settings import Settings

    settings = Settings(mlflow_tracking_uri=env["CHURN_MLFLOW_TRACKING_URI"])
    assert registry.alias_version(settings, registry.CHAMPION) == 1
    tags = registry.client(settings).get_model_version(settings.model_name, "1").tags
    assert tags["airflow_dag_id"] == "churn_training" and tags["airflow_run_id"]
    assert tags["train_cohorts"] == "2016-12,2017-01"  # the form's override reached training
    check = create_engine(pg_url)
    with check.connect() as db:
        published = db.execute(
            text("SELECT score_date, rows_scored FROM score_runs WHERE status = 'published'")
        ).all()
        drift = db.execute(text("SELECT week_ending, report_uri, score_dates FROM drift_reports")).one()
    check.dispose()
    assert [str(r.score_date) for r in published] == ["2017-03-26"] and published[0].rows_scored > 0
    assert str(drift.week_ending) == "2017-03-26" and [str(d) for d in drift.score_dates] == ["2017-03-26"]
    key = "lake/reports/drift/week=2017-03-26/index.html"
    assert drift.report_uri == f"s3://{s3_bucket}/{key}"
    head = boto3.client("s3", endpoint_url=s3_endpoint).head_object(Bucket=s3_bucket, Key=key)
    assert 0 < head["ContentLength"] < 10 * 1024 * 1024


WINDOW = """
import datetime as dt, json
from airflow.dag_processing.dagbag import DagBag
from airflow.timetables.base import DataInterval, TimeRestriction
bag = DagBag(dag_folder={dags!r})
out = {{"errors": {{k: v[-500:] for k, v in bag.import_errors.items()}}}}
def covered(info):  # the day a run covers (the DAGs' DAY: the day before the interval's end)
    return None if info is None else str((info.data_interval.end - dt.timedelta(days=1)).date())
for dag in bag.dags.values():
    if dag.dag_id == "churn_training":
        continue
    tt = dag.timetable
    unpaused = tt.next_dagrun_info(last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=dag.start_date, latest=dag.end_date, catchup=dag.catchup))
    # a backfill from the window's start, run after run, until the scheduler stops
    days, last = [], None
    while len(days) < 400:
        info = tt.next_dagrun_info(last_automated_data_interval=last,
            restriction=TimeRestriction(earliest=dag.start_date, latest=dag.end_date, catchup=True))
        if info is None:
            break
        days.append(covered(info))
        last = info.data_interval
    out[dag.dag_id] = {{"unpaused": covered(unpaused), "first": days[0] if days else None,
                       "last": days[-1] if days else None, "runs": len(days),
                       "retries": sorted({{t.retries for t in dag.tasks}}),
                       "delays": sorted({{t.retry_delay.total_seconds() for t in dag.tasks}}),
                       "callbacks": sorted({{getattr(c, "__name__", "?") for t in dag.tasks
                                            for c in (t.on_failure_callback or [])}})}}
print(json.dumps(out))
"""


def load_window(tmp_path: Path, extra: dict[str, str]) -> dict:
    env = airflow_env(tmp_path, extra)
    return json.loads(run_python(WINDOW.format(dags=str(DAGS)), env).strip().splitlines()[-1])


def test_unpausing_on_a_lake_that_ends_in_2017_runs_nothing_for_today(tmp_path: Path) -> None:
    """With the schedule window bounded to the data (CHURN_SCHEDULE_START/END), unpausing creates no run
    for today's interval (catchup off), and a backfill runs exactly the window's days, the last one
    included; the first scheduled run of each DAG covers a day inside the window."""
    out = load_window(tmp_path, {"CHURN_SCHEDULE_START": "2017-03-27", "CHURN_SCHEDULE_END": "2017-04-03"})
    assert out.pop("errors") == {}
    assert out["churn_nightly_scoring"]["unpaused"] is None
    assert out["churn_ingest"]["unpaused"] is None
    assert out["churn_weekly_drift"]["unpaused"] is None
    for dag_id in ("churn_nightly_scoring", "churn_ingest"):
        assert (out[dag_id]["first"], out[dag_id]["last"], out[dag_id]["runs"]) == (
            "2017-03-27",
            "2017-04-03",
            8,
        )
    # weekly: the week ending Sunday 2017-04-02 is the last inside the window
    assert (out["churn_weekly_drift"]["first"], out["churn_weekly_drift"]["last"]) == (
        "2017-04-02",
        "2017-04-02",
    )


def test_without_a_window_unpausing_runs_the_latest_interval(tmp_path: Path) -> None:
    """Production leaves the window open: the scheduler runs the newest complete interval (the check above
    is not vacuous)."""
    out = load_window(tmp_path, {})
    assert out.pop("errors") == {}
    latest = out["churn_nightly_scoring"]["unpaused"]
    assert latest is not None and latest > "2025-01-01"


def test_retries_and_the_failure_alert_come_from_configuration(tmp_path: Path) -> None:
    default = load_window(tmp_path / "default", {})
    assert default["churn_nightly_scoring"]["retries"] == [0, 3]  # checks fail at once, I/O retries
    assert default["churn_weekly_drift"]["delays"] == [300.0, 600.0]
    overridden = load_window(
        tmp_path / "fast", {"CHURN_TASK_RETRIES": "0", "CHURN_TASK_RETRY_DELAY_SECONDS": "1"}
    )
    for dag_id in ("churn_nightly_scoring", "churn_ingest", "churn_weekly_drift"):
        assert overridden[dag_id]["retries"] == [0]
        assert overridden[dag_id]["callbacks"] == ["alert_on_failure"]


def test_a_malformed_schedule_setting_is_an_import_error_naming_it(tmp_path: Path) -> None:
    out = load_window(tmp_path, {"CHURN_SCHEDULE_END": "April 3rd"})
    assert len(out["errors"]) == 4
    assert all(
        "CHURN_SCHEDULE_END: expected a date YYYY-MM-DD, got 'April 3rd'" in e for e in out["errors"].values()
    )
