"""The API worker's cache of the newest published date: re-read only after its TTL."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from sqlalchemy import text

from churn.db import make_async_engine
from churn.scores.scorereads import NewestDate


def test_the_newest_date_is_reread_only_after_the_ttl(tmp_path: Path) -> None:
    async def scenario() -> list[dt.date | None]:
        engine = make_async_engine(f"sqlite:///{tmp_path / 'scores.db'}")
        now = [100.0]
        cache = NewestDate(ttl_seconds=1.0, clock=lambda: now[0])
        seen = []
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE score_runs (score_date TEXT, status TEXT)"))
            await connection.execute(text("INSERT INTO score_runs VALUES ('2017-04-01', 'published')"))
            seen.append(await cache.get(connection))
            await connection.execute(text("INSERT INTO score_runs VALUES ('2017-04-02', 'published')"))
            await connection.execute(text("INSERT INTO score_runs VALUES ('2017-04-03', 'running')"))
            now[0] += 0.5
            seen.append(await cache.get(connection))  # within the TTL: the cached day
            now[0] += 0.5
            seen.append(await cache.get(connection))  # TTL passed: re-read, running runs ignored
        await engine.dispose()
        return seen

    assert asyncio.run(scenario()) == [dt.date(2017, 4, 1), dt.date(2017, 4, 1), dt.date(2017, 4, 2)]
