"""The baselines on block-structured playlists: each finds a seed's block-mates first."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_interactions, make_track_id

from recommender import baselines
from recommender.split import HeldOut

GROUPS, SIZE = 4, 12


def blocks() -> tuple[list[list[str]], list[list[str]]]:
    rng = np.random.default_rng(0)
    groups = [[make_track_id(f"b{g}t", i) for i in range(SIZE)] for g in range(GROUPS)]
    playlists = []
    for number in range(160):
        group = groups[number % GROUPS]
        playlists.append([group[i] for i in rng.choice(SIZE, size=6, replace=False)])
    # Group 0 is the most popular, so "most popular" is wrong for the other groups.
    playlists += [groups[0][:6] for _ in range(40)]
    return groups, playlists


def held_out(seeds: list[str]) -> HeldOut:
    return HeldOut(pid=10_000, scenario="first 5", name="", seeds=seeds, hidden=[], length=0)


@pytest.mark.parametrize(
    "method",
    [
        baselines.ItemKNN(neighbours=20),
        baselines.ImplicitALS(factors=8, regularization=0.05, iterations=10),
        baselines.ImplicitBPR(factors=8, learning_rate=0.05, iterations=200),
    ],
    ids=lambda m: m.name,
)
def test_block_mates_come_first(method: baselines.Method) -> None:
    groups, playlists = blocks()
    method.fit(make_interactions(playlists))
    group = groups[2]
    answer = method.recommend(held_out(group[:4]), 10)
    assert len(answer) == 10
    assert not set(answer) & set(group[:4])
    # The 8 other tracks of the group fill the top 8 (BPR is noisier: 6 of them).
    wanted = 6 if method.name == "BPR" else 8
    assert len(set(answer[:8]) & set(group[4:])) >= wanted, answer


def test_most_popular_is_the_same_for_everyone_and_skips_seeds() -> None:
    groups, playlists = blocks()
    method = baselines.MostPopular()
    method.fit(make_interactions(playlists))
    top = method.recommend(held_out([]), 6)
    assert set(top) == set(groups[0][:6])
    without = method.recommend(held_out(groups[0][:2]), 6)
    assert not set(without) & set(groups[0][:2])
    assert without[:4] == [t for t in top if t not in groups[0][:2]]


def test_unknown_seeds_and_short_catalogues_get_popular_tracks() -> None:
    groups, playlists = blocks()
    method = baselines.ItemKNN(neighbours=20)
    method.fit(make_interactions(playlists))
    stranger = make_track_id("stranger", 1)
    answer = method.recommend(held_out([stranger]), 5)
    popular = baselines.MostPopular()
    popular.fit(make_interactions(playlists))
    assert answer == popular.recommend(held_out([]), 5)
    everything = method.recommend(held_out(groups[1][:2]), 10_000)
    assert len(everything) == GROUPS * SIZE - 2  # the whole vocabulary, no repeats, no seeds
    assert len(set(everything)) == len(everything)
