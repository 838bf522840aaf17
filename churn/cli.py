"""The `churn` command line: the contract that DAG tasks, DVC stages, tests and people call.

Each pipeline command (ingest, labels, features, gold, validate, train, score, drift) is one call into
`churn.steps`, the entrance the Airflow tasks use too, and only formats the summary it returns; `synth`,
`model` and `db` call their modules directly. Defaults come from Settings (`CHURN_*`); a command prints
one summary line on success and exits non-zero with one line (`churn: error: ...`) on an expected failure.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from churn.errors import ChurnError
from churn.logs import configure_logging
from churn.settings import get_settings

if TYPE_CHECKING:
    from churn.airflowapi import AirflowClient

app = typer.Typer(
    name="churn",
    help="KKBox churn platform: generate, ingest, build features, validate, train, score, monitor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Scores database: migrations and the local embedded cluster.", no_args_is_help=True)
model_app = typer.Typer(help="Model registry: list versions, promote or roll back.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(model_app, name="model")
airflow_app = typer.Typer(
    help="Local Airflow: its components under the LocalExecutor, and runs driven through its REST API.",
    no_args_is_help=True,
)
app.add_typer(airflow_app, name="airflow")


@app.callback()
def _configure() -> None:
    """Validate the configuration before any command runs, so a bad variable stops start-up."""
    configure_logging(get_settings().log_level)


@app.command()
def synth(
    profile: Annotated[
        str,
        typer.Option(
            help="Size profile: tiny (~1k users), demo (~20k), bench (~1M), full (the real dump's size: "
            "~6.8M members, ~370M log rows, ~26M transactions, ~1M users per label file; ~30 GB of CSV)."
        ),
    ] = "tiny",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 7,
    out: Annotated[str | None, typer.Option(help="Lake URL to write into (default CHURN_LAKE_URL).")] = None,
    daily: Annotated[
        str | None,
        typer.Option(
            help="START:END (YYYY-MM-DD): write one daily drop per date instead of the dump. Drops draw "
            "on what the dump kept of its users' future (synth/state/) when it was written with the same "
            "seed and profile; otherwise every chunk of users is re-simulated (same files, slower).",
        ),
    ] = None,
    users: Annotated[
        int | None,
        typer.Option(
            help="Override the profile's number of users (people: in the full profile 48% of them only "
            "have a member row)."
        ),
    ] = None,
    days: Annotated[
        int | None,
        typer.Option(help="Override the days of history before 2017-04-01 (60-821, 821 = from 2015-01-01)."),
    ] = None,
    drift: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.95,
            help="With --daily: shift the drops' listening by this strength (that share of log rows gone, "
            "the rest playing that much less), so the weekly drift report has something to find.",
        ),
    ] = 0.0,
    member_updates: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="With --daily: each day, re-deliver this share of the dump's members (of the users in the "
            "drops) with a new city and registration channel, as a member who moved would be; features as "
            "of a day read only what had been delivered by then.",
        ),
    ] = 0.0,
    report: Annotated[
        bool,
        typer.Option(
            help="Write nothing: compare the March-2017 files already in Bronze (user_logs_v2.csv, "
            "transactions_v2.csv) with the real March 2017's quantiles and shares.",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes simulating the dump's chunks (default: one per core); the files are the same "
            "bytes for any number.",
        ),
    ] = None,
) -> None:
    """Write the Kaggle-format history dump (or daily drops) into Bronze."""
    import os

    from churn.lake import Lake
    from churn.synth.profiles import get_profile
    from churn.synth.writer import parse_range, write_daily, write_dump

    settings = get_settings()
    lake = (
        Lake(out, settings.storage_options() if out.startswith("s3://") else {})
        if out
        else Lake.from_settings(settings)
    )
    if report:
        from churn.synth.realism import format_report, realism_report

        typer.echo(format_report(realism_report(lake)))
        return
    chosen = get_profile(profile, users, days)
    if daily:
        start, end = parse_range(daily)
        summary = write_daily(lake, chosen, seed, start, end, drift, member_updates)
    else:
        for name, value in (("--drift", drift), ("--member-updates", member_updates)):
            if value:
                raise typer.BadParameter(
                    f"{name} applies to daily drops only (with --daily)", param_hint=name
                )
        summary = write_dump(lake, chosen, seed, workers or os.cpu_count() or 1)
    rows = ", ".join(f"{name} {count:,}" for name, count in summary["rows"].items())
    typer.echo(f"synth {chosen.name} seed {seed} -> {lake.uri('bronze')}: {rows} ({summary['seconds']} s)")


@app.command()
def ingest(
    force: Annotated[
        bool, typer.Option(help="Re-ingest every source, even those already in Silver.")
    ] = False,
) -> None:
    """Bronze -> Silver for everything not yet ingested (idempotent)."""
    from churn import steps

    summary = steps.ingest(force=force)
    tables = "; ".join(
        f"{name} {t['rows_in']:,} in, {t['rows_out']:,} out, {t['quarantined']:,} quarantined, "
        f"{t['duplicates']:,} duplicates"
        for name, t in summary["tables"].items()
    )
    archives = Counter(u["archive"] for u in summary["unpacked"])
    unpacked = ", ".join(f"{a} ({n} CSV{'s' if n > 1 else ''})" for a, n in archives.items())
    missing = summary["missing"]
    typer.echo(
        f"ingest {summary['run_id']}: {summary['sources']} sources ingested, {summary['skipped']} already in "
        f"Silver{': ' + tables if tables else ''} -> {summary['silver']} ({summary['seconds']:.1f} s)"
        f"{'; unpacked ' + unpacked if unpacked else ''}"
        f"{'; missing ' + ', '.join(missing) if missing else ''}"
    )


def _agreement_text(agreement: dict[str, Any] | str | None) -> str:
    """The rule's agreement with a released label file, for the labels line ("" for the rule's labels,
    whose summary says "absent")."""
    if agreement == "absent":
        return ""
    if not isinstance(agreement, dict) or agreement["share"] is None:
        return "; rule agreement not computable (Silver ends before the renewal window, or no common user)"
    return (
        f"; rule agrees with it on {agreement['agree']:,} of {agreement['both']:,} users both label "
        f"({agreement['share']:.1%})"
    )


def _reused(built: bool, build: str | None) -> str:
    """What the summary line adds when a step kept the build in place instead of building."""
    return "" if built else f"; already built from the current Silver (build {build}; --force rebuilds)"


@app.command()
def labels(
    cohort: Annotated[str, typer.Option(help="Cohort month YYYY-MM.")],
    force: Annotated[bool, typer.Option(help="Rebuild even when built from the current Silver.")] = False,
) -> None:
    """Build Gold labels for a cohort month with the WSDM churn rule (or the released label file),
    unless they were built from the current Silver."""
    from churn import steps

    summary = steps.labels(cohort, force=force)
    typer.echo(
        f"labels {cohort}: {summary['rows']:,} users from {summary['source']}"
        f"{_agreement_text(summary['rule_agreement'])} -> {summary['path']} ({summary['seconds']} s)"
        f"{_reused(summary['built'], summary['labels_run_id'])}"
    )


@app.command()
def features(
    as_of: Annotated[str, typer.Option("--as-of", help="Snapshot date YYYY-MM-DD.")],
    force: Annotated[
        bool, typer.Option(help="Rebuild even when built from the current Silver and feature spec.")
    ] = False,
) -> None:
    """Build Gold features as of a date (point-in-time: only rows dated on or before it), unless they
    were built from the current Silver and feature spec.

    A date after Silver's newest day (the latest log or transaction ingested) or before its first
    transaction is refused, and nothing is written.
    """
    from churn import steps

    summary = steps.features(as_of, force=force)
    typer.echo(
        f"features as of {as_of}: {summary['rows']:,} users x {summary['features']} features "
        f"(spec {summary['spec_hash']}) -> {summary['path']} ({summary['seconds']} s)"
        f"{_reused(summary['built'], summary['features_run_id'])}"
    )


@app.command()
def validate(
    stage: Annotated[str, typer.Option(help="Which layer to check: silver or gold.")],
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Run date YYYY-MM-DD: freshness for silver, snapshot for gold."),
    ] = None,
) -> None:
    """Run the expectation suites (Data Docs into the lake); exits non-zero when a critical one fails."""
    from churn import steps

    summary = steps.validate(stage, as_of)
    warnings = "".join(f"\n  {line}" for line in summary["failures"])
    rows = ", ".join(f"{t} {n:,} rows" for t, n in summary["rows"].items())
    typer.echo(
        f"validate {stage} {summary['label']}: passed, {summary['evaluated']} expectations on {rows}, "
        f"{summary['warnings']} warnings; Data Docs {summary['docs']} ({summary['seconds']:.1f} s){warnings}"
    )


def _overrides(pairs: list[str]) -> dict[str, Any]:
    """`--set section.name=value` pairs -> overrides; each value is read as YAML (31, 0.05, [none])."""
    import yaml

    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r}: use section.name=value", param_hint="--set")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


@app.command()
def train(
    cohort: Annotated[str, typer.Option(help="Validation cohort month YYYY-MM.")],
    params_file: Annotated[
        str | None, typer.Option("--params", help="Hyperparameters file (default CHURN_PARAMS_FILE).")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a parameter of the file for this run: section.name=value (YAML value), e.g. "
            "--set lightgbm.num_leaves=31 --set 'train.samplers=\\[none]'. Repeatable.",
        ),
    ] = None,
    sample_fraction: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Train on this share of the training users (a stable hash; quick trials); the "
            "validation cohort is never sampled.",
        ),
    ] = 1.0,
    promote: Annotated[
        bool,
        typer.Option(help="Let the gate promote a better model (--no-promote: register as challenger)."),
    ] = True,
    metrics_file: Annotated[
        Path | None, typer.Option(help="Also write the version and validation metrics here (JSON; DVC).")
    ] = None,
    allow_short_history: Annotated[
        bool,
        typer.Option(
            help="Train even when Silver's history does not cover every cohort's eve (e.g. the history "
            "begins within the training months): trains on the cohorts whose eve has transactions, "
            "with unseen listening missing; registered as challenger only, tagged short_history. No help "
            "for the Kaggle v2 files alone: they hold no history to train on."
        ),
    ] = False,
) -> None:
    """Train on the cohorts before M, validate on M, register, promote when it beats the champion.

    Learns from the labels knowable on M's eve (train.train_cohorts months up to M-2, users whose expiry +
    30 days falls on or before the eve); half of M's users (train.selection_share) choose the sampler and
    face the gate, the reported figures come from the other half. Missing or stale Gold labels and
    features of the cohorts involved are built first. A Silver whose transactions and user logs do not
    cover each cohort's eve month stops the run, naming the files that hold that history;
    --allow-short-history trains on the cohorts it can, unless there are none.
    """
    from churn import steps

    summary = steps.train(cohort, _overrides(overrides or []), sample_fraction=sample_fraction,
                          promote=promote, allow_short_history=allow_short_history,
                          params_file=params_file)  # fmt: skip
    m = summary["metrics"]
    if metrics_file is not None:
        metrics_file.parent.mkdir(parents=True, exist_ok=True)
        document = {"version": summary["version"], "promoted": summary["promoted"],
                    "mlflow_run_id": summary["mlflow_run_id"], **m}  # fmt: skip
        metrics_file.write_text(json.dumps(document, indent=2))
    oracle = (
        f", oracle log loss {m['oracle_log_loss']:.4f} (ratio {m['val_log_loss_over_oracle']:.3f})"
        if "oracle_log_loss" in m
        else ""
    )
    cohorts = summary["train_cohorts"]
    typer.echo(
        f"train {cohort}: {summary['model_name']} v{summary['version']} (sampler {summary['sampler']}, "
        f"trained on {cohorts[0]}..{cohorts[-1]}, {summary['rows_train']:,} rows): "
        f"val log loss {m['val_log_loss']:.4f}, AUC {m['val_roc_auc']:.4f}, ECE {m['val_ece']:.4f}{oracle}; "
        f"{'PROMOTED to champion' if summary['promoted'] else 'challenger'}: {summary['reason']} "
        f"(MLflow run {summary['mlflow_run_id']}, {summary['train_seconds']:.1f} s)"
    )


@app.command()
def gold(cohort: Annotated[str, typer.Option(help="Validation cohort month YYYY-MM.")]) -> None:
    """Build and validate the Gold data `churn train --cohort M` reads: labels of M and of the
    `train.train_cohorts` (CHURN_PARAMS_FILE) months up to M-2 (M-1's labels mature during M), and the
    features as of each month's eve."""
    from churn import steps

    summary = steps.gold(cohort)
    days = summary["days"]
    typer.echo(f"gold {cohort}: labels and features of {len(days)} months (eves {days[0]}..{days[-1]}), "
               f"{summary['evaluated']:,} expectations met ({summary['seconds']:.1f} s)")  # fmt: skip


@model_app.command("list")
def model_list() -> None:
    """List registered versions with their aliases and validation metrics."""
    from churn.model.registry import list_versions

    settings = get_settings()
    rows = list_versions(settings)
    if not rows:
        typer.echo(f"{settings.model_name}: no registered versions (run `churn train --cohort YYYY-MM`)")
        return

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    typer.echo(f"{'version':>7}  {'aliases':<20} {'cohort':<8} {'log_loss':>8} {'auc':>6} {'ece':>6} "
               f"{'oracle':>6}  created")  # fmt: skip
    for row in rows:
        typer.echo(
            f"{row['version']:>7}  {','.join(row['aliases']) or '-':<20} {row['val_cohort'] or '-':<8} "
            f"{number(row['val_log_loss']):>8} {number(row['val_roc_auc']):>6} {number(row['val_ece']):>6} "
            f"{number(row['oracle_log_loss']):>6}  {row['created']}"
        )


@model_app.command("promote")
def model_promote(version: Annotated[int, typer.Option(help="Registered version to make champion.")]) -> None:
    """Make a version the champion (roll forward or back)."""
    from churn.model.registry import promote

    settings = get_settings()
    previous = promote(settings, version)
    was = f" (was v{previous})" if previous else ""
    typer.echo(f"{settings.model_name}: v{version} is now champion{was}")


@model_app.command("canary")
def model_canary(
    share: Annotated[
        float, typer.Option(help="Share of live predictions (0..1) the challenger answers; 0 stops.")
    ],
) -> None:
    """Let the challenger answer a share of POST /predict, sticky per msno (running APIs pick it up
    within CHURN_MODEL_REFRESH_SECONDS; 0 stops the canary)."""
    from churn.model.registry import set_canary_share

    settings = get_settings()
    version = set_canary_share(settings, share)
    typer.echo(f"{settings.model_name}: challenger v{version} answers {share:.1%} of live predictions")


@app.command()
def score(date: Annotated[str, typer.Option(help="Score date YYYY-MM-DD.")]) -> None:
    """Score every active user as of the date with the champion and publish to the database.

    Active: membership expired at most CHURN_ACTIVE_GRACE_DAYS days before the date. Features as of the
    date are built first when missing or stale. Each score is published with its revenue at risk, plan
    and, for the bands CHURN_REASONS names (default every band above the lowest), the model's reasons.
    Re-running a date replaces its scores atomically. Dates CHURN_SCORE_RETENTION_DAYS or more before the
    newest published date are dropped; a date after Silver's newest day, or one that old, is refused
    before anything is written.
    """
    from churn import steps

    summary = steps.score(date)
    bands = ", ".join(f"{name} {count:,}" for name, count in summary["bands"].items())
    dropped, abandoned = summary["dropped_dates"], summary["abandoned_runs"]
    extra = f"; dropped {len(dropped)} dates past retention" if dropped else ""
    extra += f"; marked abandoned runs failed: {', '.join(abandoned)}" if abandoned else ""
    seconds = ", ".join(f"{name} {value:.1f} s" for name, value in summary["seconds"].items())
    typer.echo(
        f"score {summary['score_date']}: {summary['rows']:,} active users of "
        f"{summary['users_with_features']:,} with features scored by {summary['model_name']} "
        f"v{summary['model_version']} -> churn_scores ({bands}; reasons stored for {summary['explained']:,})"
        f"{extra}; run {summary['run_id']} published "
        f"({seconds})"
    )


@app.command()
def drift(
    week_ending: Annotated[str, typer.Option("--week-ending", help="Last day of the week YYYY-MM-DD.")],
    check: Annotated[bool, typer.Option(help="Exit 1 when the week passes a threshold.")] = False,
) -> None:
    """Write the weekly Evidently drift report to the lake and a summary row to the database.

    Compares the week's scoring inputs (and live /predict inputs) with the champion's reference, and
    computes the realised performance of every cohort whose outcomes are known by then, and deletes the
    prediction log's days past CHURN_PREDICTION_LOG_RETENTION_DAYS before the week's end. A week ending
    after Silver's newest day is refused. Exits 0 with an ALERT line when a threshold is passed (with
    --check it exits 1 instead).
    """
    from churn import steps

    summary = steps.drift(week_ending)
    scoring = summary["scoring"]
    cohorts = (
        ", ".join(
            f"{c['cohort']} log loss {c['log_loss']:.4f} (degradation {c['degradation'] or 0.0:+.1%})"
            for c in summary["performance"]
        )
        or "none matured"
    )
    typer.echo(
        f"drift week ending {week_ending}: {len(scoring['drifted'])} of {len(scoring['distances'])} features "
        f"drifted (share {scoring['share']:.2f}, dataset drift {scoring['dataset_drift']}), score distance "
        f"{scoring['score_distance']:.3f}, {scoring['rows_current']:,} scored rows"
        f"{', live share ' + format(summary['live']['share'], '.2f') if summary['live'] else ''}; "
        f"realised performance: {cohorts}; prediction log: {summary['prediction_log']['removed_partitions']} "
        f"days past retention removed; report {summary['report_uri']} ({summary['seconds']} s)"
    )
    alert = steps.drift_alert(summary)
    if alert is not None:
        typer.echo(f"ALERT: {alert}")
        if check:
            raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the pending SQL migrations from sql/ (idempotent)."""
    from churn.db import check_connection, engine_from_settings, redact
    from churn.migrations import upgrade

    settings = get_settings()
    engine = engine_from_settings(settings)
    check_connection(engine)
    started = time.perf_counter()
    applied = upgrade(engine)
    names = ", ".join(m.path.name for m in applied) or "none (up to date)"
    elapsed = time.perf_counter() - started
    typer.echo(f"db upgrade: {redact(settings.database_url)}: applied {names} in {elapsed:.2f} s")


@db_app.command("local-start")
def db_local_start(
    root: Annotated[Path, typer.Option(help="Folder of the local cluster.")] = Path(".local/postgres"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 55432,
    sqlite_fallback: Annotated[
        Path, typer.Option(help="SQLite file used (with a notice) where no PostgreSQL binaries exist.")
    ] = Path(".local/churn.db"),
) -> None:
    """Start the project-local PostgreSQL cluster of the embedded mode and print its URL (only the URL)."""
    from churn import localpg

    if localpg.find_bindir() is None:
        sqlite_fallback.parent.mkdir(parents=True, exist_ok=True)
        typer.echo("notice: no PostgreSQL server binaries here; falling back to SQLite", err=True)
        typer.echo(f"sqlite:///{sqlite_fallback}")
        return
    typer.echo(localpg.start(root, port))


@db_app.command("local-stop")
def db_local_stop(
    root: Annotated[Path, typer.Option(help="Folder of the local cluster.")] = Path(".local/postgres"),
) -> None:
    """Stop the project-local PostgreSQL cluster if it is running."""
    from churn import localpg

    localpg.stop(root)
    typer.echo(f"db local-stop: stopped {root}")


AIRFLOW_HOME_OPTION = typer.Option(envvar="AIRFLOW_HOME", help="Airflow home (pids, logs, secrets).")


@airflow_app.command("local-start")
def airflow_local_start(
    home: Annotated[Path, AIRFLOW_HOME_OPTION] = Path(".local/airflow"),
    port: Annotated[int, typer.Option(help="api-server port on 127.0.0.1.")] = 8080,
    metadata_db: Annotated[
        str,
        typer.Option(
            envvar="CHURN_AIRFLOW_METADATA_DB",
            help="Name of Airflow's metadata database on the scores database's PostgreSQL server.",
        ),
    ] = "airflow",
) -> None:
    """Start api-server, scheduler, dag-processor and triggerer (LocalExecutor; metadata in a database
    --metadata-db beside CHURN_DATABASE_URL's) and wait until all are healthy; print the URL and login."""
    from churn import localairflow

    started = time.perf_counter()
    running = localairflow.start(home, port, get_settings().database_url, database=metadata_db)
    typer.echo(f"airflow: healthy in {time.perf_counter() - started:.0f} s at {running.url} (login "
               f"{running.user} / {running.password}); logs in {running.home / 'logs'}")  # fmt: skip


@airflow_app.command("local-stop")
def airflow_local_stop(
    home: Annotated[Path, AIRFLOW_HOME_OPTION] = Path(".local/airflow"),
    grace: Annotated[float, typer.Option(help="Seconds between SIGTERM and SIGKILL.")] = 30.0,
) -> None:
    """Stop every local Airflow component (SIGTERM, then SIGKILL after --grace seconds)."""
    from churn import localairflow

    outcome = localairflow.stop(home, grace)
    typer.echo("airflow: " + ", ".join(f"{name} {how}" for name, how in outcome.items()))


def _local_client(home: Path, port: int) -> AirflowClient:
    """A client of the local api-server, logged in as the admin of `make airflow`."""
    from churn import localairflow
    from churn.airflowapi import AirflowClient

    return AirflowClient(f"http://127.0.0.1:{port}", localairflow.USER, localairflow.password(home.resolve()))


@airflow_app.command("run")
def airflow_run(
    dag_id: Annotated[str, typer.Argument(help="DAG to run, e.g. churn_nightly_scoring.")],
    day: Annotated[
        str | None, typer.Option(help="Day the run covers (YYYY-MM-DD; a weekly DAG: the week's Sunday).")
    ] = None,
    conf: Annotated[str, typer.Option(help="Params of the run as JSON (the trigger form's values).")] = "{}",
    home: Annotated[Path, AIRFLOW_HOME_OPTION] = Path(".local/airflow"),
    port: Annotated[int, typer.Option(help="api-server port on 127.0.0.1.")] = 8080,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the run.")] = 1800.0,
) -> None:
    """Unpause the DAG, trigger a run through the REST API (for --day with the interval the scheduler
    would give it; without, with a null logical date as the UI's form), wait for the real scheduler to
    finish it; exits 1 with the failed tasks' logs when it fails."""
    import datetime as dt

    try:
        params = json.loads(conf)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"not JSON: {error}", param_hint="--conf") from None
    client = _local_client(home, port)
    started = time.perf_counter()
    run_id = client.run(dag_id, dt.date.fromisoformat(day) if day else None, params, timeout)
    typer.echo(f"   {dag_id} {run_id}: success in {time.perf_counter() - started:.0f} s")


@airflow_app.command("history")
def airflow_history(
    home: Annotated[Path, AIRFLOW_HOME_OPTION] = Path(".local/airflow"),
    port: Annotated[int, typer.Option(help="api-server port on 127.0.0.1.")] = 8080,
) -> None:
    """Print the churn DAGs' runs (as the UI's run list) and the churn_scores asset's events, read
    through the REST API."""
    client = _local_client(home, port)
    dags = sorted(d["dag_id"] for d in client.dags() if d["dag_id"].startswith("churn_"))
    for run in client.history(dags):
        typer.echo(f"   {run['dag_id']:<24} {run['run_type']:<10} {run['logical_date'] or '-':<26} "
                   f"{run['state']:<8} {run['dag_run_id']}")  # fmt: skip
    events = client.asset_events("churn_scores")
    typer.echo(f"   churn_scores asset: {len(events)} events (one per published night)")


def main() -> None:
    """Console-script entry: expected failures become one line and exit 1."""
    try:
        app()  # standalone mode: usage errors and --help exit with click's own codes
    except ChurnError as error:
        typer.echo(f"churn: error: {error}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
