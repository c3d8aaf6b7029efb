"""Held-out quality of the hybrid, each tower alone and most-popular, on the real data.

Holds out playlists (validation + test) from training, trains on the rest, tunes the fusion
constants on validation, then reports recall@500 on test for every method.

    python bench/quality.py --data ../shared/data/raw [--epochs 5] [--cache runs/quality]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from recommender.bundle import BundleError, load_bundle, save_bundle
from recommender.collab import CollabSettings
from recommender.data import fingerprint_files, read_interactions
from recommender.evaluate import cold_hidden, cold_seed_playlists, recall_at_k, split_holdout
from recommender.features import find_feature_files, read_feature_tables
from recommender.hybrid import METHODS, FusionSettings, HybridRecommender
from recommender.train import TrainSettings, train_model


def _model(args: argparse.Namespace, split, features) -> HybridRecommender:  # type: ignore[no-untyped-def]
    # The cached model is only valid for this data and this split.
    files = [Path(f) for f in split.train.files] + find_feature_files(args.data)
    fingerprint = fingerprint_files(files, root=args.data)[:12]
    key = f"e{args.epochs}-s{args.seed}-t{args.test}-v{args.validation}-{fingerprint}"
    cache = Path(args.cache) / key
    if cache.exists():
        try:
            return load_bundle(cache)[0]
        except BundleError as error:
            print(f"cache unusable ({error}); retraining", file=sys.stderr)
    settings = TrainSettings(
        collab=CollabSettings(epochs=args.epochs, seed=args.seed),
        seed=args.seed,
        model="two-tower",  # the figures in bench/README.md are the two-tower model's
    )
    started = time.perf_counter()
    trained = train_model(
        split.train, features, settings, progress=lambda m: print(m, file=sys.stderr)
    )
    print(f"trained in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    save_bundle(trained.recommender, trained.scaler, cache, training=trained.training)
    return trained.recommender


def _tune(recommender: HybridRecommender, validation) -> FusionSettings:  # type: ignore[no-untyped-def]
    """Grid search of the fusion constants on validation playlists (content prior kept)."""
    best, best_recall = recommender.fusion, -1.0
    grid = itertools.product((0.1, 0.3), (0.3, 3.0), (0.0, 0.05, 0.1, 0.2, 0.4))
    for content_weight, popular, cold in grid:
        recommender.fusion = replace(
            best, content_weight=content_weight, popularity_weight=popular, cold_weight=cold
        )
        recall = recall_at_k(recommender, validation).recall
        print(f"  {recommender.fusion}: {recall:.4f}", file=sys.stderr)
        if recall > best_recall:
            best, best_recall = recommender.fusion, recall
    recommender.fusion = best
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/raw"))
    parser.add_argument("--epochs", type=int, default=CollabSettings.epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test", type=int, default=600)
    parser.add_argument("--validation", type=int, default=400)
    parser.add_argument("--cache", default="runs/quality")
    parser.add_argument("--no-tune", action="store_true", help="Keep the default fusion constants.")
    args = parser.parse_args()

    interactions = read_interactions(args.data)
    features = read_feature_tables(args.data)
    split = split_holdout(
        interactions, n_test=args.test, n_validation=args.validation, seed=args.seed
    )
    recommender = _model(args, split, features)
    default_fusion = recommender.fusion
    # Tune on warm and cold-seeded validation playlists together, so the rule serves both.
    tuning_set = split.validation + cold_seed_playlists(recommender, split.validation)
    tuned = default_fusion if args.no_tune else _tune(recommender, tuning_set)

    rows = []
    for method in METHODS:
        score = recall_at_k(recommender, split.test, method=method)
        rows.append(score)
    recommender.fusion = default_fusion
    default_score = recall_at_k(recommender, split.test)
    cold = cold_hidden(recommender, split.test)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"train playlists {split.train.n_playlists}, test playlists {len(split.test)} "
        f"(first half given, last half hidden), validation {len(split.validation)}"
    )
    print(f"hidden tracks: {rows[0].hidden}, of them cold (features, no co-occurrence): {cold}")
    print("| method | recall@500 | hits | cold hits | median ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for score in rows:
        print(
            f"| {score.method} | {score.recall:.4f} | {score.hits} | {score.cold_hits} | "
            f"{score.median_ms:.2f} | {score.p99_ms:.2f} |"
        )
    print(
        f"| hybrid, default fusion | {default_score.recall:.4f} | {default_score.hits} | "
        f"{default_score.cold_hits} | "
        f"{default_score.median_ms:.2f} | {default_score.p99_ms:.2f} |"
    )
    print("tuned fusion:", json.dumps(asdict(tuned)))

    recommender.fusion = tuned
    cold_seeds = cold_seed_playlists(recommender, split.test)
    print(
        f"\ncold seeds: the {len(cold_seeds)} test playlists that have seeds the "
        "collaborative tower never saw, given only those seeds"
    )
    print("| method | recall@500 | hits |")
    print("|---|---|---|")
    for method in METHODS:
        score = recall_at_k(recommender, cold_seeds, method=method)
        print(f"| {method} | {score.recall:.4f} | {score.hits} |")


if __name__ == "__main__":
    main()
