"""Serving speed of a trained bundle: load time, `recommend` for 100-track playlists, `similar`.

    python bench/latency.py [--model models/default] [--data ../shared/data/raw]

The playlists are real ones from the data with 100 or more tracks (their first 100 tracks);
timings are medians and 99th percentiles in one process, model loaded once per load timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from recommender.bundle import load_bundle
from recommender.data import find_mpd_files, iter_playlists


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def time_load(model: Path, repeat: int) -> list[float]:
    """Bundle load in a fresh process each time (checksums included), in seconds."""
    code = (
        "import time, sys; t = time.perf_counter(); from pathlib import Path\n"
        "from recommender.bundle import load_bundle\n"
        "load_bundle(Path(sys.argv[1])); print(time.perf_counter() - t)\n"
    )
    times = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", code, str(model)], capture_output=True, text=True, check=True
        )
        times.append(float(out.stdout.strip()))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("models/default"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/raw"))
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )

    loads = time_load(args.model, 5)
    print(
        f"bundle load (fresh process, with checksums): median {statistics.median(loads):.2f} s "
        f"(target < 3 s)"
    )

    recommender, _ = load_bundle(args.model)
    playlists = [
        p.track_ids[:100]
        for p in iter_playlists(find_mpd_files(args.data))
        if len(p.track_ids) >= 100
    ][: args.queries]
    for top_k in (10, 500):
        times = []
        for seeds in playlists:
            started = time.perf_counter()
            recommender.recommend(seeds, top_k)
            times.append((time.perf_counter() - started) * 1000)
        print(
            f"recommend, {len(playlists)} playlists of 100 tracks, k={top_k}: median "
            f"{statistics.median(times):.2f} ms, p99 {percentile(times, 99):.2f} ms"
            + (" (target: median < 10 ms, p99 < 50 ms)" if top_k == 10 else "")
        )

    content_rows = recommender.content.rows if recommender.content is not None else []
    rng = np.random.default_rng(0)
    picks = rng.choice(content_rows, size=min(1000, len(content_rows)), replace=False)
    times = []
    for row in picks:
        track_id = recommender.catalog.track_ids[int(row)]
        started = time.perf_counter()
        recommender.similar(track_id, 10)
        times.append((time.perf_counter() - started) * 1000)
    print(
        f"similar, {len(times)} tracks, k=10: median {statistics.median(times):.3f} ms, "
        f"p99 {percentile(times, 99):.3f} ms (target median < 2 ms)"
    )


if __name__ == "__main__":
    main()
