"""The unified tower: sound and id in one vector, so a track no playlist holds finds its place."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_interactions, make_track_id

from recommender.unified import UnifiedSettings, train_unified

GROUPS, SIZE, WIDTH = 4, 20, 16
SETTINGS = UnifiedSettings(dimension=16, epochs=8, batch_size=64, n_trees=10, id_dropout=0.5)


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    """Four groups whose sound alone tells them apart; playlists stay inside a group. The
    last track of each group is on no playlist (cold); one group-0 track has no features."""
    rng = np.random.default_rng(3)
    groups = [[make_track_id(f"u{g}t", i) for i in range(SIZE)] for g in range(GROUPS)]
    playlists = []
    for number in range(240):
        group = groups[number % GROUPS][: SIZE - 1]  # the cold track never appears
        playlists.append([group[i] for i in rng.choice(SIZE - 1, size=8, replace=False)])
    lonely = make_track_id("lonely", 0)  # on one playlist (below min_count), no features
    playlists.append([groups[1][0], groups[1][1], lonely])
    interactions = make_interactions(playlists)
    cold = [g[-1] for g in groups]
    ids = interactions.track_ids + cold
    centres = rng.normal(0, 3, size=(GROUPS, WIDTH))
    features = np.zeros((len(ids), WIDTH), dtype=np.float32)
    for row, track in enumerate(ids):
        if track != lonely:
            features[row] = centres[int(track[1])] + rng.normal(0, 0.3, size=WIDTH)
    has_features = np.asarray([t != lonely for t in ids])
    bare = ids.index(groups[0][0])
    has_features[bare] = False
    tower, report = train_unified(interactions, features, has_features, SETTINGS)
    return ids, groups, cold, bare, ids.index(lonely), tower, report


def test_a_track_on_no_playlist_is_recommended_to_the_playlists_it_sounds_like(world) -> None:  # type: ignore[no-untyped-def]
    ids, groups, cold, _, _, tower, _ = world
    for group in range(GROUPS):
        seeds = np.asarray([ids.index(t) for t in groups[group][1:9]])
        rows, _ = tower.recommend(seeds, SIZE)
        found = [ids[r] for r in rows]
        assert cold[group] in found, (group, found)
        assert all(int(t[1]) == group for t in found[:10])


def test_every_kind_of_track_has_a_vector_but_those_with_neither(world) -> None:  # type: ignore[no-untyped-def]
    ids, groups, cold, bare, lonely, tower, report = world
    cold_rows = [ids.index(t) for t in cold]
    assert all(tower.knows(r) for r in cold_rows)  # features, no id
    assert tower.knows(bare)  # an id, no features
    assert tower.knows(ids.index(groups[1][3]))  # both
    assert not tower.knows(lonely)  # neither an id nor features: nothing to place it by
    assert report.items == len(ids) - 1
    # The id-only track still sits with its group.
    rows, _ = tower.recommend(np.asarray([bare]), 10)
    assert all(int(ids[r][1]) == 0 for r in rows)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="id_dropout"):
        UnifiedSettings(id_dropout=1.0)
