"""The content tower: 13 Spotify audio features per track, neighbours in an Annoy index.

Features are scaled by :class:`FeatureScaler` into a 16-dimensional space where Euclidean
distance means "sounds alike": magnitudes are standardised (duration on a log scale), the key
is a point on the circle of fifths' cousin, the pitch circle (so B and C are neighbours), mode
is a sign and time signature a one-hot. Categorical parts carry a smaller weight because two
songs in different keys can still belong on one playlist.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from annoy import AnnoyIndex

from recommender.features import FEATURE_ORDER

log = logging.getLogger(__name__)

CONTINUOUS = (
    "danceability",
    "energy",
    "loudness",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "duration_ms",
)
TIME_SIGNATURES = (3, 4, 5)
CONTENT_DIM = len(CONTINUOUS) + 2 + 1 + len(TIME_SIGNATURES)
CONTENT_METRIC: Final = "euclidean"
POPULAR_CANDIDATES = 3000
MAX_DENSITY_SEEDS = 256
_COLUMN = {name: i for i, name in enumerate(FEATURE_ORDER)}


@dataclass(frozen=True)
class FeatureScaler:
    """Turns raw features (n, 13) in FEATURE_ORDER into content vectors (n, CONTENT_DIM)."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    categorical_weight: float = 0.5

    @classmethod
    def fit(cls, values: npt.NDArray[np.float32], categorical_weight: float = 0.5) -> FeatureScaler:
        """Learn means and spreads of the continuous features from ``values`` (n, 13)."""
        if not np.isfinite(np.asarray(values, dtype=np.float64)).all():
            raise ValueError("features hold NaN or infinite values; impute them first")
        continuous = _continuous(values)
        std = continuous.std(axis=0)
        std[std < 1e-9] = 1.0
        return cls(
            tuple(float(x) for x in continuous.mean(axis=0)),
            tuple(float(x) for x in std),
            categorical_weight,
        )

    @classmethod
    def neutral(cls) -> FeatureScaler:
        """The identity scaling, for a model trained without any audio features."""
        return cls((0.0,) * len(CONTINUOUS), (1.0,) * len(CONTINUOUS))

    def transform(self, values: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
        """Content vectors of ``values`` (n, 13), float32 (n, CONTENT_DIM)."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(FEATURE_ORDER):
            raise ValueError(f"features must have shape (n, {len(FEATURE_ORDER)})")
        if not np.isfinite(values).all():
            raise ValueError("features hold NaN or infinite values; impute them first")
        continuous = (_continuous(values) - np.asarray(self.mean)) / np.asarray(self.scale)
        angle = 2 * np.pi * values[:, _COLUMN["key"]] / 12.0
        key = np.stack([np.cos(angle), np.sin(angle)], axis=1)
        mode = (2 * (values[:, _COLUMN["mode"]] >= 0.5) - 1.0)[:, None]
        signature = values[:, _COLUMN["time_signature"]].round()[:, None]
        one_hot = (signature == np.asarray(TIME_SIGNATURES)[None, :]).astype(np.float64)
        categorical = np.concatenate([key, mode, one_hot], axis=1) * self.categorical_weight
        return np.concatenate([continuous, categorical], axis=1).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_order": list(FEATURE_ORDER),
            "continuous": list(CONTINUOUS),
            "time_signatures": list(TIME_SIGNATURES),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "categorical_weight": self.categorical_weight,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureScaler:
        if data.get("feature_order") != list(FEATURE_ORDER) or data.get("continuous") != list(
            CONTINUOUS
        ):
            raise ValueError("the scaler was saved for another feature order")
        mean, scale = data["mean"], data["scale"]
        if len(mean) != len(CONTINUOUS) or len(scale) != len(CONTINUOUS):
            raise ValueError("the scaler has the wrong number of features")
        return cls(tuple(mean), tuple(scale), float(data["categorical_weight"]))


def _continuous(values: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    columns = np.asarray(values, dtype=np.float64)[:, [_COLUMN[c] for c in CONTINUOUS]].copy()
    duration = CONTINUOUS.index("duration_ms")
    columns[:, duration] = np.log1p(np.maximum(columns[:, duration], 0.0) / 1000.0)
    return columns


class ContentTower:
    """Nearest neighbours in audio-feature space over the catalogue rows that have features.

    ``rows`` (m,) are catalogue indices of the tracks with features; ``vectors`` (m, D) their
    scaled features; ``prior`` (m,) float32 is log(1 + playlists holding the track) in the
    training data; the Annoy index item ``i`` is ``rows[i]``.

    Most tracks in the feature tables were never put on any playlist we trained on (opera,
    1960s flops, genre seeds...). Sound alone ranks them as high as anything, so playlist
    answers add ``prior_weight * prior``: "sounds like your playlist, and people do put it on
    playlists". ``similar`` stays pure sound.

    >>> tower = ContentTower.build(rows, vectors, n_trees=20)
    >>> neighbours, scores = tower.similar(catalog_row, top_k=10)
    """

    def __init__(
        self,
        rows: npt.NDArray[np.int64],
        vectors: npt.NDArray[np.float32],
        index: AnnoyIndex,
        n_catalog: int,
        prior: npt.NDArray[np.float32] | None = None,
        prior_weight: float = 2.0,
    ) -> None:
        self.rows = rows
        self.vectors = vectors
        self.index = index
        self.position = np.full(n_catalog, -1, dtype=np.int64)
        self.position[rows] = np.arange(len(rows))
        # A typical distance between neighbours sets the kernel width for set scores.
        self.bandwidth = 1.0
        self.prior = np.zeros(len(rows), dtype=np.float32) if prior is None else prior
        if self.prior.shape != (len(rows),):
            raise ValueError("the content prior must have one value per track")
        self.prior_weight = prior_weight
        # (len(rows), 13) bool, True where a table's median stood in for a missing value;
        # None in bundles made before it was kept.
        self.imputed: npt.NDArray[np.bool_] | None = None
        # Tracks most often on playlists: candidates a sound query alone would miss.
        order = np.argsort(-self.prior, kind="stable")
        self.popular_positions = order[:POPULAR_CANDIDATES][
            self.prior[order[:POPULAR_CANDIDATES]] > 0
        ]

    @classmethod
    def build(
        cls,
        rows: npt.NDArray[np.int64],
        vectors: npt.NDArray[np.float32],
        n_catalog: int,
        *,
        prior: npt.NDArray[np.float32] | None = None,
        prior_weight: float = 2.0,
        n_trees: int = 20,
        seed: int = 0,
    ) -> ContentTower:
        index = AnnoyIndex(vectors.shape[1], CONTENT_METRIC)
        index.set_seed(seed)
        for i, vector in enumerate(vectors):
            index.add_item(i, vector)
        index.build(n_trees, n_jobs=1)
        tower = cls(rows, vectors, index, n_catalog, prior, prior_weight)
        tower.bandwidth = tower.estimate_bandwidth(seed=seed)
        return tower

    def estimate_bandwidth(self, sample: int = 500, seed: int = 0) -> float:
        """Median distance from a track to its 10th neighbour, over a sample of tracks."""
        if len(self.rows) < 12:
            return 1.0
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(self.rows), size=min(sample, len(self.rows)), replace=False)
        distances = [
            self.index.get_nns_by_item(int(i), 11, include_distances=True)[1][-1] for i in picks
        ]
        return float(max(np.median(distances), 1e-3))

    def knows(self, row: int) -> bool:
        return 0 <= row < len(self.position) and self.position[row] >= 0

    def similar(
        self, row: int, top_k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The ``top_k`` catalogue rows that sound most like ``row`` (itself excluded).

        Returns rows (k,) int64 and similarities (k,) float32 in (0, 1], best first.
        """
        position = int(self.position[row])
        if position < 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        items, distances = self.index.get_nns_by_item(position, top_k + 1, include_distances=True)
        pairs = [(i, d) for i, d in zip(items, distances, strict=True) if i != position][:top_k]
        found = np.asarray([p[0] for p in pairs], dtype=np.int64)
        dist = np.asarray([p[1] for p in pairs], dtype=np.float64)
        return self.rows[found], np.exp(-((dist / self.bandwidth) ** 2) / 2).astype(np.float32)

    def recommend(
        self,
        seed_rows: npt.NDArray[np.int64],
        top_k: int,
        *,
        max_seed_queries: int = 24,
        per_seed: int = 20,
        allowed: npt.NDArray[np.bool_] | None = None,
        prior_weight: float | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Tracks that sound like the set ``seed_rows`` (catalogue rows, any shape (s,)).

        Candidates come from the centroid's neighbours, each (sampled) seed's neighbours and
        the tracks most often on playlists; each is scored by the log of a Gaussian kernel
        density over all seeds (so a playlist of two moods gets tracks near either mood, not
        between them) plus ``prior_weight * prior`` (the tower's own unless given). Seeds are
        excluded, and so is every item where ``allowed`` (m,) bool is False.
        Returns rows (<= top_k,) int64 and scores (<= top_k,) float32, best first.
        """
        positions = self.position[np.asarray(seed_rows, dtype=np.int64)]
        positions = np.unique(positions[positions >= 0])
        if len(positions) == 0 or top_k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        seeds = self.vectors[positions]
        depth = top_k + min(len(positions), MAX_DENSITY_SEEDS)
        candidates = set(self.index.get_nns_by_vector(seeds.mean(axis=0), depth))
        step = max(1, len(positions) // max_seed_queries)
        for position in positions[::step][:max_seed_queries]:
            candidates.update(self.index.get_nns_by_item(int(position), per_seed + 1))
        weight = self.prior_weight if prior_weight is None else prior_weight
        if weight > 0:
            candidates.update(self.popular_positions.tolist())
        candidates.difference_update(int(p) for p in positions)
        pool = np.fromiter(candidates, dtype=np.int64, count=len(candidates))
        if allowed is not None:
            pool = pool[allowed[pool]]
        if len(pool) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        # Thousands of seeds make a dense (candidates x seeds) matrix; an even sample of them
        # describes the playlist's sound as well at a fraction of the memory.
        step = max(1, -(-len(seeds) // MAX_DENSITY_SEEDS))
        density = self._density(self.vectors[pool], seeds[::step])
        scores = np.log(density + 1e-12) + weight * self.prior[pool]
        order = np.argsort(-scores, kind="stable")[:top_k]
        return self.rows[pool[order]], scores[order].astype(np.float32)

    def _density(
        self, points: npt.NDArray[np.float32], seeds: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float64]:
        squared = (
            (points.astype(np.float64) ** 2).sum(axis=1)[:, None]
            - 2.0 * points.astype(np.float64) @ seeds.T.astype(np.float64)
            + (seeds.astype(np.float64) ** 2).sum(axis=1)[None, :]
        )
        kernel = np.exp(-np.maximum(squared, 0.0) / (2 * self.bandwidth**2))
        return np.asarray(kernel.mean(axis=1))

    def save(self, directory: Path) -> dict[str, Any]:
        """Write ``content.ann`` and ``content.npz``; returns the manifest entry."""
        self.index.save(str(directory / "content.ann"))
        path = directory / "content.npz"
        if self.imputed is None:
            np.savez(path, rows=self.rows, vectors=self.vectors, prior=self.prior)
        else:
            np.savez(
                path, rows=self.rows, vectors=self.vectors, prior=self.prior, imputed=self.imputed
            )
        return {
            "index": "content.ann",
            "arrays": "content.npz",
            "metric": CONTENT_METRIC,
            "dimension": int(self.vectors.shape[1]),
            "items": len(self.rows),
            "n_trees": int(self.index.get_n_trees()),
            "bandwidth": self.bandwidth,
            "prior_weight": self.prior_weight,
        }

    @classmethod
    def load(cls, directory: Path, entry: dict[str, Any], n_catalog: int) -> ContentTower:
        with np.load(directory / entry["arrays"]) as arrays:
            rows = arrays["rows"].astype(np.int64)
            vectors = arrays["vectors"].astype(np.float32)
            prior = arrays["prior"].astype(np.float32)
            imputed = arrays["imputed"].astype(bool) if "imputed" in arrays else None
        if imputed is not None and imputed.shape[0] != len(rows):
            raise ValueError("content arrays do not match the manifest")
        if vectors.shape != (entry["items"], entry["dimension"]) or len(rows) != entry["items"]:
            raise ValueError("content arrays do not match the manifest")
        if len(rows) and (rows.min() < 0 or rows.max() >= n_catalog):
            raise ValueError("content rows fall outside the catalogue")
        index = AnnoyIndex(
            entry["dimension"], CONTENT_METRIC
        )  # the manifest check ensured they match
        index.load(str(directory / entry["index"]))  # memory-mapped, shared between processes
        if index.get_n_items() != entry["items"]:
            raise ValueError("the content index holds a different number of items")
        bandwidth, prior_weight = float(entry["bandwidth"]), float(entry["prior_weight"])
        if not (math.isfinite(bandwidth) and bandwidth > 0):
            raise ValueError("the content bandwidth must be a finite number > 0")
        if not (math.isfinite(prior_weight) and prior_weight >= 0) or not np.isfinite(prior).all():
            raise ValueError("the content prior must be finite")
        tower = cls(rows, vectors, index, n_catalog, prior, prior_weight)
        tower.bandwidth = bandwidth
        tower.imputed = imputed
        return tower
