"""The embedded mode's project-local PostgreSQL cluster: starts from the system's binaries, is reusable."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import text

from churn import localpg
from churn.db import make_engine
from tests.conftest import free_port


@pytest.mark.skipif(localpg.find_bindir() is None, reason="no PostgreSQL server binaries on this machine")
def test_local_cluster_starts_serves_and_stops() -> None:
    # Under /tmp rather than pytest's tmp_path (mode 700): the postgres user must reach the data folder.
    base = Path(tempfile.mkdtemp(prefix="churn-localpg-", dir="/tmp"))
    base.chmod(0o755)
    root = base / "pg"
    port = free_port()
    url = localpg.start(root, port)
    try:
        assert url == f"postgresql+psycopg2://postgres@127.0.0.1:{port}/churn"
        assert localpg.start(root, port) == url  # a running cluster is reused
        engine = make_engine(url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_database()")).scalar() == "churn"
        engine.dispose()
    finally:
        localpg.stop(root)
    assert not (root / "data" / "postmaster.pid").exists()
    shutil.rmtree(base, ignore_errors=True)
