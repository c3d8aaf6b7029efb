from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from recommender.content import CONTENT_DIM, CONTINUOUS, ContentTower, FeatureScaler
from recommender.features import FEATURE_ORDER

BASE = {
    "danceability": 0.5,
    "energy": 0.6,
    "key": 0,
    "loudness": -6.0,
    "mode": 1,
    "speechiness": 0.05,
    "acousticness": 0.1,
    "instrumentalness": 0.0,
    "liveness": 0.12,
    "valence": 0.4,
    "tempo": 120.0,
    "duration_ms": 200_000,
    "time_signature": 4,
}
MODE = len(CONTINUOUS) + 2  # column of the mode sign in a content vector
SIGNATURES = slice(len(CONTINUOUS) + 3, CONTENT_DIM)


def raw(**overrides: float) -> list[float]:
    return [float(overrides.get(name, BASE[name])) for name in FEATURE_ORDER]


def matrix(*rows: list[float]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))


def line_tower(positions: list[float], rows: list[int], n_catalog: int) -> ContentTower:
    """Tracks on a line: item i sits at x = positions[i] and is catalogue row rows[i]."""
    vectors = np.zeros((len(positions), 3), dtype=np.float32)
    vectors[:, 0] = positions
    return ContentTower.build(np.asarray(rows), vectors, n_catalog, n_trees=10)


# --- FeatureScaler --------------------------------------------------------------------------


def test_key_is_circular_so_b_is_as_near_to_c_as_c_sharp_is() -> None:
    keys = matrix(*(raw(key=k) for k in range(12)))
    vectors = FeatureScaler.fit(keys).transform(keys)

    assert distance(vectors[0], vectors[11]) == pytest.approx(distance(vectors[0], vectors[1]))
    assert distance(vectors[0], vectors[11]) < distance(vectors[0], vectors[6])


def test_content_tower_finds_both_neighbouring_keys_of_c() -> None:
    keys = matrix(*(raw(key=k) for k in range(12)))
    vectors = FeatureScaler.fit(keys).transform(keys)
    tower = ContentTower.build(np.arange(12), vectors, 12, n_trees=10)

    rows, _ = tower.similar(0, top_k=2)

    assert set(rows.tolist()) == {1, 11}


def test_transform_standardises_continuous_features_of_the_fitted_data() -> None:
    rng = np.random.default_rng(0)
    values = matrix(
        *(raw(danceability=rng.uniform(), tempo=rng.uniform(60, 200)) for _ in range(50))
    )

    vectors = FeatureScaler.fit(values).transform(values)

    varying = [CONTINUOUS.index("danceability"), CONTINUOUS.index("tempo")]
    assert vectors.shape == (50, CONTENT_DIM) and vectors.dtype == np.float32
    assert vectors[:, varying].mean(axis=0) == pytest.approx([0, 0], abs=1e-5)
    assert vectors[:, varying].std(axis=0) == pytest.approx([1, 1], rel=1e-4)


def test_a_constant_feature_does_not_divide_by_zero() -> None:
    values = matrix(raw(), raw(), raw())

    vectors = FeatureScaler.fit(values).transform(values)

    assert np.isfinite(vectors).all()
    assert vectors[:, : len(CONTINUOUS)] == pytest.approx(np.zeros((3, len(CONTINUOUS))))


def test_duration_counts_by_ratio_not_by_milliseconds() -> None:
    minutes = [2, 4, 8]
    values = matrix(*(raw(duration_ms=m * 60_000, danceability=m / 10) for m in minutes))
    scaler = FeatureScaler(mean=(0.0,) * len(CONTINUOUS), scale=(1.0,) * len(CONTINUOUS))

    column = scaler.transform(values)[:, CONTINUOUS.index("duration_ms")]

    assert column[1] - column[0] == pytest.approx(column[2] - column[1], rel=0.01)


def test_mode_is_a_sign_and_time_signature_a_weighted_one_hot() -> None:
    values = matrix(
        raw(mode=1, time_signature=3), raw(mode=0, time_signature=3), raw(time_signature=7)
    )
    scaler = FeatureScaler.fit(values, categorical_weight=0.5)

    vectors = scaler.transform(values)

    difference = vectors[0] - vectors[1]
    assert np.flatnonzero(difference).tolist() == [MODE]
    assert difference[MODE] == pytest.approx(1.0)  # +0.5 against -0.5
    assert vectors[0, SIGNATURES].tolist() == pytest.approx([0.5, 0.0, 0.0])
    assert vectors[2, SIGNATURES].tolist() == [0.0, 0.0, 0.0]  # 7/4 is none of 3, 4, 5


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_transform_refuses_nan_and_infinite_features(bad: float) -> None:
    scaler = FeatureScaler.fit(matrix(raw(), raw(energy=0.9)))

    with pytest.raises(ValueError, match="NaN or infinite"):
        scaler.transform(matrix(raw(), raw(energy=bad)))


def test_fit_refuses_nan_features_instead_of_learning_a_nan_mean() -> None:
    with pytest.raises(ValueError, match="NaN"):
        FeatureScaler.fit(matrix(raw(), raw(energy=math.nan)))


@pytest.mark.parametrize("shape", [(2, len(FEATURE_ORDER) - 1), (len(FEATURE_ORDER),)])
def test_transform_refuses_a_wrong_shape(shape: tuple[int, ...]) -> None:
    scaler = FeatureScaler.fit(matrix(raw(), raw(energy=0.9)))

    with pytest.raises(ValueError, match="shape"):
        scaler.transform(np.zeros(shape))


def test_scaler_round_trips_through_its_dict() -> None:
    scaler = FeatureScaler.fit(matrix(raw(), raw(energy=0.9, tempo=90)), categorical_weight=0.3)

    assert FeatureScaler.from_dict(scaler.to_dict()) == scaler


def test_scaler_from_another_feature_layout_is_refused() -> None:
    data = FeatureScaler.fit(matrix(raw(), raw(energy=0.9))).to_dict()
    reordered = {**data, "feature_order": list(reversed(FEATURE_ORDER))}
    short = {**data, "mean": data["mean"][:-1]}

    with pytest.raises(ValueError, match="feature order"):
        FeatureScaler.from_dict(reordered)
    with pytest.raises(ValueError, match="number of features"):
        FeatureScaler.from_dict(short)


# --- ContentTower ---------------------------------------------------------------------------


def test_similar_returns_exact_neighbours_on_a_line_as_catalogue_rows() -> None:
    # Items at x = 0, 1, 3, 6, 10, 15 are catalogue rows 7, 5, 3, 1, 0, 2; rows 4 and 6 have
    # no features.
    tower = line_tower([0, 1, 3, 6, 10, 15], rows=[7, 5, 3, 1, 0, 2], n_catalog=8)

    rows, scores = tower.similar(1, top_k=5)  # the track at x = 6

    assert rows.tolist() == [3, 0, 5, 7, 2]  # x = 3, 10, 1, 0, 15
    # Fewer than 12 tracks: the kernel width stays 1, so the score is exp(-d^2 / 2).
    assert scores.tolist() == pytest.approx([math.exp(-(d**2) / 2) for d in (3, 4, 5, 6, 9)])


def test_similar_never_returns_the_track_itself_and_knows_only_rows_with_features() -> None:
    tower = line_tower([0, 1, 3], rows=[2, 0, 1], n_catalog=4)

    rows, _ = tower.similar(0, top_k=10)

    assert rows.tolist() == [2, 1]
    assert [tower.knows(row) for row in (0, 1, 2, 3, -1, 4)] == [True] * 3 + [False] * 3
    assert tower.similar(3, top_k=5)[0].tolist() == []


def two_moods() -> tuple[ContentTower, list[int], list[int], list[int]]:
    """15 tracks near (0, 0), 15 near (10, 0) and 4 half way, at (5, 0)."""
    grid = [(0.1 * i, 0.1 * j) for i in range(5) for j in range(3)]
    points = grid + [(10 + x, y) for x, y in grid] + [(5.0, 0.1 * j) for j in range(4)]
    vectors = np.asarray(points, dtype=np.float32)
    tower = ContentTower.build(np.arange(len(points)), vectors, len(points), n_trees=10)
    return tower, list(range(15)), list(range(15, 30)), list(range(30, 34))


def test_set_query_of_a_two_mood_playlist_returns_tracks_of_either_mood_not_between() -> None:
    tower, left, right, middle = two_moods()
    seeds = [left[0], left[7], left[14], right[0], right[7], right[14]]

    rows, scores = tower.recommend(np.asarray(seeds), top_k=8)

    centroid = tower.vectors[seeds].mean(axis=0)
    assert set(tower.index.get_nns_by_vector(centroid, 4)) == set(middle)  # the trap
    assert set(rows.tolist()) <= (set(left) | set(right)) - set(seeds)
    assert set(rows.tolist()) & set(left) and set(rows.tolist()) & set(right)
    assert len(rows) == 8 and np.all(np.diff(scores) <= 0)


def test_set_query_of_one_mood_stays_in_that_mood_and_excludes_seeds() -> None:
    tower, left, _, _ = two_moods()
    seeds = left[:3]

    rows, _ = tower.recommend(np.asarray(seeds), top_k=12)

    assert set(rows.tolist()) == set(left) - set(seeds)


def test_set_query_with_no_known_seed_or_no_room_is_empty() -> None:
    tower = line_tower([0, 1, 3], rows=[0, 1, 2], n_catalog=5)

    assert tower.recommend(np.asarray([3, 4]), top_k=5)[0].tolist() == []
    assert tower.recommend(np.asarray([0]), top_k=0)[0].tolist() == []


def test_tower_round_trips_through_save_and_load(tmp_path: Path) -> None:
    tower, left, right, _ = two_moods()
    entry = tower.save(tmp_path)

    loaded = ContentTower.load(tmp_path, entry, n_catalog=34)

    seeds = np.asarray([left[0], right[0]])
    assert loaded.bandwidth == pytest.approx(tower.bandwidth)
    assert loaded.recommend(seeds, 10)[0].tolist() == tower.recommend(seeds, 10)[0].tolist()
    assert loaded.similar(left[3], 5)[0].tolist() == tower.similar(left[3], 5)[0].tolist()


def test_load_refuses_arrays_that_disagree_with_the_manifest(tmp_path: Path) -> None:
    tower, _, _, _ = two_moods()
    entry = tower.save(tmp_path)

    with pytest.raises(ValueError, match="do not match the manifest"):
        ContentTower.load(tmp_path, {**entry, "items": entry["items"] - 1}, n_catalog=34)
    with pytest.raises(ValueError, match="outside the catalogue"):
        ContentTower.load(tmp_path, entry, n_catalog=20)
