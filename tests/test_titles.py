"""Playlist titles: normalising, the title index, and the hybrid's use of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import World, make_interactions, make_track_id

from recommender.bundle import load_bundle
from recommender.hybrid import TITLE
from recommender.titles import TitleIndex, normalise_title
from recommender.train import TrainedModel


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Chill Vibes", "chill vibes"),
        ("  chill   VIBES!!  ", "chill vibes"),
        ("Café ☕ Músic", "cafe music"),
        ("🔥🔥🔥", ""),
        ("90's R&B", "90 s r b"),
    ],
)
def test_titles_normalise_case_accents_and_symbols(title: str, expected: str) -> None:
    assert normalise_title(title) == expected


def named(playlists: list[tuple[str, list[str]]]):  # type: ignore[no-untyped-def]
    interactions = make_interactions([tracks for _, tracks in playlists])
    interactions.playlist_names = [name for name, _ in playlists]
    return interactions


def ids(label: str, n: int) -> list[str]:
    return [make_track_id(label, i) for i in range(n)]


def test_title_index_ranks_what_same_named_playlists_share() -> None:
    rock, chill = ids("rock", 4), ids("chill", 4)
    interactions = named(
        [("Rock", rock[:3]), ("rock!", [rock[0], rock[3]]), ("Chill", chill), ("vibes", chill[:1])]
    )
    index = TitleIndex.build(interactions, min_playlists=1)
    rows = index.recommend("ROCK", 10).tolist()
    assert [interactions.track_ids[r] for r in rows[:1]] == [rock[0]]  # on both rock playlists
    assert {interactions.track_ids[r] for r in rows} == set(rock)
    # Not known whole: its known words answer ("chill" and "vibes"), unknown words are ignored.
    words = [interactions.track_ids[r] for r in index.recommend("chill vibes tonight", 10)]
    assert words[0] == chill[0] and set(words) == set(chill)
    assert len(index.recommend("nothing like it", 10)) == 0
    assert len(index.recommend("", 10)) == 0
    assert len(index.recommend("rock", 2)) == 2


def test_hybrid_reads_the_title_only_when_no_seed_is_known(trained_world: TrainedModel) -> None:
    recommender = trained_world.recommender
    assert recommender.titles is not None
    world_name = "mix 8"  # playlist 8 of the world is in group 0 (pid % 8 groups)
    empty = recommender.recommend([], 10, title=world_name)
    assert empty.weights[TITLE] > 0
    assert {item.sources for item in empty.items} >= {(TITLE,)}
    without = recommender.recommend([], 10)
    assert [i.track_id for i in empty.items] != [i.track_id for i in without.items]
    known = recommender.catalog.track_ids[int(recommender.collab.rows[0])]  # type: ignore[union-attr]
    seeded = recommender.recommend([known], 10, title=world_name)
    assert seeded.weights[TITLE] == 0
    assert all(TITLE not in item.sources for item in seeded.items)


def test_titles_survive_the_bundle(world_bundle: Path, trained_world: TrainedModel) -> None:
    loaded, manifest = load_bundle(world_bundle)
    assert manifest["titles"]["titles"] == len(trained_world.recommender.titles or [])
    assert loaded.titles is not None
    original = trained_world.recommender.recommend([], 20, title="mix 3")
    again = loaded.recommend([], 20, title="mix 3")
    assert [i.track_id for i in again.items] == [i.track_id for i in original.items]
    assert np.array_equal(loaded.titles.rows, trained_world.recommender.titles.rows)  # type: ignore[union-attr]


def test_world_titles_are_indexed(world: World, trained_world: TrainedModel) -> None:
    # Every world playlist is named "mix <pid>": each title once, all kept with min 1.
    assert trained_world.recommender.titles is not None
    assert len(trained_world.recommender.titles) == len(world.playlists)
