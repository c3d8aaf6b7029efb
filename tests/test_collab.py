from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from conftest import BLOCK_SETTINGS, BLOCK_SIZE, Blocks, make_interactions, make_track_id

from recommender.collab import CollabModel, CollabSettings, TrainReport, make_examples, train_collab

A, B, C, D, E = (make_track_id(label, 0) for label in "abcde")


# --- what the tower learns from block-structured playlists ----------------------------------


@pytest.mark.parametrize("group_number", range(4))
def test_three_seeds_of_a_group_get_exactly_the_rest_of_their_group(
    blocks: Blocks, block_collab: CollabModel, group_number: int
) -> None:
    group = blocks.groups[group_number]
    for start in range(BLOCK_SIZE):
        seeds = [group[(start + i) % BLOCK_SIZE] for i in range(3)]

        rows, _ = block_collab.recommend(np.asarray(seeds), top_k=BLOCK_SIZE - 3)

        assert set(rows.tolist()) == set(group) - set(seeds), f"seeds {seeds}"


def test_one_seed_gets_its_own_group_first(blocks: Blocks, block_collab: CollabModel) -> None:
    for group in blocks.groups:
        for row in group:
            rows, _ = block_collab.recommend(np.asarray([row]), top_k=3)

            assert set(rows.tolist()) <= set(group) - {row}, f"seed {row}"


def test_scores_are_temperature_scaled_cosines_best_first(
    blocks: Blocks, block_collab: CollabModel
) -> None:
    seeds = np.asarray(blocks.groups[2][:2])

    rows, scores = block_collab.recommend(seeds, top_k=12)

    query = block_collab.query_vector(seeds)
    assert query is not None
    expected = (
        block_collab.vectors[block_collab.position[rows]] @ query / BLOCK_SETTINGS.temperature
    )
    assert scores.tolist() == pytest.approx(expected.tolist(), rel=1e-5)
    assert np.all(np.diff(scores) <= 0)
    assert not set(rows.tolist()) & set(seeds.tolist())
    assert float(np.linalg.norm(query)) == pytest.approx(1.0, rel=1e-5)


def test_loss_falls_over_the_epochs(block_training: tuple[CollabModel, TrainReport]) -> None:
    _, report = block_training

    assert len(report.losses) == BLOCK_SETTINGS.epochs
    assert report.losses[-1] < report.losses[0]
    assert report.items == 4 * BLOCK_SIZE


def test_a_track_in_one_playlist_only_is_not_in_the_tower(
    blocks: Blocks, block_collab: CollabModel
) -> None:
    assert not block_collab.knows(blocks.singleton)
    assert all(block_collab.knows(row) for group in blocks.groups for row in group)
    assert block_collab.recommend(np.asarray([blocks.singleton]), 5)[0].tolist() == []
    assert block_collab.query_vector(np.asarray([blocks.singleton])) is None


def test_no_room_means_no_answer(blocks: Blocks, block_collab: CollabModel) -> None:
    assert block_collab.recommend(np.asarray(blocks.groups[0][:2]), top_k=0)[0].tolist() == []


def test_similar_is_a_one_track_playlist(blocks: Blocks, block_collab: CollabModel) -> None:
    row = blocks.groups[1][4]

    rows, scores = block_collab.similar(row, 5)
    same_rows, same_scores = block_collab.recommend(np.asarray([row]), 5)

    assert rows.tolist() == same_rows.tolist()
    assert scores.tolist() == pytest.approx(same_scores.tolist())


def test_numpy_serving_matches_the_keras_model(blocks: Blocks, block_collab: CollabModel) -> None:
    seeds = np.asarray([blocks.groups[0][0], blocks.groups[0][3], blocks.groups[1][5]])
    items = block_collab.position[seeds]
    keras_model = block_collab.keras_model

    query, vectors = keras_model(
        {"context": (items + 1)[None, :].astype(np.int32), "target": items.astype(np.int32)},
        training=False,
    )

    assert np.asarray(query)[0] == pytest.approx(block_collab.query_vector(seeds), abs=1e-5)
    assert np.asarray(vectors) == pytest.approx(block_collab.vectors[items], abs=1e-5)


# --- training examples ----------------------------------------------------------------------


def test_examples_take_each_known_track_once_with_context_from_its_own_playlist() -> None:
    interactions = make_interactions([[A, B, C], [C, D], [E]])
    item_of = np.asarray([0, 1, 2, -1, 3])  # D is not trained

    contexts, targets = make_examples(interactions, item_of, 16, np.random.default_rng(0))

    # [C, D] has one known track and [E] one track: neither has a context to learn from.
    assert sorted(targets.tolist()) == [0, 1, 2]
    assert contexts.shape == (3, 16) and contexts.dtype == np.int32 and targets.dtype == np.int32
    for context, target in zip(contexts, targets, strict=True):
        assert set((context - 1).tolist()) == {0, 1, 2} - {int(target)}


def test_training_needs_tracks_that_occur_twice() -> None:
    interactions = make_interactions([[A, B], [C, D]])

    with pytest.raises(ValueError, match="too few tracks"):
        train_collab(interactions, CollabSettings(dimension=8, epochs=1))


def test_training_refuses_a_catalogue_smaller_than_the_vocabulary(blocks: Blocks) -> None:
    settings = CollabSettings(dimension=8, epochs=1, batch_size=256)

    with pytest.raises(ValueError, match="smaller than the playlist vocabulary"):
        train_collab(blocks.interactions, settings, n_catalog=blocks.interactions.n_tracks - 1)


# --- saving ---------------------------------------------------------------------------------


def test_save_and_load_answer_the_same_without_keras(
    tmp_path: Path, blocks: Blocks, block_collab: CollabModel
) -> None:
    entry = block_collab.save(tmp_path)
    n_catalog = blocks.interactions.n_tracks + 3  # the catalogue may hold feature-only tracks

    loaded = CollabModel.load(tmp_path, entry, n_catalog)

    assert (tmp_path / "collab.keras").is_file()
    assert loaded.keras_model is None
    assert entry["dimension"] == BLOCK_SETTINGS.dimension and entry["metric"] == "angular"
    assert loaded.settings == BLOCK_SETTINGS and entry["settings"] == asdict(BLOCK_SETTINGS)
    assert np.array_equal(loaded.contexts, block_collab.contexts)
    # A seed the tower does not know (a feature-only row) changes nothing.
    cases = [([blocks.groups[0][0]], []), (blocks.groups[3][:4], []), ([5], [n_catalog - 1])]
    for known, extra in cases:
        expected_rows, expected_scores = block_collab.recommend(np.asarray(known), 10)
        rows, scores = loaded.recommend(np.asarray(known + extra), 10)
        assert rows.tolist() == expected_rows.tolist()
        assert scores.tolist() == pytest.approx(expected_scores.tolist())


def test_load_ignores_training_options_an_older_bundle_still_names(
    tmp_path: Path, blocks: Blocks, block_collab: CollabModel
) -> None:
    entry = block_collab.save(tmp_path)
    older = {**entry, "settings": {**entry["settings"], "variable_context": False}}
    loaded = CollabModel.load(tmp_path, older, blocks.interactions.n_tracks)
    assert loaded.settings == BLOCK_SETTINGS


def test_load_refuses_arrays_that_disagree_with_the_manifest(
    tmp_path: Path, blocks: Blocks, block_collab: CollabModel
) -> None:
    entry = block_collab.save(tmp_path)
    n_catalog = blocks.interactions.n_tracks

    with pytest.raises(ValueError, match="do not match the manifest"):
        CollabModel.load(tmp_path, {**entry, "dimension": entry["dimension"] * 2}, n_catalog)
    with pytest.raises(ValueError, match="outside the catalogue"):
        CollabModel.load(tmp_path, entry, n_catalog=10)
