"""Scoring benchmark: 1M users end to end (read Gold, predict, publish) against bare predict + bare COPY.

ours:      `churn.scores.scoring.score` for one date (imports done before the clock starts): champion
           loaded from the MLflow registry, Gold features read,
           active filter, the calibrated pipeline's predict in batches, bands, COPY into the run's table,
           unique index, partition swap, run bookkeeping;
reference: in the same run, on the same users: the fitted LightGBM model's bare `predict_proba` on the
           already-transformed feature matrix, plus a bare psycopg2 COPY of the same rows (all six
           columns, as CSV prepared in memory) into a plain table without index. Sum of the two.
Target: ours <= 1.5x the reference sum.

Reasons (issue 22): ours is the default, reasons stored for every band above the lowest
(CHURN_REASONS=bands); in the same run ours is also timed without reasons (none) and with reasons for
every user (all). Target: bands <= 2x none; `all` is reported as what reasons for everyone would cost.

Data: the demo profile is generated, ingested and trained on once (bench/data/demo, bench/data/scoring);
its Gold features as of 2017-03-31 (the active users) are tiled to --users rows (default 1M) with fresh
msnos, so every scored row is a real feature vector. PostgreSQL: CHURN_BENCH_DATABASE_URL (default the
server on 127.0.0.1:5432); a fresh database `churn_bench` is created.
Run: `python -m bench.bench_scoring [--users N]`.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys

from bench.common import DATA, bench_lake, repeat, report, users_argument

TARGET_RATIO = 1.5
TARGET_REASONS_RATIO = 2.0
SCORE_DATE = "2017-03-31"
DEFAULT_USERS = 1_000_000
ADMIN_URL = os.environ.get("CHURN_BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _churn(lake: str, env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "churn.cli", *args], check=True,
                   env={**os.environ, "CHURN_LAKE_URL": lake, **env})  # fmt: skip


def prepare(users: int) -> tuple[str, dict[str, str]]:
    """The bench lake with tiled Gold features as of SCORE_DATE, a registry with a champion, a fresh
    database. -> (lake path, CHURN_* environment)."""
    import numpy as np
    import pyarrow as pa
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from churn.data.silver import silver_version
    from churn.features.gold import features_prefix, read_features
    from churn.features.population import active_mask
    from churn.features.spec import SPEC_HASH
    from churn.lake import Lake

    lake_path = bench_lake("demo")
    store = DATA / "scoring"
    store.mkdir(parents=True, exist_ok=True)
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text('DROP DATABASE IF EXISTS "churn_bench" WITH (FORCE)'))
        connection.execute(text('CREATE DATABASE "churn_bench"'))
    admin.dispose()
    env = {
        "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
        "CHURN_MLFLOW_ARTIFACT_LOCATION": str(store / "artifacts"),
        "CHURN_DATABASE_URL": make_url(ADMIN_URL).set(database="churn_bench").render_as_string(False),
        "CHURN_SCORE_RETENTION_DAYS": "3650",
    }
    lake_url = str(lake_path)
    if not (lake_path / "silver" / "_layout.json").exists():
        _churn(lake_url, env, "ingest")
    if not (store / "mlflow.db").exists():
        _churn(lake_url, env, "train", "--cohort", "2017-03")
    _churn(lake_url, env, "db", "upgrade")

    lake = Lake(lake_url)
    as_of = dt.date.fromisoformat(SCORE_DATE)
    prefix = features_prefix(as_of)
    manifest = lake.read_json(f"{prefix}/_manifest.json") if lake.exists(f"{prefix}/_manifest.json") else {}
    if manifest.get("rows") != users or manifest.get("tiled_from") is None:
        _churn(lake_url, env, "features", "--as-of", SCORE_DATE)
        real = read_features(lake, as_of)
        real = real.filter(pa.array(active_mask(real, 30)))
        take = np.arange(users) % real.num_rows
        tiled = real.take(pa.array(take))
        ids = np.arange(users, dtype=np.uint64)
        msno = [base64.b64encode(int(i).to_bytes(32, "big")).decode() for i in ids]
        tiled = tiled.set_column(0, "msno", pa.array(msno))
        tiled = tiled.set_column(1, "user_id", pa.array(ids.astype(np.int64)))
        lake.remove(prefix)
        size = -(-users // 8)
        for index, start in enumerate(range(0, users, size)):
            part = tiled.slice(start, size)
            lake.write_parquet(f"{prefix}/part-{index:03d}.parquet", part, dictionary=False)
        manifest = {"as_of": SCORE_DATE, "rows": users, "spec_hash": SPEC_HASH,
                    "silver_version": silver_version(lake), "tiled_from": real.num_rows}  # fmt: skip
        lake.write_json(f"{prefix}/_manifest.json", manifest)
    return lake_url, env


def _explained(database_url: str) -> int:
    """Scores published with reasons on the bench date (the default run's share of explained users)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(reasons) FROM churn_scores WHERE score_date = :d"), {"d": SCORE_DATE}
        ).scalar()
    engine.dispose()
    return int(count or 0)


def main() -> None:
    """Prepare once, then measure both sides and print the summary line."""
    users = users_argument(__doc__) or DEFAULT_USERS
    lake_url, env = prepare(users)
    times = 3

    ours_setup = f"""
import datetime as dt, itertools
import mlflow, lightgbm, sklearn, psycopg2
import mlflow.sklearn, mlflow.store.tracking.sqlalchemy_store, mlflow.store.model_registry.sqlalchemy_store
from churn.scores.scoring import score
from churn.lake import Lake
from churn.logs import new_run_id
from churn.settings import Settings
lake = Lake({lake_url!r})
settings = Settings(lake_url={lake_url!r})
"""
    ours_body = f"report = score(lake, settings, dt.date.fromisoformat({SCORE_DATE!r}), new_run_id('score'))"
    bare, _ = repeat(ours_setup, ours_body, times, {**env, "CHURN_REASONS": "none"})
    everyone, everyone_rss = repeat(ours_setup, ours_body, 1, {**env, "CHURN_REASONS": "all"})
    ours, ours_rss = repeat(ours_setup, ours_body, times, env)  # last: the published day is the default's
    explained = _explained(env["CHURN_DATABASE_URL"])

    reference_setup = f"""
import datetime as dt, io
import numpy as np, pyarrow as pa, pyarrow.csv as pacsv, psycopg2
from sqlalchemy.engine import make_url
from churn.features.gold import read_features
from churn.lake import Lake
from churn.model.pipeline import inner_pipeline
from churn.model.champion import load_champion
from churn.settings import Settings
settings = Settings(lake_url={lake_url!r})
champion = load_champion(settings)
version, model = champion.version, champion.model
pipeline = inner_pipeline(model)
features = read_features(Lake({lake_url!r}), dt.date.fromisoformat({SCORE_DATE!r}))
matrix = pipeline.named_steps["features"].transform(features.to_pandas())
lgbm = pipeline.named_steps["model"]
p = lgbm.predict_proba(matrix[:1000])[:, 1]
n = len(features)
rows = pa.table({{"score_date": pa.array([dt.date.fromisoformat({SCORE_DATE!r})] * n),
                 "msno": features["msno"], "churn_probability": pa.array(np.random.default_rng(0).random(n)),
                 "risk_band": pa.array(["low"] * n), "model_version": pa.array([version] * n),
                 "run_id": pa.array(["score-bench"] * n)}})
sink = io.BytesIO()
pacsv.write_csv(rows, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
payload = sink.getvalue()
url = make_url(settings.database_url)
connection = psycopg2.connect(host=url.host, port=url.port, user=url.username, dbname=url.database)
cursor = connection.cursor()
cursor.execute("DROP TABLE IF EXISTS bench_copy")
cursor.execute("CREATE TABLE bench_copy (score_date date, msno text, churn_probability double precision, "
               "risk_band text, model_version integer, run_id text)")
connection.commit()
"""
    predict_body = "p = lgbm.predict_proba(matrix)[:, 1]"
    copy_body = (
        "sql = 'COPY bench_copy FROM STDIN WITH (FORMAT csv)'\n"
        "cursor.copy_expert(sql, io.BytesIO(payload), size=1 << 20)\n"
        "connection.commit()"
    )
    predict, predict_rss = repeat(reference_setup, predict_body, times, env)
    copy, _ = repeat(reference_setup, copy_body, times, env)
    reference = predict + copy
    ratio = ours / reference
    figures = {
        "users": users, "score_date": SCORE_DATE, "repetitions": times, "ours_s": round(ours, 3),
        "reference_predict_s": round(predict, 3), "reference_copy_s": round(copy, 3),
        "reference_s": round(reference, 3), "ratio": round(ratio, 3), "target_ratio": TARGET_RATIO,
        "users_per_s": round(users / ours), "ours_peak_rss": ours_rss, "reference_peak_rss": predict_rss,
        "explained_users": explained, "ours_without_reasons_s": round(bare, 3),
        "reasons_ratio": round(ours / bare, 3),
        "target_reasons_ratio": TARGET_REASONS_RATIO, "ours_reasons_for_all_s": round(everyone, 3),
        "reasons_for_all_ratio": round(everyone / bare, 3), "reasons_for_all_peak_rss": everyone_rss,
    }  # fmt: skip
    report(
        "scoring",
        figures,
        f"ours {ours:.1f} s, reference(bare LightGBM predict_proba {predict:.1f} s + bare COPY {copy:.1f} s) "
        f"{reference:.1f} s, ratio {ratio:.2f} (target <= {TARGET_RATIO}), users/s {users / ours:,.0f}, "
        f"peak RSS {ours_rss / 2**30:.2f} GiB; reasons for the bands ({explained:,} users) {ours:.1f} s vs "
        f"none {bare:.1f} s: "
        f"ratio {ours / bare:.2f} (target <= {TARGET_REASONS_RATIO}); reasons for all {everyone:.1f} s "
        f"({everyone / bare:.2f}x none, peak RSS {everyone_rss / 2**30:.2f} GiB)",
    )


if __name__ == "__main__":
    main()
