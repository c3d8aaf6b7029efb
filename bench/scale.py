"""Serving at the MPD's size: `recommend` latency and memory on a synthetic 2.26M-track catalogue.

    python bench/scale.py [--model models/default] [--tracks 2262292] [--sizes 500000]

A seeded generator makes a catalogue with the structure a trained bundle has (22-character
ids, a heavy-tailed count of playlists per track, clustered unit collaborative vectors,
clustered scaled audio features) and builds it with the production classes and settings:
`CollabModel` over the same Annoy builder `from_keras` uses (angular, 30 trees),
`ContentTower.build` (euclidean, 20 trees), `HybridRecommender`, `save_bundle`. Nothing is
trained. Each size is built and saved in one child process, then loaded with `load_bundle`
in a fresh one, which serves the timed playlists (seeds drawn from the catalogue in
proportion to each track's playlist count) exactly as the bot would. The real bundle gets the
same treatment, with counts read from the data it was trained on.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recommender.bundle import load_bundle, resolve_bundle, save_bundle
from recommender.catalog import TrackCatalog
from recommender.collab import CollabModel, _build_index
from recommender.content import (
    CONTENT_DIM,
    CONTINUOUS,
    TIME_SIGNATURES,
    ContentTower,
    FeatureScaler,
)
from recommender.data import find_mpd_files, iter_playlists
from recommender.hybrid import HybridRecommender
from recommender.train import TrainSettings

MPD_TRACKS = 2_262_292  # distinct tracks in the Million Playlist Dataset
MPD_ROWS = 66_346_428  # playlist-track rows in the MPD
MPD_TOP_COUNT = 46_574  # playlists holding the MPD's most frequent track
# Playlist counts follow (rank + r0) ** -ZIPF_EXPONENT; r0 is solved so the top count matches.
ZIPF_EXPONENT = 1.4
CLUSTERS = 2000  # "genres" shared by both towers, sizes heavy-tailed too
POPULAR_LIMIT = 5000  # as recommender.train.popularity
BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)
WARM_UP = 20
LENGTHS = (100, 10)
TOP_KS = (10, 500)
RATIO_KEYS = ("tracks", "collab_items", "load_s", "rss_loaded_mib", "rss_serving_mib", "disk_mib")


def rss_mib() -> float:
    """Resident memory of this process, from /proc/self/status (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def make_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct random 22-character base62 ids, like Spotify's."""
    codes = BASE62[rng.integers(0, 62, size=(n, 22))]
    ids = codes.view("S22").ravel().astype(str).tolist()
    if len(set(ids)) != n:  # 62**22 makes this all but impossible; the catalogue would refuse
        raise RuntimeError("duplicate synthetic track ids; change --seed")
    return ids


def make_counts(rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
    """Playlists holding each track (n,) int64, in random row order: >= 1, heavy tail.

    Scaled to the MPD: ``MPD_ROWS * n / MPD_TRACKS`` rows, the top track on MPD_TOP_COUNT.
    """
    rows = round(MPD_ROWS * n / MPD_TRACKS)
    rank = np.arange(1, n + 1, dtype=np.float64)
    low, high = 1e-3, 1e7
    for _ in range(80):  # bisection on r0 for the top track's share
        r0 = (low * high) ** 0.5
        share = (rank + r0) ** -ZIPF_EXPONENT
        share /= share.sum()
        low, high = (r0, high) if 1 + share[0] * (rows - n) > MPD_TOP_COUNT else (low, r0)
    counts = 1 + rng.multinomial(rows - n, share)
    return rng.permutation(counts).astype(np.int64)


def clustered(
    rng: np.random.Generator, labels: npt.NDArray[np.int64], dim: int, spread: float
) -> npt.NDArray[np.float32]:
    """Points (n, dim) float32: a standard normal centre per label plus ``spread`` noise."""
    centres = rng.standard_normal((int(labels.max()) + 1, dim), dtype=np.float32)
    noise = rng.standard_normal((len(labels), dim), dtype=np.float32)
    return centres[labels] + np.float32(spread) * noise


def unit(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def content_vectors(
    rng: np.random.Generator, labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Scaled audio features (n, CONTENT_DIM) laid out as FeatureScaler.transform makes them."""
    n, weight = len(labels), FeatureScaler.neutral().categorical_weight
    continuous = clustered(rng, labels, len(CONTINUOUS), spread=0.8)
    continuous = (continuous - continuous.mean(axis=0)) / continuous.std(axis=0)
    angle = 2 * np.pi * rng.integers(0, 12, size=n) / 12.0
    mode = np.where(rng.random(n) < 0.65, 1.0, -1.0)[:, None]
    signature = rng.choice(len(TIME_SIGNATURES), size=n, p=[0.07, 0.90, 0.03])
    categorical = np.concatenate(
        [np.cos(angle)[:, None], np.sin(angle)[:, None], mode, np.eye(3)[signature]], axis=1
    )
    vectors = np.concatenate([continuous, categorical * weight], axis=1).astype(np.float32)
    assert vectors.shape[1] == CONTENT_DIM
    return vectors


def build_synthetic(n: int, seed: int, log: Any) -> HybridRecommender:
    """A HybridRecommender over ``n`` synthetic tracks, built with the training settings."""
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    settings = TrainSettings()
    ids = make_ids(rngs[0], n)
    counts = make_counts(rngs[1], n)
    cluster_share = 1.0 / (np.arange(CLUSTERS) + 10.0)
    labels = rngs[2].choice(CLUSTERS, size=n, p=cluster_share / cluster_share.sum())
    artists = rngs[2].integers(0, max(1, n // 8), size=n)
    catalog = TrackCatalog(ids, [f"Track {i}" for i in range(n)], [f"Artist {a}" for a in artists])
    log(f"catalogue: {n:,} tracks")

    collab_rows = np.flatnonzero(counts >= settings.collab.min_count).astype(np.int64)
    dimension = settings.collab.dimension
    vectors = unit(clustered(rngs[3], labels[collab_rows], dimension, spread=0.7))
    # Exported context rows are not unit length; 0.43 is the real bundle's mean norm.
    contexts = 0.43 * unit(vectors + 0.3 * rngs[4].standard_normal(vectors.shape, np.float32))
    started = time.perf_counter()
    index = _build_index(vectors, settings.collab.n_trees, settings.collab.seed)
    log(f"collab index: {len(collab_rows):,} tracks in {time.perf_counter() - started:.0f} s")
    collab = CollabModel(collab_rows, contexts, vectors, index, n, settings.collab)

    started = time.perf_counter()
    content = ContentTower.build(
        np.arange(n, dtype=np.int64),
        content_vectors(rngs[5], labels),
        n,
        prior=np.log1p(counts).astype(np.float32),
        prior_weight=settings.content_prior,
        n_trees=settings.content_trees,
        seed=settings.seed,
    )
    log(f"content index: {n:,} tracks in {time.perf_counter() - started:.0f} s")
    popular = np.lexsort((np.arange(n), -counts))[:POPULAR_LIMIT].astype(np.int64)
    return HybridRecommender(catalog, collab, content, popular, settings.fusion)


def synthetic_counts(n: int, seed: int) -> npt.NDArray[np.int64]:
    """The counts ``build_synthetic(n, seed)`` used (the same child seed)."""
    return make_counts(np.random.default_rng(np.random.SeedSequence(seed).spawn(6)[1]), n)


def data_counts(catalog: TrackCatalog, data: Path) -> npt.NDArray[np.int64]:
    """Playlists holding each catalogue track in the playlist slices under ``data``."""
    seen = Counter(t for p in iter_playlists(find_mpd_files(data)) for t in set(p.track_ids))
    counts = np.zeros(len(catalog), dtype=np.int64)
    for track_id, count in seen.items():
        row = catalog.index_of(track_id)
        if row is not None:
            counts[row] = count
    return counts


def draw_playlists(
    counts: npt.NDArray[np.int64], number: int, length: int, rng: np.random.Generator
) -> list[npt.NDArray[np.int64]]:
    """``number`` playlists of ``length`` distinct rows, each drawn in proportion to count."""
    cdf = np.cumsum(counts, dtype=np.float64)
    playlists = []
    for _ in range(number):
        rows: dict[int, None] = {}
        while len(rows) < length:
            draws = np.searchsorted(cdf, rng.random(length) * cdf[-1], side="right")
            rows.update(dict.fromkeys(draws.tolist()))
        playlists.append(np.asarray(list(rows)[:length], dtype=np.int64))
    return playlists


def time_recommend(
    recommender: HybridRecommender, counts: npt.NDArray[np.int64], number: int, seed: int
) -> dict[str, list[float]]:
    """Per-playlist `recommend` times in ms, keyed "<length>@<top_k>", after a warm-up."""
    rng = np.random.default_rng(seed)
    ids = recommender.catalog.track_ids
    times: dict[str, list[float]] = {}
    for length in LENGTHS:
        playlists = draw_playlists(counts, WARM_UP + number, length, rng)
        seeds = [[ids[int(r)] for r in rows] for rows in playlists]
        for top_k in TOP_KS:
            for playlist in seeds[:WARM_UP]:
                recommender.recommend(playlist, top_k)
            found = []
            for playlist in seeds[WARM_UP:]:
                started = time.perf_counter()
                recommender.recommend(playlist, top_k)
                found.append((time.perf_counter() - started) * 1000)
            times[f"{length}@{top_k}"] = found
    return times


def disk_mib(model: Path) -> float:
    directory = resolve_bundle(model)
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file()) / 2**20


def run_build(n: int, seed: int, out: Path) -> dict[str, Any]:
    """Child: generate and build ``n`` tracks, save the bundle; sizes and times."""
    before = rss_mib()
    started = time.perf_counter()
    recommender = build_synthetic(n, seed, lambda m: print(m, file=sys.stderr, flush=True))
    built = time.perf_counter() - started
    after = rss_mib()
    started = time.perf_counter()
    training = {"synthetic": {"tracks": n, "seed": seed, "zipf_exponent": ZIPF_EXPONENT}}
    save_bundle(recommender, FeatureScaler.neutral(), out, training=training)
    return {
        "build_s": built,
        "save_s": time.perf_counter() - started,
        "build_rss_mib": after,
        "build_rss_delta_mib": after - before,
        "collab_items": len(recommender.collab.rows) if recommender.collab else 0,
        "content_items": len(recommender.content.rows) if recommender.content else 0,
    }


def run_serve(model: Path, counts_of: str, playlists: int, seed: int) -> dict[str, Any]:
    """Child: load a bundle in this fresh process and time `recommend` on it."""
    before = rss_mib()
    started = time.perf_counter()
    recommender, _ = load_bundle(model)
    loaded = time.perf_counter() - started
    # As bot/bot.py does after loading: a full collection would otherwise walk every
    # catalogue string now and then, in the middle of some request.
    gc.collect()
    gc.freeze()
    rss_loaded = rss_mib()
    kind, _, value = counts_of.partition(":")
    if kind == "data":
        counts = data_counts(recommender.catalog, Path(value))
    else:
        counts = synthetic_counts(len(recommender.catalog), int(value))
    times = time_recommend(recommender, counts, playlists, seed)
    return {
        "tracks": len(recommender.catalog),
        "collab_items": len(recommender.collab.rows) if recommender.collab else 0,
        "content_items": len(recommender.content.rows) if recommender.content else 0,
        "load_s": loaded,
        "rss_start_mib": before,
        "rss_loaded_mib": rss_loaded,
        "rss_serving_mib": rss_mib(),
        "disk_mib": disk_mib(model),
        "latency": {key: summarise(values) for key, values in times.items()},
    }


def summarise(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "p99": float(np.percentile(values, 99))}


def child(args: list[str]) -> dict[str, Any]:
    """Run this script as a child process and return the JSON of its last output line."""
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    out = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    common = ["--playlists", str(args.playlists), "--seed", str(args.seed)]
    real = child(["--serve", str(args.model), "--counts", f"data:{args.data}", *common])
    results = [{"size": "real bundle", "build_s": None, "save_s": None, **real}]
    print(f"real bundle: {real['tracks']:,} tracks, loaded in {real['load_s']:.1f} s", flush=True)
    for n in [*args.sizes, args.tracks]:
        root = args.out / f"synthetic-{n}"
        started = time.perf_counter()
        if args.reuse and (root / "current").exists():
            built = {"build_s": None, "save_s": None}
        else:
            built = child(["--build", str(n), "--out", str(root), *common])
        print(f"synthetic {n:,}: ready in {time.perf_counter() - started:.0f} s", flush=True)
        served = child(["--serve", str(root), "--counts", f"synthetic:{args.seed}", *common])
        results.append({"size": f"synthetic {n:,}", **built, **served})
    return results


def fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def print_tables(results: list[dict[str, Any]], playlists: int) -> None:
    print(
        "\n| size | tracks | collab items | build s | save s | load s | RSS loaded MiB "
        "| RSS serving MiB | disk MiB |\n|---|---|---|---|---|---|---|---|---|"
    )
    for r in results:
        print(
            f"| {r['size']} | {r['tracks']:,} | {r['collab_items']:,} | {fmt(r['build_s'])} "
            f"| {fmt(r['save_s'])} | {fmt(r['load_s'], 2)} | {fmt(r['rss_loaded_mib'], 0)} "
            f"| {fmt(r['rss_serving_mib'], 0)} | {fmt(r['disk_mib'], 0)} |"
        )
    small, large = results[0], results[-1]
    ratio = {k: f"{large[k] / small[k]:.1f}x" for k in RATIO_KEYS}
    print(
        f"| **large / small** | {ratio['tracks']} | {ratio['collab_items']} | | "
        f"| {ratio['load_s']} | {ratio['rss_loaded_mib']} | {ratio['rss_serving_mib']} "
        f"| {ratio['disk_mib']} |"
    )

    header = " | ".join(f"k={k} median | k={k} p99" for k in TOP_KS)
    print(f"\n`recommend` per playlist in ms, {playlists} playlists each after {WARM_UP} warm-up:")
    print(f"\n| size | seeds | {header} |\n|---|---|{'---|' * 2 * len(TOP_KS)}")
    for length in LENGTHS:
        for r in [*results, None]:
            row = large if r is None else r
            cells = []
            for top_k in TOP_KS:
                stats = row["latency"][f"{length}@{top_k}"]
                base = small["latency"][f"{length}@{top_k}"]
                for q in ("median", "p99"):
                    cells.append(f"{stats[q] / base[q]:.2f}x" if r is None else fmt(stats[q], 2))
            name = "**large / small**" if r is None else row["size"]
            print(f"| {name} | {length} | {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("models/default"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/raw"))
    parser.add_argument("--tracks", type=int, default=MPD_TRACKS)
    parser.add_argument("--sizes", type=int, nargs="*", default=[], help="extra smaller sizes")
    parser.add_argument("--playlists", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/scale"))
    parser.add_argument("--reuse", action="store_true", help="serve bundles already in --out")
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--counts", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build is not None:
        print(json.dumps(run_build(args.build, args.seed, args.out)))
        return
    if args.serve is not None:
        print(json.dumps(run_serve(args.serve, args.counts, args.playlists, args.seed)))
        return

    started = time.perf_counter()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    results = measure(args)
    print_tables(results, args.playlists)
    print(f"\nwall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
