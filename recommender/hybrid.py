"""Fusion of the two towers into one ranked list, with reasons and counts.

Each tower ranks candidates; the hybrid adds weighted reciprocal ranks, ``w / (k0 + rank)``,
which needs no calibration between a softmax score and a kernel density. The weights follow
the request: the collaborative tower's weight grows with the share of seeds it knows and with
how many it knows (one known seed is a weak signal); the content tower's weight grows with the
share of seeds that have audio features (and, with ``content_damping``, shrinks as the
collaborative tower gets surer). Tracks the collaborative tower never saw can only come from
content. When the collaborative tower knows no seed, popular tracks join the ranking; they
also fill any slots left, so a request always gets ``top_k`` answers when the catalogue has
them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from recommender.catalog import TrackCatalog
from recommender.collab import CollabModel
from recommender.content import ContentTower
from recommender.rerank import FEATURES, Reranker, artist_share
from recommender.titles import TitleIndex

log = logging.getLogger(__name__)

COLLABORATIVE = "collaborative"
CONTENT = "content"
POPULARITY = "popularity"
# The content tower's second list: sound-alikes the collaborative tower never saw, scored
# by sound alone, so new tracks are not always outranked by ones already on many playlists.
COLD_START = "cold_start"
# Tracks that playlists named like this one hold (recommender/titles.py), when the
# collaborative tower knows none of the seeds.
TITLE = "title"
# Tracks that share most playlists with the seeds (cosine co-occurrence), a candidate list
# for the re-ranker when the bundle has one.
COOCCURRENCE = "cooccurrence"
METHODS = ("hybrid", COLLABORATIVE, CONTENT, POPULARITY)


@dataclass(frozen=True)
class FusionSettings:
    """Constants of the fusion rule (tuned on a validation split; see bench/quality.py)."""

    rank_offset: float = 200.0
    content_weight: float = 0.3
    content_damping: float = 0.0
    popularity_weight: float = 0.3
    cold_weight: float = 0.0  # bench/quality.py: any weight that surfaces cold tracks costs recall
    title_weight: float = 1.0
    cooccurrence_weight: float = 0.3
    # The content list is searched at most this deep (0: as deep as the others). Sound ranks
    # few hidden tracks high, and its search is the slowest part of a request.
    content_depth: int = 250
    extra_candidates: int = 50
    # Each tower is searched at least this deep whatever top_k is, so the first ten answers
    # of a top_k=10 request are the first ten of a top_k=100 one.
    min_depth: int = 200

    def __post_init__(self) -> None:
        weights = (
            self.content_weight,
            self.content_damping,
            self.popularity_weight,
            self.cold_weight,
            self.title_weight,
            self.cooccurrence_weight,
        )
        if not all(isinstance(w, int | float) and math.isfinite(w) and w >= 0 for w in weights):
            raise ValueError("fusion weights must be finite numbers >= 0")
        offset = self.rank_offset
        if not (isinstance(offset, int | float) and math.isfinite(offset) and offset > 0):
            raise ValueError("the fusion rank offset must be a finite number > 0")
        counts = (self.extra_candidates, self.min_depth, self.content_depth)
        if not all(isinstance(n, int) and n >= 0 for n in counts):
            raise ValueError(
                "extra_candidates, min_depth and content_depth must be whole numbers >= 0"
            )


@dataclass(frozen=True)
class Recommendation:
    """One recommended track, its fused score, the towers that proposed it and why."""

    track_id: str
    name: str
    artist: str
    score: float
    sources: tuple[str, ...]
    because: str | None = None

    @property
    def uri(self) -> str:
        return f"spotify:track:{self.track_id}"

    @property
    def url(self) -> str:
        return f"https://open.spotify.com/track/{self.track_id}"


@dataclass(frozen=True)
class RecommendationResult:
    """A ranked answer plus what was made of the seeds.

    ``unknown`` lists seed ids neither tower knows; ``collab_known`` and ``content_known`` count
    the seeds each tower could use; ``weights`` are the fusion weights this request got.
    """

    items: list[Recommendation]
    seeds: int
    collab_known: int
    content_known: int
    unknown: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for item, raw in zip(self.items, data["items"], strict=True):
            raw["uri"] = item.uri
            raw["sources"] = list(item.sources)
        return data


class UnknownTrackError(KeyError):
    """A track id that is not in the model's catalogue."""

    def __init__(self, track_id: str) -> None:
        super().__init__(track_id)
        self.track_id = track_id

    def __str__(self) -> str:
        return f"track {self.track_id} is not in this model's catalogue"


class HybridRecommender:
    """The model a caller serves: catalogue, both towers, popularity and the fusion rule.

    >>> result = recommender.recommend(["4uLU6hMCjMI75M1A2tKUQC", "7GhIk7Il098yCjg4BQjzvb"], 10)
    >>> [item.uri for item in result.items]
    """

    def __init__(
        self,
        catalog: TrackCatalog,
        collab: CollabModel | None,
        content: ContentTower | None,
        popular_rows: npt.NDArray[np.int64],
        fusion: FusionSettings | None = None,
        titles: TitleIndex | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.catalog = catalog
        self.titles = titles
        self.reranker = reranker
        self.collab = collab
        self.content = content
        self.popular_rows = np.asarray(popular_rows, dtype=np.int64)
        self.fusion = fusion or FusionSettings()
        self.cold_items: npt.NDArray[np.bool_] | None = None
        if content is not None:
            known = np.zeros(len(content.rows), dtype=bool)
            if collab is not None:
                known = collab.position[content.rows] >= 0
            self.cold_items = ~known

    def weights(self, seeds: int, collab_known: int, content_known: int) -> dict[str, float]:
        """Fusion weights for a playlist of ``seeds`` tracks, of which the towers know some."""
        if seeds == 0:
            return {COLLABORATIVE: 0.0, CONTENT: 0.0, POPULARITY: 0.0, COLD_START: 0.0, TITLE: 0.0}
        collab = (collab_known / seeds) * collab_known / (collab_known + 1.0)
        content_share = content_known / seeds
        content = (
            self.fusion.content_weight * content_share * (1 - self.fusion.content_damping * collab)
        )
        # Audio features alone predict playlist membership worse than popularity does
        # (bench/quality.py, cold seeds), so a playlist the collaborative tower knows nothing
        # of gets popular tracks ranked beside the sound-alikes, not sound-alikes alone.
        popularity = self.fusion.popularity_weight if collab_known == 0 else 0.0
        cold = self.fusion.cold_weight * content_share
        return {
            COLLABORATIVE: collab,
            CONTENT: content,
            POPULARITY: popularity,
            COLD_START: cold,
            TITLE: 0.0,
        }

    def rank_rows(
        self,
        seed_rows: npt.NDArray[np.int64],
        top_k: int,
        *,
        method: str = "hybrid",
        exclude_rows: Iterable[int] = (),
        weights: dict[str, float] | None = None,
        title: str | None = None,
        rerank: bool = True,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], list[tuple[str, ...]]]:
        """Catalogue rows for seed rows (s,): rows (k,), fused scores (k,), sources per row.

        ``weights`` overrides the hybrid's own (computed from ``seed_rows`` alone); a caller
        that also holds seeds outside the catalogue passes weights that count them. The
        playlist's ``title`` is used when the collaborative tower knows none of the seeds.
        With a re-ranker (and ``rerank``), the hybrid's first candidates are re-ordered by it.
        """
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        seed_rows = np.asarray(seed_rows, dtype=np.int64)
        banned = set(seed_rows.tolist()) | set(int(r) for r in exclude_rows)
        _check_top_k(top_k)
        # The towers drop seeds themselves; only the other exclusions need spare candidates.
        excluded = len(banned) - len(set(seed_rows.tolist()))
        reranker = self.reranker if rerank and method == "hybrid" else None
        depth = max(top_k, self.fusion.min_depth, reranker.settings.candidates if reranker else 0)
        if weights is None or method != "hybrid":
            weights = self._request_weights(seed_rows, method)
        if method == "hybrid":
            weights = self._with_title(weights, title)
        ranked, scores, sources, ranks = self._first_stage(
            seed_rows, depth + excluded, weights, banned, title
        )
        if reranker is not None:
            head = np.asarray(ranked[: reranker.settings.candidates], dtype=np.int64)
            if len(head) > 1:
                order = reranker.order(self.candidate_features(seed_rows, head, ranks))
                ranked = [int(r) for r in head[order]] + ranked[len(head) :]
        ranked = ranked[:top_k]
        rows_out = np.asarray(ranked, dtype=np.int64)
        fused = np.asarray([scores.get(r, 0.0) for r in ranked], dtype=np.float64)
        return rows_out, fused, [tuple(sources[r]) for r in ranked]

    def _first_stage(
        self,
        seed_rows: npt.NDArray[np.int64],
        depth: int,
        weights: dict[str, float],
        banned: set[int],
        title: str | None,
    ) -> tuple[list[int], dict[int, float], dict[int, list[str]], dict[str, dict[int, int]]]:
        """Fused ranking of ``depth`` rows (popular ones fill it), fused scores, sources, and
        each list's rank of the rows it holds."""
        want = depth + self.fusion.extra_candidates
        scores: dict[int, float] = {}
        ranks: dict[str, dict[int, int]] = {}
        sources: dict[int, list[str]] = {}
        for key, source, rows in self._tower_candidates(seed_rows, want, weights, title):
            rank = 0
            for row in rows.tolist():
                if row in banned:
                    continue
                rank += 1
                ranks.setdefault(key, {}).setdefault(row, rank)
                scores[row] = scores.get(row, 0.0) + weights[key] / (self.fusion.rank_offset + rank)
                shown = sources.setdefault(row, [])
                if source not in shown:
                    shown.append(source)
        ranked = sorted(scores, key=lambda r: (-scores[r], r))[:depth]
        self._fill_with_popular(ranked, sources, banned, depth)
        return ranked, scores, sources, ranks

    def rerank_candidates(
        self, seed_rows: npt.NDArray[np.int64], title: str | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """The candidates a re-ranker would order for these seeds, and their features.

        Used to teach the re-ranker; needs ``self.reranker`` for its settings and
        co-occurrence counts (its booster is not used).
        """
        assert self.reranker is not None
        seed_rows = np.unique(np.asarray(seed_rows, dtype=np.int64))
        weights = self._with_title(self._request_weights(seed_rows, "hybrid"), title)
        depth = self.reranker.settings.candidates
        ranked, _, _, ranks = self._first_stage(
            seed_rows, depth, weights, set(seed_rows.tolist()), title
        )
        head = np.asarray(ranked, dtype=np.int64)
        return head, self.candidate_features(seed_rows, head, ranks)

    def candidate_features(
        self,
        seed_rows: npt.NDArray[np.int64],
        rows: npt.NDArray[np.int64],
        ranks: dict[str, dict[int, int]],
    ) -> npt.NDArray[np.float64]:
        """The re-ranker's features (rows, len(FEATURES)) of candidates in fused order.

        A value that does not apply (a tower's rank for a track it did not list, the
        collaborative score of a track it never saw) is NaN, which the booster handles.
        """
        assert self.reranker is not None
        seeds = np.unique(np.asarray(seed_rows, dtype=np.int64))
        n = len(rows)
        table = np.full((n, len(FEATURES)), np.nan)
        column = {name: number for number, name in enumerate(FEATURES)}
        table[:, column["fused_rank"]] = np.arange(n)
        for key, name in (
            (COLLABORATIVE, "collab_rank"),
            (CONTENT, "content_rank"),
            (TITLE, "title_rank"),
        ):
            listed = ranks.get(key, {})
            table[:, column[name]] = [listed.get(int(r), np.nan) for r in rows]
        collab_known = 0
        if self.collab is not None:
            positions = self.collab.position[rows]
            known = positions >= 0
            table[:, column["candidate_known"]] = known
            collab_known = int((self.collab.position[seeds] >= 0).sum()) if len(seeds) else 0
            query = self.collab.query_vector(seeds) if len(seeds) else None
            if query is not None and known.any():
                table[known, column["collab_score"]] = (
                    self.collab.vectors[positions[known]] @ query / self.collab.settings.temperature
                )
        if self.content is not None:
            positions = self.content.position[rows]
            has = positions >= 0
            table[:, column["candidate_has_features"]] = has
            seed_positions = self.content.position[seeds] if len(seeds) else seeds
            seed_positions = seed_positions[seed_positions >= 0]
            if len(seed_positions) and has.any():
                step = max(1, -(-len(seed_positions) // 256))
                density = self.content._density(
                    self.content.vectors[positions[has]],
                    self.content.vectors[seed_positions[::step]],
                )
                table[has, column["content_density"]] = np.log(density + 1e-12)
        cooccurrence = self.reranker.cooccurrence
        table[:, column["popularity"]] = np.log1p(cooccurrence.counts[rows])
        table[:, column["cooccurrence"]] = cooccurrence.scores(seeds, rows)
        table[:, column["artist_share"]] = artist_share(self.catalog.artists, seeds, rows)
        table[:, column["seeds"]] = np.log1p(len(seeds))
        table[:, column["collab_known_share"]] = collab_known / max(len(seeds), 1)
        return table

    def _with_title(self, weights: dict[str, float], title: str | None) -> dict[str, float]:
        """The title list joins when there is a title and the collaborative tower knows no seed;
        the co-occurrence list when there is a re-ranker to order what it brings."""
        if title and self.titles is not None and not weights.get(COLLABORATIVE):
            weights = {**weights, TITLE: weights.get(TITLE) or self.fusion.title_weight}
        if self.reranker is not None and self.fusion.cooccurrence_weight > 0:
            weights = {**weights, COOCCURRENCE: self.fusion.cooccurrence_weight}
        return weights

    def _request_weights(self, seed_rows: npt.NDArray[np.int64], method: str) -> dict[str, float]:
        if method == COLLABORATIVE:
            return {COLLABORATIVE: 1.0, CONTENT: 0.0, POPULARITY: 0.0, COLD_START: 0.0, TITLE: 0.0}
        if method == CONTENT:
            return {COLLABORATIVE: 0.0, CONTENT: 1.0, POPULARITY: 0.0, COLD_START: 0.0, TITLE: 0.0}
        if method == POPULARITY:
            return {COLLABORATIVE: 0.0, CONTENT: 0.0, POPULARITY: 0.0, COLD_START: 0.0, TITLE: 0.0}
        unique = np.unique(seed_rows)
        collab_known = int(sum(self.collab.knows(int(r)) for r in unique)) if self.collab else 0
        content_known = int(sum(self.content.knows(int(r)) for r in unique)) if self.content else 0
        return self.weights(len(unique), collab_known, content_known)

    def _tower_candidates(
        self,
        seed_rows: npt.NDArray[np.int64],
        want: int,
        weights: dict[str, float],
        title: str | None = None,
    ) -> list[tuple[str, str, npt.NDArray[np.int64]]]:
        """(weight key, source shown to users, ranked rows) for each list that has weight."""
        found: list[tuple[str, str, npt.NDArray[np.int64]]] = []
        if self.titles is not None and title and weights.get(TITLE, 0.0) > 0:
            found.append((TITLE, TITLE, self.titles.recommend(title, want)))
        if self.reranker is not None and weights.get(COOCCURRENCE, 0.0) > 0:
            rows = self.reranker.cooccurrence.top(seed_rows, want)
            found.append((COOCCURRENCE, COOCCURRENCE, rows))
        if self.collab is not None and weights[COLLABORATIVE] > 0:
            rows = self.collab.recommend(seed_rows, want)[0]
            found.append((COLLABORATIVE, COLLABORATIVE, rows))
        if self.content is not None and weights[CONTENT] > 0:
            depth = min(want, self.fusion.content_depth) if self.fusion.content_depth else want
            found.append((CONTENT, CONTENT, self.content.recommend(seed_rows, depth)[0]))
        if self.content is not None and weights[COLD_START] > 0:
            rows = self.content.recommend(
                seed_rows, want, allowed=self.cold_items, prior_weight=0.0
            )[0]
            found.append((COLD_START, CONTENT, rows))
        if weights[POPULARITY] > 0:
            found.append((POPULARITY, POPULARITY, self.popular_rows[:want]))
        return found

    def _fill_with_popular(
        self, ranked: list[int], sources: dict[int, list[str]], banned: set[int], top_k: int
    ) -> None:
        taken = set(ranked)
        for row in self.popular_rows.tolist():
            if len(ranked) >= top_k:
                break
            if row in taken or row in banned:
                continue
            ranked.append(row)
            taken.add(row)
            sources[row] = [POPULARITY]

    def recommend(
        self,
        track_ids: Sequence[str],
        top_k: int = 10,
        *,
        exclude: Iterable[str] = (),
        method: str = "hybrid",
        explain: bool = True,
        title: str | None = None,
        rerank: bool = True,
    ) -> RecommendationResult:
        """Recommend ``top_k`` tracks for a playlist given as 22-character track ids.

        Unknown ids are counted in ``unknown``, never an error; an empty or all-unknown
        playlist gets what playlists with the same ``title`` hold, if any, and the most
        popular tracks. Seeds and ``exclude`` are never returned.
        """
        _check_ids(track_ids, "track_ids")
        _check_ids(exclude, "exclude")
        _check_top_k(top_k)
        unique_ids = list(dict.fromkeys(track_ids))
        seed_rows, unknown = self.catalog.indices(unique_ids)
        exclude_rows, _ = self.catalog.indices(list(exclude))
        collab_known = sum(1 for r in seed_rows if self.collab and self.collab.knows(int(r)))
        content_known = sum(1 for r in seed_rows if self.content and self.content.knows(int(r)))
        weights = (
            self.weights(len(unique_ids), collab_known, content_known)
            if method == "hybrid"
            else self._request_weights(seed_rows, method)
        )
        if method == "hybrid":
            weights = self._with_title(weights, title)
        unknown_to_both = unknown + [
            self.catalog.track_ids[int(r)]
            for r in seed_rows
            if not (self.collab and self.collab.knows(int(r)))
            and not (self.content and self.content.knows(int(r)))
        ]
        rows, scores, sources = self.rank_rows(
            seed_rows,
            top_k,
            method=method,
            exclude_rows=exclude_rows.tolist(),
            weights=weights,
            title=title,
            rerank=rerank,
        )
        reasons = self._reasons(seed_rows, rows, sources) if explain else [None] * len(rows)
        items = [
            Recommendation(
                track_id=self.catalog.track_ids[int(row)],
                name=self.catalog.names[int(row)],
                artist=self.catalog.artists[int(row)],
                score=float(score),
                sources=source,
                because=reason,
            )
            for row, score, source, reason in zip(rows, scores, sources, reasons, strict=True)
        ]
        return RecommendationResult(
            items=items,
            seeds=len(unique_ids),
            collab_known=collab_known,
            content_known=content_known,
            unknown=unknown_to_both,
            weights=weights,
        )

    def similar(self, track_id: str, top_k: int = 10) -> RecommendationResult:
        """Tracks that sound like ``track_id``: the content tower alone.

        Raises :class:`UnknownTrackError` when the track is not in the catalogue or has no
        audio features.
        """
        _check_top_k(top_k)
        row = self.catalog.index_of(track_id)
        if row is None or self.content is None or not self.content.knows(row):
            raise UnknownTrackError(track_id)
        # Feature tables hold the same recording under several ids (album, single,
        # compilation); those sound identical, so fetch spares and keep one of each title.
        rows, scores = self.content.similar(row, top_k * 3 + 5)
        seen = {self._title_key(row)}
        items = []
        for r, s in zip(rows.tolist(), scores.tolist(), strict=True):
            key = self._title_key(r)
            if key is not None and key in seen:
                continue
            seen.add(key)
            items.append(
                Recommendation(
                    track_id=self.catalog.track_ids[r],
                    name=self.catalog.names[r],
                    artist=self.catalog.artists[r],
                    score=float(s),
                    sources=(CONTENT,),
                    because=track_id,
                )
            )
            if len(items) == top_k:
                break
        known = int(self.collab.knows(row)) if self.collab else 0
        weights = {COLLABORATIVE: 0.0, CONTENT: 1.0, POPULARITY: 0.0, COLD_START: 0.0}
        return RecommendationResult(items, 1, known, 1, [], weights)

    def _title_key(self, row: int) -> tuple[str, str] | None:
        """Lower-case (title, artist) without version suffixes; None when the name is unknown."""
        name = self.catalog.names[row].lower().split(" - ")[0].split(" (")[0].strip()
        return (name, self.catalog.artists[row].lower().strip()) if name else None

    def _reasons(
        self,
        seed_rows: npt.NDArray[np.int64],
        rows: npt.NDArray[np.int64],
        sources: list[tuple[str, ...]],
    ) -> list[str | None]:
        """For each answer, the seed that most explains it in the tower that proposed it.

        A playlist of one track gets no reasons: "because you have <that track>" says nothing.
        """
        reasons: list[str | None] = []
        if len(np.unique(seed_rows)) < 2:
            return [None] * len(rows)
        for row, source in zip(rows.tolist(), sources, strict=True):
            seed = None
            if COLLABORATIVE in source and self.collab is not None:
                # Unit track vectors: the seed most like the answer, not the seed whose
                # vector happens to be longest.
                seed = self._closest_seed(self.collab, seed_rows, row, self.collab.vectors)
            elif CONTENT in source and self.content is not None:
                seed = self._closest_seed(self.content, seed_rows, row, self.content.vectors)
            reasons.append(None if seed is None else self.catalog.track_ids[seed])
        return reasons

    @staticmethod
    def _closest_seed(
        tower: CollabModel | ContentTower,
        seed_rows: npt.NDArray[np.int64],
        row: int,
        seed_table: npt.NDArray[np.float32],
    ) -> int | None:
        positions = tower.position[seed_rows]
        known = seed_rows[positions >= 0]
        target = tower.position[row]
        if len(known) == 0 or target < 0:
            return None
        if isinstance(tower, CollabModel):
            affinity = seed_table[tower.position[known]] @ tower.vectors[target]
            return int(known[int(np.argmax(affinity))])
        distance = ((seed_table[tower.position[known]] - seed_table[target]) ** 2).sum(axis=1)
        return int(known[int(np.argmin(distance))])


def _check_top_k(top_k: object) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 0:
        raise ValueError(f"top_k must be a whole number >= 0, not {top_k!r}")


def _check_ids(ids: object, name: str) -> None:
    if isinstance(ids, str | bytes):
        raise TypeError(f"{name} must be a collection of track ids, not a single string")
