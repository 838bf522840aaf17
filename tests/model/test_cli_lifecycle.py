"""The lifecycle through the command line, as a user without Airflow runs it: synth, ingest, train (its
figures printed and the version registered as champion), score a day into the database. Tiny data, fewer
cohorts and trees (`--set`); the model's quality bound and the drift report are checked on the demo profile
by the `make demo` test (tests/browser/test_demo.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[2]
CHURN = str(Path(sys.executable).with_name("churn"))


@pytest.mark.slow
def test_cli_trains_registers_and_scores(tmp_path: Path, pg_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")} | {
        "CHURN_DATABASE_URL": pg_url,
        "CHURN_LAKE_URL": str(tmp_path / "lake"),
        "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "CHURN_MLFLOW_ARTIFACT_LOCATION": str(tmp_path / "artifacts"),
        "CHURN_PARAMS_FILE": str(REPO / "params.yaml"),
        "CHURN_DASK_WORKERS": "1",
        "COLUMNS": "200",
    }

    def churn(*args: str) -> str:
        done = subprocess.run([CHURN, *args], capture_output=True, text=True, env=env, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    churn("synth", "--profile", "tiny", "--seed", "7")
    churn("ingest")
    fewer = ["lightgbm.n_estimators=60", "train.samplers=[none]", "train.train_cohorts=3"]
    out = churn("train", "--cohort", "2017-03", *[arg for value in fewer for arg in ("--set", value)])
    figures = re.search(
        r"v1 .*val log loss ([\d.]+), AUC ([\d.]+), ECE ([\d.]+), "
        r"oracle log loss ([\d.]+) \(ratio ([\d.]+)\); PROMOTED to champion",
        out,
    )
    assert figures, out
    log_loss, auc, ece, oracle, ratio = map(float, figures.groups())
    assert 0 < log_loss < 1 and 0.5 < auc <= 1 and 0 <= ece <= 1 and 0 < oracle < 1, out
    assert abs(ratio - log_loss / oracle) < 0.01
    listed = churn("model", "list")
    assert re.search(r"^\s+1\s+champion\s+2017-03\s", listed, re.MULTILINE), listed

    churn("db", "upgrade")
    churn("score", "--date", "2017-03-31")
    engine = create_engine(pg_url)
    with engine.connect() as connection:
        published = connection.execute(text("SELECT score_date, status, rows_scored FROM score_runs")).all()
    engine.dispose()
    assert [(str(d), status) for d, status, _ in published] == [("2017-03-31", "published")]
    assert published[0][2] > 0
