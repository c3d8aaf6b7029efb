"""Held-out evaluation: hide the end of playlists kept out of training, recommend from the rest.

The split is deterministic from a seed and holds out whole playlists, so no held-out playlist
is ever seen in training. Quality is the share of hidden tracks found in the top ``k`` (recall),
summed over all held-out playlists ("micro" recall), per method.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from recommender.data import Interactions
from recommender.hybrid import HybridRecommender

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldOutPlaylist:
    """Seeds (given) and hidden tracks (to find), as 22-character track ids."""

    pid: int
    seeds: list[str]
    hidden: list[str]


@dataclass
class Split:
    train: Interactions
    test: list[HeldOutPlaylist]
    validation: list[HeldOutPlaylist] = field(default_factory=list)


def split_holdout(
    interactions: Interactions,
    *,
    n_test: int = 500,
    n_validation: int = 0,
    hidden_share: float = 0.5,
    min_length: int = 10,
    seed: int = 0,
) -> Split:
    """Hold out ``n_test`` (+ ``n_validation``) playlists of ``min_length``+ tracks.

    Each held-out playlist gives its first ``1 - hidden_share`` as seeds; the last part is
    hidden (repeats of a seed are not counted as hidden).
    """
    lengths = np.diff(interactions.indptr)
    eligible = np.flatnonzero(lengths >= min_length)
    wanted = n_test + n_validation
    if len(eligible) <= wanted:
        raise ValueError(
            f"only {len(eligible)} playlists have {min_length}+ tracks; asked for {wanted}"
        )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(eligible, size=wanted, replace=False)
    held = [_hold(interactions, int(row), hidden_share) for row in chosen]
    train_rows = np.setdiff1d(np.arange(interactions.n_playlists), chosen)
    return Split(interactions.subset(train_rows), held[:n_test], held[n_test:])


def _hold(interactions: Interactions, row: int, hidden_share: float) -> HeldOutPlaylist:
    tracks = [interactions.track_ids[t] for t in interactions.playlist(row)]
    cut = max(1, round(len(tracks) * (1 - hidden_share)))
    seeds = tracks[:cut]
    seen = set(seeds)
    hidden = list(dict.fromkeys(t for t in tracks[cut:] if t not in seen))
    return HeldOutPlaylist(int(interactions.pids[row]), seeds, hidden)


@dataclass(frozen=True)
class MethodScore:
    method: str
    recall: float
    hits: int
    hidden: int
    median_ms: float
    p99_ms: float
    cold_hits: int = 0


def recall_at_k(
    recommender: HybridRecommender,
    playlists: Sequence[HeldOutPlaylist],
    *,
    method: str = "hybrid",
    top_k: int = 500,
) -> MethodScore:
    """Share of hidden tracks found in each playlist's top ``top_k``, over all playlists.

    ``cold_hits`` counts the hits on tracks the collaborative tower never saw.
    """
    hits = total = cold_hits = 0
    timings: list[float] = []
    for playlist in playlists:
        seed_rows, _ = recommender.catalog.indices(playlist.seeds)
        started = time.perf_counter()
        rows, _, _ = recommender.rank_rows(seed_rows, top_k, method=method)
        timings.append(time.perf_counter() - started)
        found = {recommender.catalog.track_ids[int(r)] for r in rows}
        found_hidden = [t for t in playlist.hidden if t in found]
        hits += len(found_hidden)
        cold_hits += sum(1 for t in found_hidden if not _warm(recommender, t))
        total += len(playlist.hidden)
    times: npt.NDArray[np.float64] = np.asarray(timings) * 1000
    return MethodScore(
        method,
        hits / max(total, 1),
        hits,
        total,
        float(np.median(times)) if len(times) else 0.0,
        float(np.percentile(times, 99)) if len(times) else 0.0,
        cold_hits,
    )


def _warm(recommender: HybridRecommender, track_id: str) -> bool:
    row = recommender.catalog.index_of(track_id)
    return row is not None and recommender.collab is not None and recommender.collab.knows(row)


def cold_hidden(recommender: HybridRecommender, playlists: Sequence[HeldOutPlaylist]) -> int:
    """How many hidden tracks the collaborative tower never saw but that have audio features."""
    count = 0
    for playlist in playlists:
        for track_id in playlist.hidden:
            row = recommender.catalog.index_of(track_id)
            if row is None:
                continue
            warm = recommender.collab is not None and recommender.collab.knows(row)
            if not warm and recommender.content is not None and recommender.content.knows(row):
                count += 1
    return count


def cold_seed_playlists(
    recommender: HybridRecommender, playlists: Sequence[HeldOutPlaylist], min_seeds: int = 1
) -> list[HeldOutPlaylist]:
    """The playlists again, each given only the seeds the collaborative tower does not know.

    This is the case of a member's playlist of tracks newer than the training data: only the
    audio features of its tracks are known. Playlists left with fewer than ``min_seeds``
    seeds that have features are dropped.
    """
    cold: list[HeldOutPlaylist] = []
    for playlist in playlists:
        seeds = []
        for track_id in playlist.seeds:
            row = recommender.catalog.index_of(track_id)
            if row is None or recommender.content is None or not recommender.content.knows(row):
                continue
            if recommender.collab is None or not recommender.collab.knows(row):
                seeds.append(track_id)
        if len(seeds) >= min_seeds:
            cold.append(HeldOutPlaylist(playlist.pid, seeds, playlist.hidden))
    return cold
