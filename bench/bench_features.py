"""Feature benchmark: Gold features as of 2017-03-31 over the bench profile's Silver, against DuckDB.

ours:      `churn.features.gold.build_gold_features` (one Dask task per Silver bucket, 2 threads),
           written to Gold;
reference: DuckDB (2 threads) running an equivalent aggregation SQL over the same Silver Parquet files:
           transaction counts and sums, the last transaction in the rule's order, earlier lapses, members,
           and the listening sums/active days/ratios over 7/14/30/90/180 days, result fetched as Arrow.
Target: ours <= 2x DuckDB, peak RSS <= 4 GB. Needs the bench data ingested (it ingests it once if not).
Run: `python -m bench.bench_features [--users N]`.
"""

from __future__ import annotations

import os
import subprocess
import sys

from bench.common import bench_lake, repeat, report, users_argument

TARGET_RATIO = 2.0
TARGET_RSS = 4 * 1024**3
AS_OF = "2017-03-31"
WINDOWS = (7, 14, 30, 90, 180)


def reference_sql(silver: str) -> str:
    """The DuckDB query computing the same aggregates as the feature code."""
    d = f"DATE '{AS_OF}'"
    log_columns = []
    for w in WINDOWS:
        inside = f"FILTER (WHERE date > {d} - INTERVAL {w} DAY)"
        log_columns += [
            f"sum(least(greatest(total_secs, 0), 86400)) {inside} AS secs_{w}d",
            f"sum(num_25 + num_50 + num_75 + num_985 + num_100) {inside} AS plays_{w}d",
            f"count(*) {inside} AS active_days_{w}d",
            f"sum(num_100) {inside} / nullif(sum(num_25 + num_50 + num_75 + num_985 + num_100) {inside}, 0)"
            f" AS complete_ratio_{w}d",
            f"sum(num_unq) {inside} / nullif(sum(num_25 + num_50 + num_75 + num_985 + num_100) {inside}, 0)"
            f" AS unique_ratio_{w}d",
        ]
    return f"""
WITH tx AS (
    SELECT *, row_number() OVER (
        PARTITION BY user_id ORDER BY transaction_date DESC,
        CAST(plan_list_price AS VARCHAR) || CAST(payment_plan_days AS VARCHAR)
            || CAST(payment_method_id AS VARCHAR),
        is_cancel DESC) AS from_last,
        lead(transaction_date) OVER (PARTITION BY user_id ORDER BY transaction_date)
            - membership_expire_date AS gap
    FROM read_parquet('{silver}/transactions/*/*.parquet') WHERE transaction_date <= {d}
), agg AS (
    SELECT user_id, count(*) AS n_transactions, sum(is_cancel) AS n_cancels,
           avg(is_auto_renew) AS auto_share,
           sum(actual_amount_paid) AS total_paid, min(transaction_date) AS first_date,
           count(*) FILTER (WHERE gap >= 30 AND membership_expire_date >= DATE '2000-01-01') AS n_lapses
    FROM tx GROUP BY user_id
), last AS (
    SELECT user_id, payment_plan_days, plan_list_price, actual_amount_paid,
           plan_list_price - actual_amount_paid AS discount, payment_method_id, is_auto_renew, is_cancel,
           membership_expire_date - {d} AS days_to_expiry, {d} - transaction_date AS days_since_transaction
    FROM tx WHERE from_last = 1
), listening AS (
    SELECT user_id, {", ".join(log_columns)},
           {d} - max(date) AS days_since_listen
    FROM read_parquet('{silver}/user_logs/*/*.parquet')
    WHERE date BETWEEN {d} - INTERVAL 179 DAY AND {d} GROUP BY user_id
), members AS (
    SELECT user_id, city, CASE WHEN bd BETWEEN 1 AND 100 THEN bd END AS age, gender, registered_via,
           {d} - registration_init_time AS registration_days
    FROM read_parquet('{silver}/members/*/*.parquet')
)
SELECT u.msno, agg.*, last.* EXCLUDE (user_id), members.* EXCLUDE (user_id), listening.* EXCLUDE (user_id)
FROM agg JOIN last USING (user_id)
LEFT JOIN (SELECT DISTINCT user_id, msno FROM read_parquet('{silver}/users/*/*.parquet')) u USING (user_id)
LEFT JOIN members USING (user_id) LEFT JOIN listening USING (user_id)
"""


def main() -> None:
    """Ingest the bench data once if needed, then measure both sides and print the summary line."""
    users = users_argument(__doc__)
    lake = bench_lake("bench", users)
    if not (lake / "silver" / "_layout.json").exists():
        print(f"bench: ingesting {lake} once ...", flush=True)
        subprocess.run([sys.executable, "-m", "churn.cli", "ingest"], check=True,
                       env={**os.environ, "CHURN_LAKE_URL": str(lake)})  # fmt: skip
    silver = str(lake / "silver")
    times = 3 if users else 1

    sql = reference_sql(silver)
    reference_setup = (
        "import duckdb\ncon = duckdb.connect()\ncon.execute('SET threads=2')\n"
        f"con.execute('SET enable_progress_bar=false')\nsql = {sql!r}"
    )
    reference_body = "rows = con.sql(sql).to_arrow_table().num_rows"
    reference, reference_rss = repeat(reference_setup, reference_body, times)

    ours_setup = f"""
import datetime as dt
from churn.features.gold import build_gold_features
from churn.lake import Lake
from churn.settings import Settings
lake = Lake({str(lake)!r})
settings = Settings(lake_url={str(lake)!r}, dask_workers=2, dask_threads_per_worker=1)
"""
    ours_body = f"manifest = build_gold_features(lake, settings, dt.date.fromisoformat({AS_OF!r}), 'bench')"
    ours, ours_rss = repeat(ours_setup, ours_body, times)

    import pyarrow.parquet as pq

    gold = lake / "gold" / "features" / f"as_of={AS_OF}"
    feature_rows = sum(pq.read_metadata(p).num_rows for p in gold.glob("*.parquet"))
    log_rows = sum(pq.read_metadata(p).num_rows for p in (lake / "silver" / "user_logs").rglob("*.parquet"))
    ratio = ours / reference
    figures = {
        "lake": str(lake), "as_of": AS_OF, "silver_log_rows": log_rows, "repetitions": times,
        "ours_s": round(ours, 3), "reference_s": round(reference, 3), "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO, "ours_peak_rss": ours_rss, "reference_peak_rss": reference_rss,
        "target_rss": TARGET_RSS, "feature_rows": feature_rows,
    }  # fmt: skip
    report(
        "features",
        figures,
        f"ours {ours:.1f} s, reference(DuckDB SQL, 2 threads) {reference:.1f} s, ratio {ratio:.2f} "
        f"(target <= {TARGET_RATIO}), Silver log rows/s {log_rows / ours / 1e6:.1f}M, "
        f"peak RSS {ours_rss / 2**30:.2f} GiB (target <= {TARGET_RSS / 2**30:.0f}), "
        f"reference peak RSS {reference_rss / 2**30:.2f} GiB",
    )


if __name__ == "__main__":
    main()
