"""The unified tower: sound and id in one vector, so a track no playlist holds finds its place."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import WORLD_SETTINGS, World, make_interactions, make_track_id

from bot.service import RecommendService, Requester, Source
from bot.storage import HistoryStore, upgrade_database
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
    return ids, groups, cold, bare, ids.index(lonely), tower, report, interactions


def test_a_track_on_no_playlist_is_recommended_to_the_playlists_it_sounds_like(sounds) -> None:  # type: ignore[no-untyped-def]
    ids, groups, cold, _, _, tower, _, _ = sounds
    for group in range(GROUPS):
        seeds = np.asarray([ids.index(t) for t in groups[group][1:9]])
        rows, _ = tower.recommend(seeds, SIZE)
        found = [ids[r] for r in rows]
        assert cold[group] in found, (group, found)
        assert all(int(t[1]) == group for t in found[:10])


def test_every_kind_of_track_has_a_vector_but_those_with_neither(sounds) -> None:  # type: ignore[no-untyped-def]
    ids, groups, cold, bare, lonely, tower, report, _ = sounds
    cold_rows = [ids.index(t) for t in cold]
    assert all(tower.knows(r) for r in cold_rows)  # features, no id
    assert tower.knows(bare)  # an id, no features
    assert tower.knows(ids.index(groups[1][3]))  # both
    assert not tower.knows(lonely)  # neither an id nor features: nothing to place it by
    assert report.items == len(ids) - 1
    # The id-only track still sits with its group.
    rows, _ = tower.recommend(np.asarray([bare]), 10)
    assert all(int(ids[r][1]) == 0 for r in rows)


def test_the_served_vectors_are_the_ones_the_model_trained(sounds) -> None:  # type: ignore[no-untyped-def]
    """Every kind of playlist track, the id-only one included: no part the graph added in
    training (such as the sound projection's bias for a track with no sound) is lost."""
    _, _, _, bare, _, tower, _, interactions = sounds
    rows = tower.rows[tower.rows < interactions.n_tracks]  # the model's items, in order
    assert bare in rows.tolist()
    has_id = interactions.counts()[rows] >= SETTINGS.min_count
    items = np.arange(1, len(rows) + 1, dtype=np.int32)
    inputs = {
        "context": np.zeros((len(rows), 1), dtype=np.int32),
        "context_id": np.zeros((len(rows), 1), dtype=np.float32),
        "target": items,
        "target_id": has_id.astype(np.float32),
    }
    _, trained = tower.keras_model(inputs)
    served = tower.vectors[tower.position[rows]]
    np.testing.assert_allclose(np.asarray(trained), served, atol=1e-5)


def test_without_any_featured_training_track_no_track_is_placed_by_sound() -> None:
    playlists = [[make_track_id("p", i), make_track_id("p", i + 1)] for i in range(30)]
    interactions = make_interactions(playlists)
    stranger = make_track_id("stranger", 0)  # features, on no playlist
    n = interactions.n_tracks + 1
    features = np.zeros((n, WIDTH), dtype=np.float32)
    features[-1] = 1.0
    has_features = np.zeros(n, dtype=bool)
    has_features[-1] = True
    told: list[str] = []
    tower, _ = train_unified(interactions, features, has_features, SETTINGS, progress=told.append)
    assert not tower.knows(n - 1), stranger  # its sound part never learned anything
    assert any("no training track has audio features" in m for m in told)


def test_the_id_dropout_share_is_checked() -> None:
    interactions = make_interactions([[make_track_id("a", 0), make_track_id("a", 1)]])
    features = np.zeros((2, WIDTH), dtype=np.float32)
    with pytest.raises(ValueError, match="id_dropout"):
        train_unified(interactions, features, np.ones(2, dtype=bool), SETTINGS, id_dropout=1.0)


@pytest.fixture(scope="module")
def unified_bundle(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = TrainSettings(
        collab=WORLD_SETTINGS.collab,
        content_trees=WORLD_SETTINGS.content_trees,
        rerank=None,
        model="unified",
    )
    trained = train_from_directory(world.directory, settings)
    root = tmp_path_factory.mktemp("unified") / "model"
    save_bundle(trained.recommender, trained.scaler, root, training=trained.training)
    return root


def test_harmonya_trains_and_serves_the_unified_model_from_its_bundle(
    world: World, unified_bundle: Path
) -> None:
    recommender, manifest = load_bundle(unified_bundle)
    assert manifest["training"]["model"] == "unified"
    # Cold tracks (features, on no playlist) are in the collaborative space now.
    assert recommender.collab is not None
    cold_rows, _ = recommender.catalog.indices(world.cold[2])
    assert all(recommender.collab.knows(int(r)) for r in cold_rows)
    answer = recommender.recommend(world.groups[2][:8], 60, method="collaborative")
    found = {item.track_id for item in answer.items}
    assert found & set(world.cold[2])


def test_the_manifest_names_the_tracks_that_had_real_features(
    world: World, unified_bundle: Path
) -> None:
    recommender, manifest = load_bundle(unified_bundle)
    real = manifest["training"]["real_features"]
    with_features = {t for g in world.groups + world.cold for t in g} | {world.once_with_features}
    assert real["tracks"] == len(with_features)
    assert real["all_13_values_read"] == len(with_features)
    on_playlists = {t for playlist in world.playlists for t in playlist}
    assert real["on_training_playlists"] == len(with_features & on_playlists)
    # The list itself: the content index's rows, read back as track ids.
    assert recommender.content is not None
    listed = {recommender.catalog.track_ids[int(r)] for r in recommender.content.rows}
    assert listed == with_features
    assert recommender.content.imputed is not None
    assert recommender.content.imputed.shape == (len(with_features), 13)
    assert not recommender.content.imputed.any()  # the world's table has every value
    kinds = manifest["training"]["unified_tracks"]
    # An id takes two playlists (min_count); sound-only tracks are on fewer, cold ones on none.
    counts = Counter(t for playlist in world.playlists for t in set(playlist))
    assert kinds["sound_only"] == sum(counts[t] < 2 for t in with_features)
    assert kinds["sound_only"] > sum(map(len, world.cold))
    assert kinds["id_only"] == len(world.no_features)
    assert kinds["neither_left_out"] == 1  # once_without_features
    assert recommender.collab is not None
    placed = kinds["id_and_sound"] + kinds["id_only"] + kinds["sound_only"]
    assert placed == len(recommender.collab.rows)


def test_a_fresh_process_serves_the_saved_unified_model_unchanged(
    world: World, unified_bundle: Path
) -> None:
    seeds = world.groups[3][:6]
    recommender, _ = load_bundle(unified_bundle)
    here = [item.track_id for item in recommender.recommend(seeds, 40).items]
    command = [sys.executable, "-m", "recommender", "recommend", *seeds]
    done = subprocess.run(
        [*command, "--model", str(unified_bundle), "-k", "40", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    there = [item["track_id"] for item in json.loads(done.stdout)["items"]]
    assert there == here
    assert len(here) == 40 and not set(here) & set(seeds)


@pytest.mark.asyncio
async def test_the_bot_serves_the_unified_model_the_bundle_holds(
    world: World, unified_bundle: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    upgrade_database(url)
    service = RecommendService(HistoryStore.from_url(url), None)
    try:
        await service.load_model(unified_bundle)
        links = " ".join(f"https://open.spotify.com/track/{t}" for t in world.groups[5][:8])
        answer = await service.recommend(Requester(1), Source(tracks=links), 50)
    finally:
        service.close()
    found = [item.track_id for item in answer.result.items]
    assert len(found) == 50
    assert sum(world.group_of(t) == 5 for t in found) >= 45
    assert set(found) & set(world.cold[5])  # tracks on no playlist, placed by their sound


def test_an_unknown_model_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        TrainSettings(model="three-tower", rerank=RerankSettings())


@pytest.mark.parametrize("share", [1.0, -0.1, float("nan")])
def test_an_id_dropout_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="id_dropout"):
        TrainSettings(model="unified", id_dropout=share)
