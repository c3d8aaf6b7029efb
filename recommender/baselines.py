"""The methods a team would reach for instead of HarmonYa, behind one small interface.

Each method is fitted on the training interactions and then asked for ``k`` track ids for
one held-out playlist. Most popular and item-to-item co-occurrence neighbours are plain
counting; ALS and BPR come from ``implicit``, the library practitioners use for implicit
feedback. ``implicit`` and SciPy are evaluation dependencies (``pip install -e ".[eval]"``),
imported only when a baseline is built.

None of these can recommend a track absent from training, and none uses a title: a playlist
given no known track gets the most popular ones.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from recommender.data import Interactions
from recommender.split import HeldOut

log = logging.getLogger(__name__)


class Method(Protocol):
    name: str

    def fit(self, train: Interactions) -> None: ...

    def recommend(self, playlist: HeldOut, k: int) -> list[str]:
        """``k`` track ids for ``playlist``, best first, none of its seeds."""
        ...


class MissingDependencyError(RuntimeError):
    """A baseline's library is not installed."""


def _implicit(module: str) -> Any:
    try:
        return importlib.import_module(f"implicit.{module}")
    except ImportError as error:  # pragma: no cover - depends on the install
        raise MissingDependencyError(
            'the baselines need SciPy and implicit: pip install -e ".[eval]"'
        ) from error


def _scipy_sparse() -> Any:
    try:
        import scipy.sparse
    except ImportError as error:  # pragma: no cover - depends on the install
        raise MissingDependencyError(
            'the baselines need SciPy and implicit: pip install -e ".[eval]"'
        ) from error
    return scipy.sparse


def playlist_matrix(train: Interactions) -> Any:
    """Playlists x tracks, 1.0 where a playlist holds a track (repeats count once), CSR."""
    sparse = _scipy_sparse()
    lengths = np.diff(train.indptr)
    rows = np.repeat(np.arange(train.n_playlists), lengths)
    matrix = sparse.csr_matrix(
        (np.ones(len(train.tracks), dtype=np.float32), (rows, train.tracks)),
        shape=(train.n_playlists, train.n_tracks),
    )
    matrix.data[:] = 1.0  # duplicates were summed
    return matrix


@dataclass
class _Vocabulary:
    """Track id <-> column, popularity order, shared by the counting baselines."""

    ids: list[str] = field(default_factory=list)
    column: dict[str, int] = field(default_factory=dict)
    popular: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    rank: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @classmethod
    def of(cls, train: Interactions) -> _Vocabulary:
        counts = train.counts()
        popular = np.lexsort((np.arange(train.n_tracks), -counts)).astype(np.int64)
        rank = np.empty(len(popular), dtype=np.int64)
        rank[popular] = np.arange(len(popular))
        column = {t: i for i, t in enumerate(train.track_ids)}
        return cls(list(train.track_ids), column, popular, rank)

    def columns(self, playlist: HeldOut) -> npt.NDArray[np.int64]:
        found = [self.column[t] for t in playlist.seeds if t in self.column]
        return np.asarray(sorted(set(found)), dtype=np.int64)

    def top(
        self, scores: npt.NDArray[np.float64] | None, seeds: npt.NDArray[np.int64], k: int
    ) -> list[str]:
        """The ``k`` best columns by ``scores`` (ties by popularity), popular ones after."""
        banned = set(seeds.tolist())
        chosen: list[int] = []
        if scores is not None:
            positive = np.flatnonzero(scores > 0)
            if len(positive) > k + len(banned):
                keep = np.argpartition(-scores[positive], k + len(banned))[: k + len(banned)]
                positive = positive[keep]
            rank = self.rank[positive]
            order = np.lexsort((rank, -scores[positive]))
            chosen = [int(c) for c in positive[order] if int(c) not in banned][:k]
        taken = set(chosen) | banned
        for column in self.popular.tolist():
            if len(chosen) >= k:
                break
            if column not in taken:
                chosen.append(column)
        return [self.ids[c] for c in chosen]


class MostPopular:
    """The tracks on the most training playlists, the same list for everyone."""

    name = "most popular"

    def __init__(self) -> None:
        self.vocabulary = _Vocabulary()

    def fit(self, train: Interactions) -> None:
        self.vocabulary = _Vocabulary.of(train)

    def recommend(self, playlist: HeldOut, k: int) -> list[str]:
        return self.vocabulary.top(None, self.vocabulary.columns(playlist), k)


class ItemKNN:
    """Item-to-item neighbours by cosine of co-occurrence, scores summed over the seeds.

    Uses ``implicit``'s ``CosineRecommender`` (``neighbours`` nearest items kept per item).
    """

    name = "item-kNN"

    def __init__(self, neighbours: int = 200) -> None:
        self.neighbours = neighbours
        self.vocabulary = _Vocabulary()
        self.model: Any = None

    def fit(self, train: Interactions) -> None:
        self.vocabulary = _Vocabulary.of(train)
        self.model = _implicit("nearest_neighbours").CosineRecommender(K=self.neighbours)
        with warnings.catch_warnings():
            # It converts its own transpose and then warns about the format it made.
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            self.model.fit(playlist_matrix(train), show_progress=False)

    def scores(self, seeds: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        # The similarity matrix is symmetric: a row of seeds times it scores every item.
        similarity = self.model.similarity
        return np.asarray(similarity[seeds].sum(axis=0), dtype=np.float64).ravel()

    def recommend(self, playlist: HeldOut, k: int) -> list[str]:
        seeds = self.vocabulary.columns(playlist)
        scores = self.scores(seeds) if len(seeds) else None
        return self.vocabulary.top(scores, seeds, k)


class _Factorisation:
    """An ``implicit`` matrix factorisation: items scored by their factors times the
    playlist's vector, which each model finds its own way."""

    name = ""

    def __init__(self, **options: object) -> None:
        self.options = options
        self.vocabulary = _Vocabulary()
        self.model: Any = None

    def _build(self) -> Any:
        raise NotImplementedError

    def _playlist_vector(self, seeds: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        raise NotImplementedError

    def fit(self, train: Interactions) -> None:
        self.vocabulary = _Vocabulary.of(train)
        # implicit's own threads do the work; a second BLAS pool under them only thrashes.
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):
            self.model = self._build()
            self.model.fit(playlist_matrix(train), show_progress=False)

    def recommend(self, playlist: HeldOut, k: int) -> list[str]:
        seeds = self.vocabulary.columns(playlist)
        if not len(seeds):
            return self.vocabulary.top(None, seeds, k)
        items = np.asarray(self.model.item_factors, dtype=np.float64)
        scores = items @ self._playlist_vector(seeds)
        scores -= scores.min() - 1e-6  # keep every item above zero for `top`
        return self.vocabulary.top(scores, seeds, k)


class ImplicitALS(_Factorisation):
    """``implicit``'s alternating least squares; a new playlist's factors are solved for."""

    name = "ALS"

    def __init__(
        self,
        factors: int = 128,
        regularization: float = 0.05,
        alpha: float = 20.0,
        iterations: int = 15,
        seed: int = 0,
    ) -> None:
        super().__init__(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=seed,
        )

    def _build(self) -> Any:
        return _implicit("cpu.als").AlternatingLeastSquares(**self.options)

    def _playlist_vector(self, seeds: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        row = _scipy_sparse().csr_matrix(
            (np.ones(len(seeds), dtype=np.float32), (np.zeros(len(seeds)), seeds)),
            shape=(1, len(self.vocabulary.ids)),
        )
        return np.ravel(self.model.recalculate_user(0, row)).astype(np.float64)


class ImplicitBPR(_Factorisation):
    """``implicit``'s Bayesian personalised ranking. BPR cannot solve for a new playlist, so
    its vector is the mean of its seeds' item factors (the bias column kept at 1)."""

    name = "BPR"

    def __init__(
        self,
        factors: int = 128,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        iterations: int = 100,
        seed: int = 0,
    ) -> None:
        super().__init__(
            factors=factors,
            learning_rate=learning_rate,
            regularization=regularization,
            iterations=iterations,
            random_state=seed,
        )

    def _build(self) -> Any:
        return _implicit("cpu.bpr").BayesianPersonalizedRanking(**self.options)

    def _playlist_vector(self, seeds: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        vector = np.asarray(self.model.item_factors, dtype=np.float64)[seeds].mean(axis=0)
        vector[-1] = 1.0
        return vector
