"""Wall time and peak memory of `harmonya train` on the real data, as a child process.

    python bench/train_time.py [--data ../shared/data/raw] [--repeat 3] [--model unified]

Prints each run and the medians. Peak memory is the child's maximum resident set size.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(data: Path, model: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="harmonya-bench-") as out:
        started = time.perf_counter()
        code = (
            "import os, resource, sys; from recommender.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
            "else:\n    code = 0\n"
            "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print('PEAK_KB', peak, file=sys.stderr)\n"
            "sys.exit(code)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, "train", "--data", data, "--out", out, "--model", model],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"training failed:\n{result.stderr[-2000:]}")
    peak_kb = next(
        int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("PEAK_KB")
    )
    return wall, peak_kb / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/raw"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", choices=("two-tower", "unified"), default="unified")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; model: {args.model}"
    )
    walls, peaks = [], []
    for run in range(1, args.repeat + 1):
        wall, peak = run_once(args.data, args.model)
        walls.append(wall)
        peaks.append(peak)
        print(f"run {run}: {wall:.1f} s wall, {peak:.2f} GiB peak RSS", flush=True)
    print(
        f"median: {statistics.median(walls):.1f} s wall (target < 600 s), "
        f"{statistics.median(peaks):.2f} GiB peak (target < 4 GiB)"
    )


if __name__ == "__main__":
    main()
