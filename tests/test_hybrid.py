"""Fusion on hand-made towers whose neighbours are obvious, then on a model trained end to end.

The hand-made recommender has three groups (0, 1, 2). Per group: six tracks both towers know,
one track only the collaborative tower knows (no audio features) and one "cold" track only the
content tower knows (features, never in a playlist). One more catalogue track is known to
neither. Collaborative vectors point along the group's axis; content vectors sit near
(10 * group, 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
import pytest
from annoy import AnnoyIndex
from conftest import World, make_track_id

from recommender.catalog import TrackCatalog
from recommender.collab import COLLAB_METRIC, CollabModel, CollabSettings
from recommender.content import ContentTower
from recommender.hybrid import (
    COLLABORATIVE,
    CONTENT,
    METHODS,
    POPULARITY,
    HybridRecommender,
    RecommendationResult,
    UnknownTrackError,
)
from recommender.train import TrainedModel

GROUPS = 3
NOT_IN_CATALOG = [make_track_id("stranger", i) for i in range(2)]


@dataclass(frozen=True)
class Hand:
    recommender: HybridRecommender
    both: list[list[str]]  # per group, six tracks both towers know
    collab_only: list[str]  # per group
    cold: list[str]  # per group
    neither: str

    def group(self, number: int) -> set[str]:
        return {*self.both[number], self.collab_only[number], self.cold[number]}

    def ids(self, result: RecommendationResult) -> list[str]:
        return [item.track_id for item in result.items]


def _angular_index(vectors: np.ndarray) -> AnnoyIndex:
    index = AnnoyIndex(vectors.shape[1], COLLAB_METRIC)
    for i, vector in enumerate(vectors):
        index.add_item(i, vector)
    index.build(10)
    return index


@pytest.fixture(scope="module")
def hand() -> Hand:
    both = [[make_track_id(f"both{g}t", i) for i in range(6)] for g in range(GROUPS)]
    collab_only = [make_track_id(f"nofeat{g}t", 0) for g in range(GROUPS)]
    cold = [make_track_id(f"cold{g}t", 0) for g in range(GROUPS)]
    neither = make_track_id("neither", 0)
    ids = [t for group in both for t in group] + collab_only + cold + [neither]
    catalog = TrackCatalog(ids, [f"Song {t}" for t in ids], [f"Band {t[:5]}" for t in ids])

    collab_vectors = np.zeros((6 * GROUPS + GROUPS, 4))
    for g in range(GROUPS):
        collab_vectors[6 * g : 6 * g + 6, g] = 1.0
        collab_vectors[6 * g : 6 * g + 6, 3] = 0.05 * np.arange(6)
        collab_vectors[6 * GROUPS + g, [g, 3]] = [1.0, 0.3]
    collab_vectors /= np.linalg.norm(collab_vectors, axis=1, keepdims=True)
    collab_vectors = collab_vectors.astype(np.float32)
    collab_rows = np.arange(len(collab_vectors))  # the first 21 catalogue rows
    collab = CollabModel(
        collab_rows,
        collab_vectors,
        collab_vectors,
        _angular_index(collab_vectors),
        len(catalog),
        CollabSettings(dimension=4, temperature=0.1),
    )

    content_points = []
    for g in range(GROUPS):
        content_points += [(10.0 * g + 0.2 * i, 0.1 * i) for i in range(6)]
    content_points += [(10.0 * g + 0.5, 0.25) for g in range(GROUPS)]
    content_rows = np.asarray([*range(6 * GROUPS), *(catalog.index_of(t) for t in cold)])
    content = ContentTower.build(
        content_rows, np.asarray(content_points, dtype=np.float32), len(catalog), n_trees=10
    )

    # Popularity knows playlist tracks only: the collaborative ones, round-robin over groups.
    popular = [catalog.index_of(t) for t in collab_only]
    popular += [6 * g + i for i in range(6) for g in range(GROUPS)]
    recommender = HybridRecommender(catalog, collab, content, np.asarray(popular))
    return Hand(recommender, both, collab_only, cold, neither)


def popular_ids(hand: Hand, k: int) -> list[str]:
    catalog = hand.recommender.catalog
    return [catalog.track_ids[row] for row in hand.recommender.popular_rows[:k]]


# --- the right answers ----------------------------------------------------------------------


def test_seeds_of_one_group_get_the_rest_of_that_group_first(hand: Hand) -> None:
    result = hand.recommender.recommend(hand.both[1][:3], top_k=3)

    assert set(hand.ids(result)) == set(hand.both[1][3:])
    assert all(COLLABORATIVE in item.sources for item in result.items)


def test_each_answer_is_explained_by_the_seed_of_its_own_group(hand: Hand) -> None:
    seeds = {0: hand.both[0][0], 2: hand.both[2][0]}

    result = hand.recommender.recommend(list(seeds.values()), top_k=8)

    explained = 0
    for item in result.items:
        for group, seed in seeds.items():
            if item.track_id in hand.group(group):
                assert item.because == seed, item.track_id
                explained += 1
    assert explained >= 6


def test_cold_track_as_a_seed_gets_its_sound_alikes_through_content(hand: Hand) -> None:
    hybrid = hand.recommender.recommend([hand.cold[2]], top_k=6)
    content = hand.recommender.recommend([hand.cold[2]], top_k=6, method=CONTENT)

    assert set(hand.ids(content)) == set(hand.both[2])
    best_through_content = next(item for item in hybrid.items if CONTENT in item.sources)
    assert best_through_content.track_id in hand.both[2]
    assert all(COLLABORATIVE not in item.sources for item in hybrid.items)
    assert (hybrid.collab_known, hybrid.content_known, hybrid.unknown) == (0, 1, [])
    assert hybrid.weights[COLLABORATIVE] == 0 and hybrid.weights[CONTENT] > 0


def test_cold_track_is_recommended_through_content(hand: Hand) -> None:
    result = hand.recommender.recommend(hand.both[0][:2], top_k=20)

    cold = [item for item in result.items if item.track_id == hand.cold[0]]
    assert hand.cold[0] not in popular_ids(hand, len(hand.recommender.popular_rows))
    assert len(cold) == 1 and cold[0].sources == (CONTENT,)


def test_collaborative_only_seed_is_known_not_unknown(hand: Hand) -> None:
    result = hand.recommender.recommend([hand.collab_only[1]], top_k=4)

    assert (result.collab_known, result.content_known, result.unknown) == (1, 0, [])
    assert set(hand.ids(result)) <= hand.group(1)


def test_tracks_no_tower_knows_are_counted_in_unknown_not_dropped(hand: Hand) -> None:
    seeds = [hand.both[0][0], hand.neither, NOT_IN_CATALOG[0]]

    result = hand.recommender.recommend(seeds, top_k=5)

    assert sorted(result.unknown) == sorted([hand.neither, NOT_IN_CATALOG[0]])
    assert (result.seeds, result.collab_known, result.content_known) == (3, 1, 1)
    assert len(result.items) == 5


def test_repeated_seeds_count_once(hand: Hand) -> None:
    seeds = [hand.both[0][0], hand.both[0][0], hand.both[0][1], NOT_IN_CATALOG[0]] * 2

    result = hand.recommender.recommend(seeds, top_k=3)

    assert (result.seeds, result.collab_known, result.unknown) == (3, 2, [NOT_IN_CATALOG[0]])


@pytest.mark.parametrize(
    "seeds",
    [[], NOT_IN_CATALOG, ["neither"]],
    ids=["empty", "not in catalogue", "in catalogue but no tower knows it"],
)
def test_playlist_with_nothing_known_gets_popular_tracks(hand: Hand, seeds: list[str]) -> None:
    seeds = [hand.neither if s == "neither" else s for s in seeds]

    result = hand.recommender.recommend(seeds, top_k=6)

    assert hand.ids(result) == popular_ids(hand, 6)
    assert all(item.sources == (POPULARITY,) for item in result.items)
    assert sorted(result.unknown) == sorted(seeds)


# --- what every answer must respect ---------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_seeds_are_never_recommended_back(hand: Hand, method: str) -> None:
    popular_seed = popular_ids(hand, 1)[0]
    seeds = [hand.both[0][0], hand.both[1][5], hand.cold[2], popular_seed]

    result = hand.recommender.recommend(seeds, top_k=10, method=method)

    assert not set(hand.ids(result)) & set(seeds)
    assert len(result.items) == 10


@pytest.mark.parametrize("method", METHODS)
def test_excluded_tracks_are_never_recommended(hand: Hand, method: str) -> None:
    excluded = [hand.both[0][1], hand.both[0][2], hand.cold[0], *popular_ids(hand, 3)]

    result = hand.recommender.recommend(
        [hand.both[0][0]], top_k=10, method=method, exclude=iter(excluded)
    )

    assert not set(hand.ids(result)) & set(excluded)
    assert len(result.items) == 10


@pytest.mark.parametrize("top_k", [1, 5, 20])
@pytest.mark.parametrize("method", METHODS)
def test_top_k_is_respected_with_distinct_answers(hand: Hand, method: str, top_k: int) -> None:
    result = hand.recommender.recommend([hand.both[2][2], hand.cold[1]], top_k, method=method)

    assert len(result.items) == top_k
    assert len(set(hand.ids(result))) == top_k


@pytest.mark.parametrize(
    "seeds",
    [["both0t0"], ["both0t0", "cold1t0"], ["nofeat2t0"], []],
    ids=["known", "mixed", "collaborative only", "empty"],
)
def test_every_answer_carries_a_score_and_its_sources(hand: Hand, seeds: list[str]) -> None:
    seeds = [make_track_id(label[:-1], int(label[-1])) for label in seeds]

    result = hand.recommender.recommend(seeds, top_k=22)

    scores = [item.score for item in result.items]
    assert all(isinstance(score, float) and np.isfinite(score) for score in scores)
    assert scores == sorted(scores, reverse=True)
    for item in result.items:
        assert item.sources and set(item.sources) <= {COLLABORATIVE, CONTENT, POPULARITY}
        if item.sources == (POPULARITY,) or len(seeds) < 2:
            assert item.because is None  # one seed explains nothing: it is the whole playlist
        else:
            assert item.score > 0 and item.because in seeds


def test_single_tower_methods_use_only_that_tower(hand: Hand) -> None:
    seeds = [hand.both[0][0], hand.cold[1]]

    collaborative = hand.recommender.recommend(seeds, 20, method=COLLABORATIVE)
    content = hand.recommender.recommend(seeds, 20, method=CONTENT)
    popular = hand.recommender.recommend(seeds, 5, method=POPULARITY)

    assert {s for item in collaborative.items for s in item.sources} <= {COLLABORATIVE, POPULARITY}
    assert {s for item in content.items for s in item.sources} <= {CONTENT, POPULARITY}
    assert hand.cold[0] in hand.ids(content) and hand.cold[0] not in hand.ids(collaborative)
    assert hand.ids(popular) == [t for t in popular_ids(hand, 6) if t not in seeds][:5]


def test_unknown_method_is_refused(hand: Hand) -> None:
    with pytest.raises(ValueError, match="unknown method"):
        hand.recommender.recommend([hand.both[0][0]], 5, method="random")


def test_result_converts_to_json_with_uris(hand: Hand) -> None:
    result = hand.recommender.recommend([hand.both[0][0], NOT_IN_CATALOG[0]], top_k=3)

    data = json.loads(json.dumps(result.to_dict()))

    assert [item["uri"] for item in data["items"]] == [item.uri for item in result.items]
    assert data["unknown"] == [NOT_IN_CATALOG[0]]
    assert all(isinstance(item["sources"], list) for item in data["items"])


# --- fusion weights -------------------------------------------------------------------------


def test_weights_are_zero_for_an_empty_playlist_and_for_a_tower_that_knows_nothing(
    hand: Hand,
) -> None:
    def towers(seeds: int, collab_known: int, content_known: int) -> tuple[float, float]:
        weights = hand.recommender.weights(seeds, collab_known, content_known)
        return weights[COLLABORATIVE], weights[CONTENT]

    assert towers(0, 0, 0) == (0, 0)
    assert towers(5, 0, 5)[0] == 0 and towers(5, 0, 5)[1] > 0
    assert towers(5, 5, 0)[0] > 0 and towers(5, 5, 0)[1] == 0


def test_collaborative_weight_grows_with_known_share_and_with_length(hand: Hand) -> None:
    weights = hand.recommender.weights

    by_share = [weights(10, known, 10)[COLLABORATIVE] for known in range(11)]
    by_length = [weights(n, n, n)[COLLABORATIVE] for n in range(1, 30)]

    assert by_share == sorted(by_share) and by_share[0] < by_share[-1]
    assert by_length == sorted(by_length) and by_length[0] < by_length[-1]
    assert all(0 <= w <= 1 for w in by_share + by_length)


def test_content_weight_grows_with_its_share_and_never_with_collaborative_certainty(
    hand: Hand,
) -> None:
    weights = hand.recommender.weights

    by_share = [weights(10, 5, known)[CONTENT] for known in range(11)]
    by_collab = [weights(10, known, 10)[CONTENT] for known in range(1, 11)]

    assert by_share == sorted(by_share) and by_share[0] < by_share[-1]
    assert by_collab == sorted(by_collab, reverse=True)


def test_reported_weights_are_the_weights_the_ranking_used(hand: Hand) -> None:
    known = [hand.collab_only[0], hand.collab_only[1]]

    plain = hand.recommender.recommend(known, top_k=5)
    with_strangers = hand.recommender.recommend(known + NOT_IN_CATALOG, top_k=5)

    # Either the strangers count towards the weights or they do not, but the reported weights
    # and the scores must tell the same story.
    same_weights = with_strangers.weights == pytest.approx(plain.weights)
    scores = [item.score for item in with_strangers.items]
    same_scores = scores == pytest.approx([item.score for item in plain.items])
    assert same_weights == same_scores, (plain.weights, with_strangers.weights)


def test_an_excluded_unknown_seed_is_reported_like_any_other_unknown_seed(hand: Hand) -> None:
    seeds = [hand.both[0][0], hand.neither, NOT_IN_CATALOG[0]]

    result = hand.recommender.recommend(seeds, 5, exclude=[hand.neither, NOT_IN_CATALOG[0]])

    assert sorted(result.unknown) == sorted([hand.neither, NOT_IN_CATALOG[0]])


# --- similar --------------------------------------------------------------------------------


def test_similar_lists_the_nearest_sounding_tracks_in_order(hand: Hand) -> None:
    result = hand.recommender.similar(hand.both[1][0], top_k=5)

    # From (10, 0): both1t1 at 0.22, both1t2 at 0.45, the cold one at 0.56, then t3 and t4.
    expected = [hand.both[1][1], hand.both[1][2], hand.cold[1], hand.both[1][3], hand.both[1][4]]
    assert hand.ids(result) == expected
    assert all(item.sources == (CONTENT,) for item in result.items)
    assert all(item.because == hand.both[1][0] for item in result.items)


def test_similar_of_a_track_outside_the_catalogue_raises_unknown_track(hand: Hand) -> None:
    with pytest.raises(UnknownTrackError, match=NOT_IN_CATALOG[0]) as caught:
        hand.recommender.similar(NOT_IN_CATALOG[0])

    assert caught.value.track_id == NOT_IN_CATALOG[0]
    assert "not in this model's catalogue" in str(caught.value)


def test_similar_of_a_track_without_features_raises_unknown_track(hand: Hand) -> None:
    with pytest.raises(UnknownTrackError):
        hand.recommender.similar(hand.collab_only[0])


# --- a model trained end to end on the synthetic MPD folder ---------------------------------


def test_trained_model_recommends_a_cold_seeds_own_group(
    world: World, trained_world: TrainedModel
) -> None:
    hybrid = trained_world.recommender.recommend([world.cold[3][0]], top_k=10)
    content = trained_world.recommender.recommend([world.cold[3][0]], top_k=10, method=CONTENT)

    assert [world.group_of(item.track_id) for item in content.items] == [3] * 10
    best_through_content = next(item for item in hybrid.items if CONTENT in item.sources)
    assert world.group_of(best_through_content.track_id) == 3


def test_trained_model_similar_stays_in_the_group(
    world: World, trained_world: TrainedModel
) -> None:
    result = trained_world.recommender.similar(world.groups[5][0], top_k=10)

    assert [world.group_of(item.track_id) for item in result.items] == [5] * 10


def test_feature_only_seed_beside_a_known_one_works_right_after_training(
    world: World, trained_world: TrainedModel
) -> None:
    # Regression: the collaborative lookups were sized to the playlist vocabulary, so a
    # catalogue row past it (a track with features but no playlist) raised IndexError.
    seeds = [world.groups[3][0], world.groups[3][1], world.cold[3][0]]

    result = trained_world.recommender.recommend(seeds, top_k=10)

    assert (result.collab_known, result.content_known) == (2, 3)
    assert len(result.items) == 10 and not {item.track_id for item in result.items} & set(seeds)
    assert any(COLLABORATIVE in item.sources for item in result.items)


def test_trained_model_counts_what_it_does_not_know(
    world: World, trained_world: TrainedModel
) -> None:
    seeds = [world.groups[0][0], world.no_features[0], world.once_with_features]
    seeds += [world.once_without_features, NOT_IN_CATALOG[0]]

    result = trained_world.recommender.recommend(seeds, top_k=10)

    assert sorted(result.unknown) == sorted([world.once_without_features, NOT_IN_CATALOG[0]])
    # once_with_features is in one playlist only: too rare for the collaborative tower.
    assert (result.seeds, result.collab_known, result.content_known) == (5, 2, 2)


def test_similar_lists_one_copy_of_a_recording_released_under_several_ids() -> None:
    ids = [make_track_id("eye", i) for i in range(6)]
    names = [
        "Eye of the Tiger",
        "Eye of the Tiger - Remastered",
        "Eye of the Tiger (Live)",
        "Burning Heart",
        "",
        "High on You",
    ]
    artists = ["Survivor", "Survivor", "Survivor", "Survivor", "", "Survivor"]
    catalog = TrackCatalog(ids, names, artists)
    # Tracks on a line: the copies of the query sit closest, then the others in order.
    vectors = np.asarray([[0.0], [0.1], [0.2], [1.0], [1.5], [2.0]], dtype=np.float32)
    vectors = np.hstack([vectors, np.zeros((6, 15), dtype=np.float32)])
    content = ContentTower.build(np.arange(6), vectors, len(catalog), n_trees=5)
    recommender = HybridRecommender(catalog, None, content, np.arange(6))

    result = recommender.similar(ids[0], top_k=3)

    # The untitled track cannot be told apart from anything, so it is kept.
    assert [item.track_id for item in result.items] == [ids[3], ids[4], ids[5]]


def test_cold_start_list_brings_in_sound_alikes_the_collaborative_tower_never_saw(
    hand: Hand,
) -> None:
    seeds = hand.both[1][:3]
    recommender = hand.recommender
    default = recommender.fusion
    try:
        recommender.fusion = replace(default, cold_weight=5.0)
        with_cold = recommender.recommend(seeds, top_k=3)
        recommender.fusion = replace(default, cold_weight=0.0)
        without = recommender.recommend(seeds, top_k=3)
    finally:
        recommender.fusion = default

    assert with_cold.items[0].track_id == hand.cold[1]
    assert CONTENT in with_cold.items[0].sources
    assert hand.cold[1] not in [item.track_id for item in without.items]


@pytest.mark.parametrize("seeds_per_group", [1, 3])
def test_a_short_answer_is_the_start_of_a_long_one(
    world: World, trained_world: TrainedModel, seeds_per_group: int
) -> None:
    # Regression: the towers were searched to a depth that grew with top_k, so the order of
    # the first answers changed with how many were asked for.
    seeds = [*world.groups[2][:seeds_per_group], *world.groups[6][:seeds_per_group]]
    recommender = trained_world.recommender

    short = recommender.recommend(seeds, top_k=10)
    long = recommender.recommend(seeds, top_k=150)

    assert [i.track_id for i in short.items] == [i.track_id for i in long.items[:10]]
    assert [i.score for i in short.items] == pytest.approx([i.score for i in long.items[:10]])
