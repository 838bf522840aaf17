"""The `churn` console script: the contract's subcommands, one-line errors, exit codes."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from churn.lake import Lake

CONTRACT = ["synth", "ingest", "labels", "features", "validate", "train", "model", "score", "drift", "db"]
CHURN = str(Path(sys.executable).with_name("churn"))


def run_churn(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")} | (env or {})
    environment["COLUMNS"] = "200"
    return subprocess.run([CHURN, *args], capture_output=True, text=True, env=environment, check=False)


def test_help_lists_every_contract_subcommand() -> None:
    result = run_churn("--help")
    assert result.returncode == 0
    listed = {
        line.strip(" │").split()[0] for line in result.stdout.splitlines() if line.strip(" │")[:1].isalpha()
    }
    assert set(CONTRACT) <= listed, result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["synth"],
        ["ingest"],
        ["labels"],
        ["features"],
        ["validate"],
        ["train"],
        ["score"],
        ["gold"],
        ["drift"],
        ["model", "list"],
        ["model", "promote"],
        ["db", "upgrade"],
        ["db", "local-start"],
    ],
)
def test_every_subcommand_has_help(args: list[str]) -> None:
    result = run_churn(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: churn" in result.stdout


def test_a_bad_date_is_one_line_naming_the_option() -> None:
    result = run_churn("drift", "--week-ending", "2017-13-01")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("churn: error: week_ending") and "2017-13-01" in lines[0]


def test_bad_setting_stops_any_command_with_the_variable_named() -> None:
    result = run_churn("db", "upgrade", env={"CHURN_DASK_WORKERS": "lots"})
    assert result.returncode == 1
    assert result.stderr.startswith("churn: error: invalid configuration: CHURN_DASK_WORKERS:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:1/nowhere"
    result = run_churn("db", "upgrade", env={"CHURN_DATABASE_URL": url})
    assert result.returncode == 1
    assert result.stderr.startswith(
        "churn: error: cannot reach database postgresql+psycopg2://postgres@127.0.0.1:1/"
    )


def test_db_upgrade_prints_a_summary(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    first = run_churn("db", "upgrade", env={"CHURN_DATABASE_URL": url})
    assert first.returncode == 0, first.stderr
    assert "applied 001_pipeline_runs.sqlite.sql" in first.stdout
    second = run_churn("db", "upgrade", env={"CHURN_DATABASE_URL": url})
    assert "applied none (up to date)" in second.stdout


@pytest.mark.parametrize(
    ("as_of", "reason"),
    [
        ("2030-01-01", "is after Silver's newest day 2017-03-31"),
        ("1999-01-01", "no Silver data on or before 1999-01-01"),
    ],
)
def test_features_outside_silver_are_refused_and_write_no_gold(
    small_lake: Lake, tmp_path: Path, as_of: str, reason: str
) -> None:
    shutil.copytree(Path(small_lake.url) / "silver", tmp_path / "lake" / "silver")
    result = run_churn("features", "--as-of", as_of,
                       env={"CHURN_LAKE_URL": str(tmp_path / "lake"), "CHURN_DASK_WORKERS": "1"})  # fmt: skip
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("churn: error: ") and reason in lines[0], lines
    assert as_of in lines[0]
    assert not (tmp_path / "lake" / "gold").exists()


# Modules the command line may import besides `churn.steps`: platform pieces, and the modules of the
# commands that are not pipeline steps (synth, model, db).
NOT_PIPELINE = {"churn.errors", "churn.logs", "churn.settings", "churn.lake", "churn.model.registry",
                "churn.db", "churn.migrations", "churn.localpg",
                "churn.localairflow", "churn.airflowapi"}  # local services, not pipeline steps  # fmt: skip


def churn_imports(path: Path) -> set[str]:
    """Every `churn...` module a source file imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "churn"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "churn":
            found |= {
                f"{node.module}.{a.name}" if node.module == "churn" else node.module for a in node.names
            }
    return found


def test_the_cli_reaches_the_pipeline_only_through_steps() -> None:
    import churn.cli

    imported = churn_imports(Path(churn.cli.__file__))
    assert "churn.steps" in imported
    assert {m for m in imported if not m.startswith("churn.synth.")} - NOT_PIPELINE - {"churn.steps"} == set()


def test_the_import_check_sees_a_pipeline_import_inside_a_function(tmp_path: Path) -> None:
    source = tmp_path / "cli.py"
    source.write_text(
        "def f():\n    from churn.features.gold import parse_date\n    from churn import steps\n"
    )
    assert churn_imports(source) == {"churn.features.gold", "churn.steps"}


def test_the_api_serves_without_the_batch_stack() -> None:
    """The API reads Silver through its read side only: importing it loads no Dask, no writer, no batch
    step (a lookup must not pay for them, nor break when they change)."""
    batch = ["dask", "evidently", "great_expectations", "churn.compute", "churn.data.ingest",
             "churn.features.gold", "churn.scores.scoring", "churn.model.training",
             "churn.quality.validation"]  # fmt: skip
    code = f"import sys, api.main; print([m for m in {batch!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
