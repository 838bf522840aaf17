"""Run every benchmark module `bench/bench_*.py` in turn (`make bench`), each in its own process.

Each benchmark prints one summary line (ours, reference, ratio, target, rows/s, peak RSS) and writes the
same figures as JSON under bench/results/ (git-ignored).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    """Run the benchmarks named on the command line, or all of them; non-zero if any fails."""
    folder = Path(__file__).resolve().parent
    wanted = set(sys.argv[1:])
    modules = sorted(p.stem for p in folder.glob("bench_*.py") if not wanted or p.stem in wanted)
    if not modules:
        print("bench: no benchmarks registered yet (bench/bench_*.py)")
        return 0
    failed = 0
    for module in modules:
        result = subprocess.run([sys.executable, "-m", f"bench.{module}"], check=False)
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
