"""The unified tower: sound and id in one vector, so a track no playlist holds finds its place."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import WORLD_SETTINGS, World, make_interactions, make_track_id

from recommender.bundle import load_bundle, save_bundle
from recommender.collab import CollabSettings
from recommender.rerank import RerankSettings
from recommender.train import TrainSettings, train_from_directory
from recommender.unified import train_unified

GROUPS, SIZE, WIDTH = 4, 20, 16
SETTINGS = CollabSettings(dimension=16, epochs=8, batch_size=64, n_trees=10)


@pytest.fixture(scope="module")
def sounds():  # type: ignore[no-untyped-def]
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
    tower, report = train_unified(interactions, features, has_features, SETTINGS, id_dropout=0.5)
    return ids, groups, cold, bare, ids.index(lonely), tower, report


def test_a_track_on_no_playlist_is_recommended_to_the_playlists_it_sounds_like(sounds) -> None:  # type: ignore[no-untyped-def]
    ids, groups, cold, _, _, tower, _ = sounds
    for group in range(GROUPS):
        seeds = np.asarray([ids.index(t) for t in groups[group][1:9]])
        rows, _ = tower.recommend(seeds, SIZE)
        found = [ids[r] for r in rows]
        assert cold[group] in found, (group, found)
        assert all(int(t[1]) == group for t in found[:10])


def test_every_kind_of_track_has_a_vector_but_those_with_neither(sounds) -> None:  # type: ignore[no-untyped-def]
    ids, groups, cold, bare, lonely, tower, report = sounds
    cold_rows = [ids.index(t) for t in cold]
    assert all(tower.knows(r) for r in cold_rows)  # features, no id
    assert tower.knows(bare)  # an id, no features
    assert tower.knows(ids.index(groups[1][3]))  # both
    assert not tower.knows(lonely)  # neither an id nor features: nothing to place it by
    assert report.items == len(ids) - 1
    # The id-only track still sits with its group.
    rows, _ = tower.recommend(np.asarray([bare]), 10)
    assert all(int(ids[r][1]) == 0 for r in rows)


def test_the_id_dropout_share_is_checked() -> None:
    interactions = make_interactions([[make_track_id("a", 0), make_track_id("a", 1)]])
    features = np.zeros((2, WIDTH), dtype=np.float32)
    with pytest.raises(ValueError, match="id_dropout"):
        train_unified(interactions, features, np.ones(2, dtype=bool), SETTINGS, id_dropout=1.0)


def test_harmonya_trains_and_serves_the_unified_model_from_its_bundle(
    world: World, tmp_path: Path
) -> None:
    settings = TrainSettings(
        collab=WORLD_SETTINGS.collab,
        content_trees=WORLD_SETTINGS.content_trees,
        rerank=None,
        model="unified",
    )
    trained = train_from_directory(world.directory, settings)
    assert trained.training["model"] == "unified"
    save_bundle(trained.recommender, trained.scaler, tmp_path / "model", training=trained.training)
    recommender, manifest = load_bundle(tmp_path / "model")
    assert manifest["training"]["model"] == "unified"
    # Cold tracks (features, on no playlist) are in the collaborative space now.
    assert recommender.collab is not None
    cold_rows, _ = recommender.catalog.indices(world.cold[2])
    assert all(recommender.collab.knows(int(r)) for r in cold_rows)
    answer = recommender.recommend(world.groups[2][:8], 60, method="collaborative")
    found = {item.track_id for item in answer.items}
    assert found & set(world.cold[2])


def test_an_unknown_model_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        TrainSettings(model="three-tower", rerank=RerankSettings())
