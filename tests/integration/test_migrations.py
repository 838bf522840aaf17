"""Migrations against real PostgreSQL and SQLite: ordered, idempotent, atomic, tamper-evident."""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from churn.db import make_engine
from churn.migrations import SQL_DIR, MigrationError, discover, upgrade


def copy_sql(tmp_path: Path) -> Path:
    folder = tmp_path / "sql"
    shutil.copytree(SQL_DIR, folder)
    return folder


def test_upgrade_applies_all_then_nothing(db_url: str) -> None:
    engine = make_engine(db_url)
    first = upgrade(engine)
    dialect = engine.dialect.name
    assert [m.version for m in first] == [m.version for m in discover(dialect)]
    tables = inspect(engine).get_table_names()
    assert {"churn_scores", "score_runs"} <= set(tables) and "pipeline_runs" not in tables  # dropped by 004
    assert upgrade(engine) == []
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT version, name FROM schema_version ORDER BY version")).all()
    assert [(v, n) for v, n in rows] == [(m.version, m.name) for m in first]
    engine.dispose()


def test_new_migration_is_applied_on_next_upgrade(db_url: str, tmp_path: Path) -> None:
    folder = copy_sql(tmp_path)
    engine = make_engine(db_url)
    upgrade(engine, folder)
    (folder / "900_extra.sql").write_text("CREATE TABLE extra (id INTEGER PRIMARY KEY);\n")
    applied = upgrade(engine, folder)
    assert [m.path.name for m in applied] == ["900_extra.sql"]
    assert "extra" in inspect(engine).get_table_names()
    engine.dispose()


def test_failing_migration_leaves_nothing_behind(db_url: str, tmp_path: Path) -> None:
    folder = copy_sql(tmp_path)
    (folder / "900_broken.sql").write_text(
        "CREATE TABLE half_done (id INTEGER PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);\n"
    )
    engine = make_engine(db_url)
    with pytest.raises(MigrationError, match=r"900_broken\.sql failed"):
        upgrade(engine, folder)
    tables = inspect(engine).get_table_names()
    assert "half_done" not in tables  # DDL rolled back with the failed statement
    assert "score_runs" in tables  # earlier migrations stay applied
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version FROM schema_version")).scalars().all()
    assert 900 not in versions
    engine.dispose()


def test_edited_applied_migration_is_refused(db_url: str, tmp_path: Path) -> None:
    folder = copy_sql(tmp_path)
    engine = make_engine(db_url)
    upgrade(engine, folder)
    target = discover(engine.dialect.name, folder)[0].path
    target.write_text(target.read_text() + "\n-- edited later\n")
    with pytest.raises(MigrationError, match=rf"{re.escape(target.name)} was changed after it was applied"):
        upgrade(engine, folder)
    engine.dispose()


def test_dialect_specific_files_are_chosen(tmp_path: Path) -> None:
    names_pg = [m.path.name for m in discover("postgresql")]
    names_lite = [m.path.name for m in discover("sqlite")]
    assert names_pg[0].endswith(".postgresql.sql")
    assert names_lite[0].endswith(".sqlite.sql")


def test_duplicate_version_and_bad_name_are_errors(tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "001_a.sql").write_text("SELECT 1;")
    (folder / "001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"version 001 is also defined by 001_a\.sql"):
        discover("sqlite", folder)
    (folder / "001_b.sql").unlink()
    (folder / "2_bad-name.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"2_bad-name\.sql: name must look like"):
        discover("sqlite", folder)


@pytest.mark.postgres
def test_concurrent_upgrades_apply_each_migration_once(pg_url: str) -> None:
    engines = [make_engine(pg_url) for _ in range(3)]
    results: list[int] = []
    errors: list[BaseException] = []

    def run(engine) -> None:  # type: ignore[no-untyped-def]
        try:
            results.append(len(upgrade(engine)))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [0, 0, len(discover("postgresql"))]
    for engine in engines:
        engine.dispose()
