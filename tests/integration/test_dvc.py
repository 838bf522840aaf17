"""`dvc repro` of the training path in a temporary git repository, on the tiny profile: every stage runs,
a model is registered with the data version dvc.lock records, and a second repro has nothing to do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_dvc_repro_registers_a_model_tagged_with_the_locked_data_version(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    work.mkdir()
    shutil.copy(REPO / "dvc.yaml", work)
    shutil.copytree(REPO / "churn", work / "churn", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["train_cohorts"] = 2  # tiny data, fewer trees: the same stages and code paths
    params["lightgbm"].update(n_estimators=200, learning_rate=0.1, min_child_samples=10)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")} | {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "CHURN_LAKE_URL": "data/lake",
        "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "CHURN_MLFLOW_ARTIFACT_LOCATION": str(tmp_path / "artifacts"),
        "CHURN_DASK_WORKERS": "1",
        "CHURN_SILVER_BUCKETS": "4",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
    }  # fmt: skip

    def run(*command: str) -> str:
        done = subprocess.run(
            command, cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        return done.stdout

    run("git", "init", "-q")
    run(str(BIN / "dvc"), "init", "-q")
    first = run(str(BIN / "dvc"), "repro")
    for stage in ("generate", "ingest", "gold", "train"):
        assert f"Running stage '{stage}'" in first, first

    lock = yaml.safe_load((work / "dvc.lock").read_text())["stages"]
    assert set(lock) == {"generate", "ingest", "gold", "train"}
    silver = next(out for out in lock["ingest"]["outs"] if out["path"] == "data/lake/silver")
    assert lock["train"]["params"]["params.yaml"]["lightgbm"]["n_estimators"] == 200
    metrics = json.loads((work / "metrics" / "train.json").read_text())
    assert metrics["version"] == 1 and metrics["promoted"] is True and 0 < metrics["val_log_loss"] < 1

    from churn.model import registry
    from churn.settings import Settings

    settings = Settings(mlflow_tracking_uri=env["CHURN_MLFLOW_TRACKING_URI"])
    assert registry.alias_version(settings, registry.CHAMPION) == 1
    run_tags = registry.client(settings).get_run(metrics["mlflow_run_id"]).data.tags
    assert run_tags["dvc_data_version"] == f"data/lake/silver:{silver['md5']}"

    second = run(str(BIN / "dvc"), "repro")
    assert "Running stage" not in second and "up to date" in second, second
