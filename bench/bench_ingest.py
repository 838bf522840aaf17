"""Ingest benchmark: `user_logs.csv` of the bench profile -> Silver, against pyarrow's plain read_csv.

ours:      churn's ingest of that one file (parse in blocks, check, key, bucket, sort, dedupe, write zstd
           Parquet), 2 Dask threads;
reference: pyarrow's multi-threaded CSV parser over the same file, parse only, nothing written:
           `pyarrow.csv.read_csv` when the file is under 2 GB; above that `pyarrow.csv.open_csv` read to the
           end in 64 MB blocks, because read_csv keeps the whole table: on the bench profile's 7 GB file it
           needs ~24 GB here (all of the machine) and thrashes. The streaming reader is ~1.6x slower than
           read_csv on files where both work, so ratios against it flatter us by that much: compare both.
Target: ours <= 2x the reference, peak RSS <= 3 GB. Run: `python -m bench.bench_ingest [--users N]`.
"""

from __future__ import annotations

import os
import shutil

from bench.common import DATA, bench_lake, repeat, report, users_argument

TARGET_RATIO = 2.0
TARGET_RSS = 3 * 1024**3


def main() -> None:
    """Measure both sides on the same file and print the summary line."""
    users = users_argument(__doc__)
    lake = bench_lake("bench", users)
    source = lake / "bronze" / "user_logs.csv"
    size = source.stat().st_size
    work = DATA / "ingest-work"
    times = 3 if size < 1 << 30 else 1

    reference_setup = "import pyarrow.csv as c, pyarrow as pa\npa.set_cpu_count(2); pa.set_io_thread_count(2)"
    streaming = size >= 2 << 30
    reference_name = "pyarrow open_csv streaming" if streaming else "pyarrow.csv.read_csv"
    reference_body = (
        f"reader = c.open_csv({str(source)!r}, read_options=c.ReadOptions(block_size=64 << 20))\n"
        "rows = sum(batch.num_rows for batch in reader)"
        if streaming
        else f"rows = c.read_csv({str(source)!r}).num_rows"
    )
    reference, reference_rss = repeat(reference_setup, reference_body, times)

    ours_setup = f"""
import shutil, os
from churn.data.ingest import ingest, Source
from churn.lake import Lake
from churn.settings import Settings
work = {str(work)!r}
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work + "/bronze")
os.symlink({str(source)!r}, work + "/bronze/user_logs.csv")
lake = Lake(work)
settings = Settings(lake_url=work, dask_workers=2, dask_threads_per_worker=1)
source = Source("user_logs", "bronze/user_logs.csv", "dump-user_logs")
"""
    ours_body = "report = ingest(lake, settings, 'bench', force=True, sources=[source])"
    ours, ours_rss = repeat(ours_setup, ours_body, times)
    shutil.rmtree(work, ignore_errors=True)

    with source.open("rb") as handle:  # counted once, outside the timings
        rows = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 24), b"")) - 1
    ratio = ours / reference
    figures = {
        "file": str(source), "bytes": size, "reference": reference_name, "rows": rows, "repetitions": times,
        "ours_s": round(ours, 3), "reference_s": round(reference, 3), "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO, "ours_peak_rss": ours_rss, "reference_peak_rss": reference_rss,
        "target_rss": TARGET_RSS, "cpus": os.cpu_count(),
    }  # fmt: skip
    report(
        "ingest",
        figures,
        f"ours {ours:.1f} s, reference({reference_name}, 2 threads) {reference:.1f} s, ratio {ratio:.2f} "
        f"(target <= {TARGET_RATIO}), {size / ours / 1e6:.0f} MB/s, rows/s {rows / ours / 1e6:.2f}M, "
        f"peak RSS {ours_rss / 2**30:.2f} GiB (target <= {TARGET_RSS / 2**30:.0f}), "
        f"reference peak RSS {reference_rss / 2**30:.2f} GiB",
    )


if __name__ == "__main__":
    main()
