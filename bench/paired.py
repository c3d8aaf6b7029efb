"""Paired bootstrap between two submissions of one `harmonya evaluate` run.

    python bench/paired.py runs/evaluation/truth.json A.csv B.csv [--resamples 2000]
        [--warm-data ../shared/data/raw]

Scores both files playlist by playlist with the challenge's metrics and prints, for NDCG,
R-precision and clicks, the mean of B minus A with a 95% bootstrap interval (resampling the
playlists), so a difference can be told from the noise of an 800-playlist test set. With
``--warm-data`` the split is rebuilt from that data (``--split-seed``, 100 test and 50
validation playlists per scenario, as ``harmonya evaluate`` defaults) and the lists are scored
against the warm hidden tracks only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from recommender import metrics
from recommender.benchmark import only, truths, warm_tracks
from recommender.data import TRACK_URI_PREFIX, read_interactions
from recommender.split import challenge_split, read_truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("truth", type=Path)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-data", type=Path)
    parser.add_argument("--split-seed", type=int, default=0)
    args = parser.parse_args()
    playlists, artists = read_truth(args.truth)
    expected = given = truths(playlists)
    if args.warm_data is not None:
        split = challenge_split(
            read_interactions(args.warm_data),
            per_scenario=100,
            validation_per_scenario=50,
            seed=args.split_seed,
        )
        if [p.pid for p in split.test] != [p.pid for p in playlists]:
            raise SystemExit("the rebuilt split is not the one the truth file holds")
        expected = only(given, warm_tracks(split))
    credit = {TRACK_URI_PREFIX + t: a for t, a in artists.items()}
    scored = [
        metrics.score_submission(metrics.read_submission(path, given), expected, credit)
        for path in (args.a, args.b)
    ]
    rng = np.random.default_rng(args.seed)
    picks = rng.integers(0, len(expected), size=(max(args.resamples, 1), len(expected)))
    kind = "warm hidden tracks, " if args.warm_data is not None else ""
    print(f"{args.b.name} minus {args.a.name}, {kind}{len(expected)} playlists:")
    for metric in ("ndcg", "r_precision", "clicks"):
        a, b = (np.asarray([getattr(s, metric) for s in side]) for side in scored)
        difference = b - a
        low, high = np.percentile(difference[picks].mean(axis=1), [2.5, 97.5])
        print(f"  {metric}: {difference.mean():+.4f} (95% interval {low:+.4f} to {high:+.4f})")


if __name__ == "__main__":
    main()
