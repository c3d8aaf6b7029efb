"""`harmonya evaluate`: every method on one challenge-style split, scored the challenge's way.

One run builds the split, trains HarmonYa and the baselines on its training part, tunes each
baseline's few settings on validation playlists, writes each method's submission CSV for the
test playlists and scores that file with the 2018 metrics, so a method is judged on exactly
what it submitted. Training time, peak memory and per-playlist latency are measured beside
quality.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recommender import baselines, metrics
from recommender.challenge import write_submission
from recommender.data import TRACK_URI_PREFIX, Interactions
from recommender.hybrid import COLLABORATIVE, CONTENT, HybridRecommender
from recommender.split import ChallengeSplit, HeldOut

log = logging.getLogger(__name__)

LIST_LENGTH = 500
Progress = Callable[[str], None]


@dataclass
class Cost:
    """What fitting a method took: wall time and the growth of resident memory at its peak."""

    seconds: float = 0.0
    peak_mib: float = 0.0
    note: str = ""


@dataclass
class MethodResult:
    name: str
    cost: Cost
    scores: list[metrics.PlaylistScore]
    latencies_ms: list[float]
    problems: list[metrics.Problem]
    cold_hits: int = 0
    settings: str = ""
    hits_at: dict[int, int] = field(default_factory=dict)  # list length -> hidden tracks found
    # The same lists scored against only the warm (on a training playlist) or only the cold
    # (on none, with audio features) hidden tracks, over the playlists that hide any.
    warm: list[metrics.PlaylistScore] = field(default_factory=list)
    cold: list[metrics.PlaylistScore] = field(default_factory=list)


def _rss_mib() -> float:
    try:
        with Path("/proc/self/statm").open() as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return 0.0
    import resource

    return pages * resource.getpagesize() / 2**20


@contextmanager
def measure(cost: Cost, interval: float = 0.05) -> Iterator[Cost]:
    """Time the block and sample resident memory every ``interval`` s for its peak growth."""
    start_rss = peak = _rss_mib()
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(interval):
            peak = max(peak, _rss_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        yield cost
    finally:
        cost.seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        cost.peak_mib = max(peak, _rss_mib()) - start_rss


class HarmonYaMethod:
    """One of HarmonYa's rankings (the hybrid, or one tower alone) of a trained recommender."""

    def __init__(
        self, name: str, recommender: HybridRecommender, method: str, *, rerank: bool = True
    ) -> None:
        self.name = name
        self.recommender = recommender
        self.method = method
        self.rerank = rerank

    def fit(self, train: Interactions) -> None:  # trained once, outside, for all three
        pass

    def recommend(self, playlist: HeldOut, k: int) -> list[str]:
        result = self.recommender.recommend(
            playlist.seeds,
            k,
            method=self.method,
            explain=False,
            title=playlist.name,
            rerank=self.rerank,
        )
        return [item.track_id for item in result.items]


def harmonya_methods(recommender: HybridRecommender, label: str = "") -> list[HarmonYaMethod]:
    """The hybrid, the fusion without the re-ranker, and each tower alone; ``label`` (the
    model's kind, when a run compares several) is appended to each name."""
    suffix = f" ({label})" if label else ""
    methods = [HarmonYaMethod("HarmonYa hybrid" + suffix, recommender, "hybrid")]
    if recommender.reranker is not None:
        methods.append(
            HarmonYaMethod("HarmonYa fusion only" + suffix, recommender, "hybrid", rerank=False)
        )
    methods.append(HarmonYaMethod("HarmonYa collaborative" + suffix, recommender, COLLABORATIVE))
    methods.append(HarmonYaMethod("HarmonYa content" + suffix, recommender, CONTENT))
    return methods


def truths(playlists: Sequence[HeldOut]) -> dict[int, metrics.Truth]:
    return {
        p.pid: metrics.Truth(p.pid, frozenset(p.seed_uris), tuple(p.hidden_uris)) for p in playlists
    }


def artist_map(interactions: Interactions) -> dict[str, str]:
    """Track id -> artist name, where the data names one (the challenge's artist credit)."""
    return {
        track: artist
        for track, artist in zip(interactions.track_ids, interactions.track_artists, strict=True)
        if artist
    }


def run_method(
    method: baselines.Method,
    playlists: Sequence[HeldOut],
    submission: Path,
    artists: dict[str, str],
    cold: set[str],
    *,
    cost: Cost | None = None,
    warm: set[str] | None = None,
) -> MethodResult:
    """Recommend for every playlist, write the submission, score that file: against every
    hidden track, then against only the ``warm`` and only the ``cold`` ones."""
    lists: dict[int, list[str]] = {}
    latencies: list[float] = []
    for playlist in playlists:
        started = time.perf_counter()
        lists[playlist.pid] = method.recommend(playlist, LIST_LENGTH)
        latencies.append((time.perf_counter() - started) * 1000)
    rows = ((pid, [TRACK_URI_PREFIX + t for t in tracks]) for pid, tracks in lists.items())
    write_submission(submission, rows, team_name="HarmonYa evaluation")
    expected = truths(playlists)
    check = metrics.read_submission(submission, expected, expected_length=LIST_LENGTH)
    scores = metrics.score_submission(check, expected, artists)
    cold_hits = 0
    hits_at = dict.fromkeys((10, 25, 50, 100, 200, 300, 400, 500), 0)
    for playlist in playlists:
        hidden = set(playlist.hidden)
        found = [
            t for t in check.rows.get(playlist.pid, []) if t[len(TRACK_URI_PREFIX) :] in hidden
        ]
        cold_hits += sum(1 for uri in found if uri[len(TRACK_URI_PREFIX) :] in cold)
        positions = [
            i
            for i, uri in enumerate(check.rows.get(playlist.pid, []))
            if uri[len(TRACK_URI_PREFIX) :] in hidden
        ]
        for length in hits_at:
            hits_at[length] += sum(1 for i in positions if i < length)
    return MethodResult(
        method.name,
        cost or Cost(),
        scores,
        latencies,
        check.problems,
        cold_hits,
        hits_at=hits_at,
        warm=metrics.score_submission(check, only(expected, warm or set()), artists),
        cold=metrics.score_submission(check, only(expected, cold), artists),
    )


def only(expected: dict[int, metrics.Truth], tracks: set[str]) -> dict[int, metrics.Truth]:
    """Each truth cut to the hidden tracks in ``tracks`` (ids); playlists left with none go."""
    cut: dict[int, metrics.Truth] = {}
    for pid, truth in expected.items():
        kept = tuple(u for u in truth.hidden if u[len(TRACK_URI_PREFIX) :] in tracks)
        if kept:
            cut[pid] = metrics.Truth(pid, truth.seeds, kept)
    return cut


def cold_tracks(split: ChallengeSplit, content_ids: set[str]) -> set[str]:
    """Hidden tracks no training playlist holds but that have audio features."""
    known = set(split.train.track_ids)
    return {t for p in split.test for t in p.hidden if t not in known and t in content_ids}


def warm_tracks(split: ChallengeSplit) -> set[str]:
    """Hidden tracks at least one training playlist holds."""
    known = set(split.train.track_ids)
    return {t for p in split.test for t in p.hidden if t in known}


def tune(
    make: Callable[..., baselines.Method],
    grid: Sequence[dict[str, object]],
    train: Interactions,
    validation: Sequence[HeldOut],
    progress: Progress | None = None,
) -> tuple[baselines.Method, dict[str, object], Cost]:
    """Fit ``make(**settings)`` for each settings of ``grid``; keep the best validation NDCG.

    The cost returned is that of fitting the kept settings once, not of the whole search.
    """
    expected = truths(validation)
    best: tuple[float, baselines.Method, dict[str, object], Cost] | None = None
    for settings in grid:
        method = make(**settings)
        cost = Cost()
        with measure(cost):
            method.fit(train)
        lists = {
            p.pid: [TRACK_URI_PREFIX + t for t in method.recommend(p, LIST_LENGTH)]
            for p in validation
        }
        ndcg = float(np.mean([metrics.ndcg(lists[pid], t.hidden) for pid, t in expected.items()]))
        if progress:
            progress(
                f"  {method.name} {settings}: validation NDCG {ndcg:.4f}, fit {cost.seconds:.1f} s"
            )
        if best is None or ndcg > best[0]:
            best = (ndcg, method, settings, cost)
    assert best is not None
    return best[1], best[2], best[3]


BASELINE_GRIDS: dict[str, tuple[Callable[..., baselines.Method], list[dict[str, object]]]] = {
    "most popular": (baselines.MostPopular, [{}]),
    "item-kNN": (baselines.ItemKNN, [{"neighbours": n} for n in (50, 200, 1000)]),
    "ALS": (
        baselines.ImplicitALS,
        [
            {"factors": f, "regularization": r, "alpha": a}
            for f in (64, 128)
            for r in (0.05, 1.0)
            for a in (5.0, 20.0)
        ],
    ),
    "BPR": (
        baselines.ImplicitBPR,
        [{"factors": 128, "learning_rate": lr} for lr in (0.01, 0.05)],
    ),
}


@dataclass
class Evaluation:
    split: ChallengeSplit
    results: list[MethodResult]
    # Hidden test entries (a track hidden in two playlists counts twice), all of them, those
    # absent from training but with audio features, and those on a training playlist.
    cold: int
    hidden: int
    warm: int = 0


@dataclass
class Trained:
    """One HarmonYa model trained on the split's training part, and what that cost."""

    recommender: HybridRecommender
    cost: Cost
    settings: str = ""
    label: str = ""  # set when a run compares several models


def evaluate_methods(
    split: ChallengeSplit,
    models: Sequence[Trained],
    out: Path,
    *,
    artists_of: dict[str, str] | None = None,
    baseline_names: Sequence[str] = tuple(BASELINE_GRIDS),
    tune_baselines: bool = True,
    progress: Progress | None = None,
) -> Evaluation:
    """Score HarmonYa's ``models`` (already trained on ``split.train``) and the baselines on
    ``split.test``.

    ``artists_of`` maps track ids to artists for R-precision's artist credit; give it the
    artists of the whole data, held-out tracks included.
    """
    say = progress or (lambda message: log.info("%s", message))
    submissions = out / "submissions"
    submissions.mkdir(parents=True, exist_ok=True)
    artists = {TRACK_URI_PREFIX + t: a for t, a in (artists_of or {}).items()}
    content_ids: set[str] = set()
    for model in models:
        content = model.recommender.content
        if content is not None:
            catalog = model.recommender.catalog
            content_ids |= {catalog.track_ids[int(r)] for r in content.rows}
    cold = cold_tracks(split, content_ids)
    warm = warm_tracks(split)
    results: list[MethodResult] = []
    for model in models:
        for number, ours in enumerate(harmonya_methods(model.recommender, model.label)):
            say(f"{ours.name}: recommending for {len(split.test)} playlists")
            cost = Cost(model.cost.seconds, model.cost.peak_mib)
            if number:
                cost.note = "same training as the hybrid"
            csv = _csv(submissions, ours.name)
            result = run_method(ours, split.test, csv, artists, cold, cost=cost, warm=warm)
            result.settings = "" if number else model.settings
            results.append(result)
    for name in baseline_names:
        make, grid = BASELINE_GRIDS[name]
        if tune_baselines and split.validation and len(grid) > 1:
            say(f"{name}: tuning {len(grid)} settings on {len(split.validation)} playlists")
            method, settings, cost = tune(make, grid, split.train, split.validation, say)
        else:
            settings, cost = grid[0], Cost()
            method = make(**settings)
            say(f"{name}: fitting")
            with measure(cost):
                method.fit(split.train)
        csv = _csv(submissions, name)
        result = run_method(method, split.test, csv, artists, cold, cost=cost, warm=warm)
        result.settings = ", ".join(f"{k}={v}" for k, v in settings.items())
        results.append(result)
    hidden = sum(len(p.hidden) for p in split.test)
    return Evaluation(split, results, _occurrences(split, cold), hidden, _occurrences(split, warm))


def _occurrences(split: ChallengeSplit, tracks: set[str]) -> int:
    """Hidden test entries (a track hidden in two playlists counts twice) among ``tracks``."""
    return sum(1 for p in split.test for t in p.hidden if t in tracks)


def _csv(folder: Path, name: str) -> Path:
    """``HarmonYa hybrid (unified)`` -> ``harmonya-hybrid-unified.csv``."""
    return folder / ("-".join(re.findall(r"[a-z0-9]+", name.lower())) + ".csv")
