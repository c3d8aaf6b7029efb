"""The second stage: co-occurrence features, the learned re-ordering, and its bundle part."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import WORLD_SETTINGS, World, make_interactions, make_track_id

from recommender.bundle import load_bundle, save_bundle
from recommender.hybrid import COLLABORATIVE, COOCCURRENCE
from recommender.rerank import FEATURES, CoOccurrence, RerankSettings, artist_share
from recommender.train import TrainedModel, TrainSettings, train_from_directory

SMALL = RerankSettings(playlists=60, candidates=50, trees=20)


@pytest.fixture(scope="module")
def reranked(world: World) -> TrainedModel:
    settings = TrainSettings(
        collab=WORLD_SETTINGS.collab,
        content_trees=WORLD_SETTINGS.content_trees,
        rerank=SMALL,
        model="two-tower",
    )
    return train_from_directory(world.directory, settings)


def test_cooccurrence_is_the_cosine_sum_over_seeds() -> None:
    a, b, c, d = (make_track_id("t", i) for i in range(4))
    interactions = make_interactions([[a, b], [a, b, c], [a, d], [c, d]])
    cooccurrence = CoOccurrence.build(interactions, n_catalog=5)
    # counts: a 3, b 2, c 2, d 2. With seeds {a}: b shares 2 playlists with a -> 2/sqrt(3*2);
    # c shares 1 -> 1/sqrt(3*2); d shares 1 -> 1/sqrt(3*2); row 4 is in no playlist -> 0.
    scores = cooccurrence.scores(np.asarray([0]), np.asarray([1, 2, 3, 4]))
    assert scores == pytest.approx([2 / np.sqrt(6), 1 / np.sqrt(6), 1 / np.sqrt(6), 0.0])
    # Seeds {a, d}: c gets 1/sqrt(6) from a and 1/sqrt(2*2) from d.
    both = cooccurrence.scores(np.asarray([0, 3]), np.asarray([2]))
    assert both == pytest.approx([1 / np.sqrt(6) + 1 / 2])
    assert cooccurrence.scores(np.asarray([4]), np.asarray([0, 1])) == pytest.approx([0, 0])


def test_cooccurrence_top_ranks_every_row_by_that_score() -> None:
    a, b, c, d = (make_track_id("t", i) for i in range(4))
    interactions = make_interactions([[a, b], [a, b, c], [a, d], [c, d]])
    cooccurrence = CoOccurrence.build(interactions, n_catalog=5)
    # Seeds {a}: b 2/sqrt(6) first, then c and d tied at 1/sqrt(6) (lower row first); the seed
    # itself and row 4 (on no playlist) never come back.
    assert cooccurrence.top(np.asarray([0]), 10).tolist() == [1, 2, 3]
    assert cooccurrence.top(np.asarray([0]), 1).tolist() == [1]
    assert cooccurrence.top(np.asarray([4]), 10).tolist() == []


def test_artist_share_counts_seeds_by_the_same_artist() -> None:
    artists = ["x", "x", "y", "", "x"]
    share = artist_share(artists, np.asarray([0, 1, 2, 3]), np.asarray([4, 2, 3]))
    assert share == pytest.approx([2 / 4, 1 / 4, 0.0])  # an unnamed artist matches nothing


def test_features_mark_what_does_not_apply(reranked: TrainedModel, world: World) -> None:
    recommender = reranked.recommender
    assert recommender.reranker is not None and recommender.collab is not None
    seeds, _ = recommender.catalog.indices(world.playlists[0][:5])
    rows, table = recommender.rerank_candidates(seeds)
    assert table.shape == (len(rows), len(FEATURES)) == (SMALL.candidates, len(FEATURES))
    column = {name: n for n, name in enumerate(FEATURES)}
    unknown = recommender.collab.position[rows] < 0
    assert np.isnan(table[unknown, column["collab_score"]]).all()
    assert not np.isnan(table[~unknown, column["collab_score"]]).any()
    assert list(table[:, column["fused_rank"]]) == list(range(len(rows)))
    assert not set(rows.tolist()) & set(seeds.tolist())


def test_the_ranker_reorders_the_fusions_first_candidates_only(
    reranked: TrainedModel, world: World
) -> None:
    recommender = reranked.recommender
    seeds = world.playlists[9][:5]
    fused = [i.track_id for i in recommender.recommend(seeds, 80, rerank=False).items]
    ranked = [i.track_id for i in recommender.recommend(seeds, 80).items]
    head = SMALL.candidates
    assert set(ranked[:head]) == set(fused[:head])
    assert ranked[head:] == fused[head:]
    # The ranker learned that a seed's group-mates belong: the top ten stay in its group.
    group = world.group_of(seeds[0])
    assert all(world.group_of(t) == group for t in ranked[:10])
    assert reranked.training["rerank"]["playlists"] > 0


def test_too_few_playlists_train_without_a_ranker(world: World) -> None:
    settings = TrainSettings(
        collab=WORLD_SETTINGS.collab,
        content_trees=WORLD_SETTINGS.content_trees,
        rerank=RerankSettings(playlists=500),
        model="two-tower",
    )
    messages: list[str] = []
    trained = train_from_directory(world.directory, settings, progress=messages.append)
    assert trained.recommender.reranker is None
    assert any("too few playlists to teach a re-ranker" in m for m in messages)


@pytest.mark.parametrize(
    "bad", [{"candidates": 0}, {"trees": -1}, {"learning_rate": 0.0}, {"learning_rate": 2.0}]
)
def test_rerank_settings_are_checked(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="re-ranker"):
        RerankSettings(**bad)  # type: ignore[arg-type]


def test_the_ranker_survives_the_bundle_in_a_fresh_process(
    reranked: TrainedModel, world: World, tmp_path: Path
) -> None:
    root = tmp_path / "model"
    save_bundle(reranked.recommender, reranked.scaler, root, training=reranked.training)
    _, manifest = load_bundle(root)
    assert manifest["rerank"]["features"] == list(FEATURES)
    seeds = world.playlists[20][:5]
    expected = [i.track_id for i in reranked.recommender.recommend(seeds, 30).items]
    script = (
        "import json, sys; from pathlib import Path; from recommender.bundle import load_bundle; "
        "r, _ = load_bundle(Path(sys.argv[1])); "
        "print(json.dumps([i.track_id for i in r.recommend(sys.argv[2:], 30).items]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(root), *seeds],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(done.stdout) == expected


def test_tracks_found_by_shared_playlists_alone_are_labelled_so(
    reranked: TrainedModel, world: World
) -> None:
    # On one playlist, no audio features: neither tower knows it, its playlist does.
    answer = reranked.recommender.recommend([world.once_without_features], 20)
    labels = [item.sources for item in answer.items]
    assert any(COOCCURRENCE in s for s in labels), labels
    assert not any(COLLABORATIVE in s for s in labels)  # that tower knows no seed
    mates = {t for p in world.playlists if world.once_without_features in p for t in p}
    assert all(i.track_id in mates for i in answer.items if COOCCURRENCE in i.sources)
