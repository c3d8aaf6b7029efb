"""Paired bootstrap between two submissions of one `harmonya evaluate` run.

    python bench/paired.py runs/evaluation/truth.json A.csv B.csv [--resamples 2000]

Scores both files playlist by playlist with the challenge's metrics and prints, for NDCG,
R-precision and clicks, the mean of B minus A with a 95% bootstrap interval (resampling the
playlists), so a difference can be told from the noise of an 800-playlist test set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from recommender import metrics
from recommender.benchmark import truths
from recommender.data import TRACK_URI_PREFIX
from recommender.split import read_truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("truth", type=Path)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    playlists, artists = read_truth(args.truth)
    expected = truths(playlists)
    credit = {TRACK_URI_PREFIX + t: a for t, a in artists.items()}
    scored = [
        metrics.score_submission(metrics.read_submission(path, expected), expected, credit)
        for path in (args.a, args.b)
    ]
    rng = np.random.default_rng(args.seed)
    picks = rng.integers(0, len(expected), size=(max(args.resamples, 1), len(expected)))
    print(f"{args.b.name} minus {args.a.name}, {len(expected)} playlists:")
    for metric in ("ndcg", "r_precision", "clicks"):
        a, b = (np.asarray([getattr(s, metric) for s in side]) for side in scored)
        difference = b - a
        low, high = np.percentile(difference[picks].mean(axis=1), [2.5, 97.5])
        print(f"  {metric}: {difference.mean():+.4f} (95% interval {low:+.4f} to {high:+.4f})")


if __name__ == "__main__":
    main()
