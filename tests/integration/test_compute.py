"""The data work runs on a Dask cluster when CHURN_DASK_SCHEDULER names one (here: a local scheduler)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from churn.compute import run_tasks
from churn.data.ingest import ingest
from churn.data.silver import read_silver
from churn.lake import Lake
from churn.settings import Settings
from churn.synth.profiles import get_profile
from churn.synth.writer import write_dump


def square(x: int) -> int:
    return x * x


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a real distributed scheduler with two in-process workers."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    yield cluster.scheduler_address
    cluster.close()


def test_tasks_run_on_the_cluster_in_order(scheduler: str) -> None:
    settings = Settings(dask_scheduler=scheduler)
    assert run_tasks(settings, square, [(i,) for i in range(10)]) == [i * i for i in range(10)]


def test_ingest_on_the_cluster_matches_local_threads(scheduler: str, tmp_path: Path) -> None:
    profile = get_profile("tiny", users=200, days=90)
    local, remote = Lake(str(tmp_path / "local")), Lake(str(tmp_path / "remote"))
    for lake in (local, remote):
        write_dump(lake, profile, seed=4)
    ingest(local, Settings(lake_url=local.url, silver_buckets=4), "local")
    ingest(remote, Settings(lake_url=remote.url, silver_buckets=4, dask_scheduler=scheduler), "remote")
    for table in ("members", "transactions", "user_logs", "users"):
        assert read_silver(remote, table).equals(read_silver(local, table)), table
