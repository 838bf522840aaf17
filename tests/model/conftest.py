"""A small generated lake, ingested once for the model tests (training, scoring)."""

from __future__ import annotations

import pytest

from churn.ingest import ingest
from churn.lake import Lake
from churn.settings import Settings
from churn.synth.profiles import get_profile
from churn.synth.writer import write_dump


@pytest.fixture(scope="session")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """3,000 generated users with 240 days of history, in Silver (4 buckets)."""
    lake = Lake(str(tmp_path_factory.mktemp("small") / "lake"))
    write_dump(lake, get_profile("tiny", users=3000, days=240), seed=5)
    ingest(lake, Settings(lake_url=lake.url, silver_buckets=4, dask_workers=1), "dump")
    return lake
