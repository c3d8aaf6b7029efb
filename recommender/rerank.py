"""The second stage: a learned ranker re-orders the first candidates of the fusion.

The towers and the fusion find candidates; a LightGBM LambdaRank model, the kind of
second stage the RecSys Challenge 2018 winners used, orders the first ``candidates`` of
them from features no single tower sees together: each tower's score and rank, how often
the candidate shares playlists with the seeds (cosine co-occurrence), how many seeds share
its artist, its popularity, and how much of the playlist each tower knows.

The ranker learns on playlists kept out of the first stage's training, so the tower scores
it sees behave as they will for a member's playlist (see ``train.train_model``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recommender.data import Interactions

RANKER_FILE = "rerank.txt"
COOCCURRENCE_FILE = "cooccurrence.npz"
FEATURES = (
    "fused_rank",
    "collab_score",
    "collab_rank",
    "content_density",
    "content_rank",
    "title_rank",
    "popularity",
    "cooccurrence",
    "artist_share",
    "seeds",
    "collab_known_share",
    "candidate_known",
    "candidate_has_features",
)


@dataclass(frozen=True)
class RerankSettings:
    """How the ranker is taught: on how many held playlists, with how many trees."""

    candidates: int = 500
    playlists: int = 800
    trees: int = 300
    learning_rate: float = 0.05
    leaves: int = 31
    cuts: int = 3  # scenarios cut from each held playlist (more examples, same first model)
    seed: int = 0

    def __post_init__(self) -> None:
        counts = (self.candidates, self.playlists, self.trees, self.leaves, self.cuts)
        if not all(isinstance(n, int) and n > 0 for n in counts):
            raise ValueError("re-ranker sizes must be whole numbers > 0")
        rate = self.learning_rate
        if not (isinstance(rate, int | float) and math.isfinite(rate) and 0 < rate <= 1):
            raise ValueError("the re-ranker learning rate must be in (0, 1]")


class CoOccurrence:
    """Which playlists hold which catalogue rows, for "shares playlists with the seeds".

    ``indptr``/``indices`` are a (playlists x catalogue) CSR pattern; ``counts`` (n,) how
    many playlists hold each row.
    """

    def __init__(
        self, indptr: npt.NDArray[np.int64], indices: npt.NDArray[np.int32], n_catalog: int
    ) -> None:
        from scipy import sparse

        data = np.ones(len(indices), dtype=np.float32)
        self.by_playlist = sparse.csr_matrix(
            (data, indices, indptr), shape=(len(indptr) - 1, n_catalog)
        )
        self.by_track = self.by_playlist.T.tocsr()
        self.counts = np.asarray(self.by_playlist.sum(axis=0), dtype=np.float64).ravel()
        self.inverse_sqrt = 1.0 / np.sqrt(np.maximum(self.counts, 1.0))
        self._last: tuple[bytes, npt.NDArray[np.float64]] | None = None
        self.indptr = indptr
        self.indices = indices

    @classmethod
    def build(cls, interactions: Interactions, n_catalog: int) -> CoOccurrence:
        """Rows of ``interactions`` are its vocabulary indices, the first catalogue rows."""
        indptr = [0]
        indices: list[npt.NDArray[np.int32]] = []
        for row in range(interactions.n_playlists):
            unique = np.unique(interactions.playlist(row)).astype(np.int32)
            indices.append(unique)
            indptr.append(indptr[-1] + len(unique))
        flat = np.concatenate(indices) if indices else np.zeros(0, dtype=np.int32)
        return cls(np.asarray(indptr, dtype=np.int64), flat, n_catalog)

    def all_scores(self, seed_rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Cosine co-occurrence of every catalogue row with the seeds, summed over the seeds
        (n,); the seeds themselves score 0.

        A request asks twice (for candidates, then for their features), so the last answer
        is kept.
        """
        seed_rows = np.unique(np.asarray(seed_rows, dtype=np.int64))
        key = seed_rows.tobytes()
        kept = self._last
        if kept is not None and kept[0] == key:
            return kept[1]
        seeds = seed_rows[self.counts[seed_rows] > 0]
        scores = np.zeros(len(self.counts))
        if len(seeds):
            weights = self.by_track[seeds].T @ self.inverse_sqrt[seeds]
            playlists = np.flatnonzero(weights)
            summed = np.asarray(self.by_playlist[playlists].T @ weights[playlists]).ravel()
            scores = summed * self.inverse_sqrt
            scores[seeds] = 0.0
        self._last = (key, scores)
        return scores

    def scores(
        self, seed_rows: npt.NDArray[np.int64], rows: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """:meth:`all_scores` of ``rows``."""
        return self.all_scores(seed_rows)[rows]

    def top(self, seed_rows: npt.NDArray[np.int64], count: int) -> npt.NDArray[np.int64]:
        """The ``count`` rows that share most playlists with the seeds (cosine), best first."""
        scores = self.all_scores(seed_rows)
        found = np.flatnonzero(scores > 0)
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        if len(found) > count:
            found = found[np.argpartition(-scores[found], count - 1)[:count]]
        return found[np.lexsort((found, -scores[found]))].astype(np.int64)

    def save(self, directory: Path) -> dict[str, Any]:
        np.savez(directory / COOCCURRENCE_FILE, indptr=self.indptr, indices=self.indices)
        return {"arrays": COOCCURRENCE_FILE, "playlists": len(self.indptr) - 1}


class Reranker:
    """A LightGBM booster over :data:`FEATURES`, plus what its features are computed from."""

    def __init__(self, booster: Any, cooccurrence: CoOccurrence, settings: RerankSettings) -> None:
        self.booster = booster
        self.cooccurrence = cooccurrence
        self.settings = settings

    def order(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Positions of the candidates (rows of ``features``), best first."""
        scores = self.booster.predict(features, num_threads=1)
        return np.argsort(-scores, kind="stable").astype(np.int64)

    def save(self, directory: Path) -> dict[str, Any]:
        self.booster.save_model(str(directory / RANKER_FILE))
        return {
            "index": RANKER_FILE,
            "arrays": self.cooccurrence.save(directory)["arrays"],
            "features": list(FEATURES),
            "settings": asdict(self.settings),
        }

    @classmethod
    def load(cls, directory: Path, entry: dict[str, Any], n_catalog: int) -> Reranker:
        import lightgbm

        if entry.get("features") != list(FEATURES):
            raise ValueError("the re-ranker was trained on other features; retrain the model")
        with np.load(directory / entry["arrays"]) as arrays:
            indptr = arrays["indptr"].astype(np.int64)
            indices = arrays["indices"].astype(np.int32)
        if len(indices) and (indices.min() < 0 or indices.max() >= n_catalog):
            raise ValueError("co-occurrence rows fall outside the catalogue")
        try:
            booster = lightgbm.Booster(model_file=str(directory / entry["index"]))
        except lightgbm.basic.LightGBMError as error:
            raise ValueError(f"the re-ranker cannot be read: {error}") from error
        settings = RerankSettings(**entry["settings"])
        return cls(booster, CoOccurrence(indptr, indices, n_catalog), settings)


def artist_share(
    artists: list[str], seed_rows: npt.NDArray[np.int64], rows: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Share of the seeds by each candidate's artist (0 when the artist is unnamed)."""
    counts = Counter(artists[int(r)] for r in seed_rows if artists[int(r)])
    total = max(len(seed_rows), 1)
    return np.asarray(
        [counts.get(artists[int(r)], 0) / total if artists[int(r)] else 0.0 for r in rows]
    )


def fit_ranker(
    features: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int32],
    groups: list[int],
    settings: RerankSettings,
) -> Any:
    """Train the LambdaRank booster; ``groups`` are the candidate counts per playlist."""
    import lightgbm

    dataset = lightgbm.Dataset(
        features, label=labels, group=groups, feature_name=list(FEATURES), free_raw_data=True
    )
    parameters = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.leaves,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.9,
        "lambdarank_truncation_level": 100,
        "num_threads": 2,
        "seed": settings.seed,
        "deterministic": True,
        "verbosity": -1,
    }
    return lightgbm.train(parameters, dataset, num_boost_round=settings.trees)
