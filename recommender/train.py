"""Training: data directory in, a :class:`HybridRecommender` and its manifest entries out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recommender.catalog import TrackCatalog
from recommender.collab import CollabModel, CollabSettings, TrainReport, train_collab
from recommender.content import CONTENT_DIM, ContentTower, FeatureScaler
from recommender.data import DataError, Interactions, fingerprint_files, read_interactions
from recommender.features import FeatureTable, find_feature_files, read_feature_tables
from recommender.hybrid import FusionSettings, HybridRecommender
from recommender.rerank import CoOccurrence, Reranker, RerankSettings, fit_ranker
from recommender.split import SCENARIOS
from recommender.split import hold as hold_playlist
from recommender.titles import TitleIndex
from recommender.unified import ID_DROPOUT, train_unified

MODELS = ("two-tower", "unified")
# The default since the comparison of issue 5 (README, "Two-tower or unified"): as good on
# warm tracks, and it also finds tracks no playlist holds.
DEFAULT_KIND = "unified"

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainSettings:
    """Everything that shapes a trained bundle; saved in its manifest."""

    collab: CollabSettings = field(default_factory=CollabSettings)
    fusion: FusionSettings = field(default_factory=FusionSettings)
    content_trees: int = 20
    content_prior: float = 2.0
    seed: int = 0
    rerank: RerankSettings | None = field(default_factory=RerankSettings)
    # "two-tower": the collaborative tower learns from co-occurrence alone; "unified": its
    # track vectors also come from the sound (recommender/unified.py).
    model: str = DEFAULT_KIND
    # unified only: the share of training examples in which a track's id part is dropped
    # (None: ID_DROPOUT for the unified model, and nothing for the two-tower one).
    id_dropout: float | None = None

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.model != "unified":
            if self.id_dropout is not None:
                raise ValueError("id_dropout applies to the unified model only")
            return
        if self.id_dropout is None:
            object.__setattr__(self, "id_dropout", ID_DROPOUT)
        elif not (isinstance(self.id_dropout, int | float) and 0 <= self.id_dropout < 1):
            raise ValueError("id_dropout must be in [0, 1)")


@dataclass
class TrainedModel:
    """A trained recommender with its scaler and the manifest's ``training`` section."""

    recommender: HybridRecommender
    scaler: FeatureScaler
    training: dict[str, Any]


def _say(progress: Progress | None, message: str) -> None:
    log.info("%s", message)
    if progress is not None:
        progress(message)


def build_catalog(interactions: Interactions, features: FeatureTable) -> TrackCatalog:
    """Playlist tracks first (so their rows equal the interaction vocabulary), then the rest."""
    return TrackCatalog.merge(
        [
            (interactions.track_ids, interactions.track_names, interactions.track_artists),
            (list(features.ids), features.names, features.artists),
        ]
    )


def build_content(
    catalog: TrackCatalog,
    features: FeatureTable,
    interactions: Interactions,
    settings: TrainSettings,
) -> tuple[ContentTower, FeatureScaler]:
    """Scale the features and index them; the prior counts playlists holding each track."""
    scaler = FeatureScaler.fit(features.values)
    rows = np.asarray([catalog.index_of(t) for t in features.ids], dtype=np.int64)
    counts = np.zeros(len(catalog), dtype=np.float64)
    counts[: interactions.n_tracks] = interactions.counts()
    prior = np.log1p(counts[rows]).astype(np.float32)
    tower = ContentTower.build(
        rows,
        scaler.transform(features.values),
        len(catalog),
        prior=prior,
        prior_weight=settings.content_prior,
        n_trees=settings.content_trees,
        seed=settings.seed,
    )
    tower.imputed = features.imputed
    return tower, scaler


def popularity(interactions: Interactions, limit: int = 5000) -> npt.NDArray[np.int64]:
    """Catalogue rows of the most frequent playlist tracks, most frequent first."""
    counts = interactions.counts()
    order = np.lexsort((np.arange(len(counts)), -counts))
    return order[: min(limit, int((counts > 0).sum()))].astype(np.int64)


def train_model(
    interactions: Interactions,
    features: FeatureTable,
    settings: TrainSettings,
    *,
    progress: Progress | None = None,
) -> TrainedModel:
    """Train the towers, and the re-ranker when ``settings.rerank`` is set.

    The re-ranker must learn from tower scores that behave like those of a playlist the
    towers never saw, so a first model is trained without ``rerank.playlists`` playlists,
    the ranker learns on those, and the model served is then trained on everything (the
    evaluation split calls this directly).
    """
    if settings.rerank is None or interactions.n_playlists < 2 * settings.rerank.playlists:
        if settings.rerank is not None:
            _say(progress, "too few playlists to teach a re-ranker; the fusion ranks alone")
        return _first_stage(interactions, features, settings, progress)
    started = time.perf_counter()
    rerank = settings.rerank
    plain = replace(settings, rerank=None)
    held, rest = _ranker_playlists(interactions, rerank)
    _say(progress, f"re-ranker: first model on {len(rest):,} playlists, {len(held):,} held out")
    stage = _first_stage(interactions.subset(rest), features, plain, progress)
    stage_cooccurrence = CoOccurrence.build(
        interactions.subset(rest), len(stage.recommender.catalog)
    )
    stage.recommender.reranker = Reranker(None, stage_cooccurrence, rerank)
    table, labels, groups = _ranker_examples(stage.recommender, interactions, held, rerank)
    _say(progress, f"re-ranker: {len(groups):,} playlists, {int(labels.sum()):,} positives")
    booster = fit_ranker(table, labels, groups, rerank)
    del stage
    trained = _first_stage(interactions, features, plain, progress)
    cooccurrence = CoOccurrence.build(interactions, len(trained.recommender.catalog))
    trained.recommender.reranker = Reranker(booster, cooccurrence, rerank)
    trained.training["settings"] = asdict(settings)
    trained.training["rerank"] = {
        "playlists": len(groups),
        "positives": int(labels.sum()),
        "candidates": len(labels),
    }
    trained.training["seconds"] = round(time.perf_counter() - started, 1)
    return trained


def _train_unified(
    interactions: Interactions,
    catalog: TrackCatalog,
    content: ContentTower | None,
    settings: TrainSettings,
    progress: Progress | None,
) -> tuple[CollabModel, TrainReport]:
    """The unified tower over the content tower's scaled features (real ones only: the
    tracks in the content index, which the manifest lists)."""
    width = content.vectors.shape[1] if content is not None else CONTENT_DIM
    features = np.zeros((len(catalog), width), dtype=np.float32)
    has_features = np.zeros(len(catalog), dtype=bool)
    if content is not None:
        features[content.rows] = content.vectors
        has_features[content.rows] = True
    return train_unified(
        interactions,
        features,
        has_features,
        settings.collab,
        id_dropout=ID_DROPOUT if settings.id_dropout is None else settings.id_dropout,
        progress=progress,
    )


def _ranker_playlists(
    interactions: Interactions, settings: RerankSettings
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Rows held out to teach the ranker (playlists of 10+ tracks), and the rest."""
    rng = np.random.default_rng(settings.seed)
    lengths = np.diff(interactions.indptr)
    eligible = np.flatnonzero(lengths >= 10)
    held = np.sort(rng.choice(eligible, size=min(settings.playlists, len(eligible)), replace=False))
    return held, np.setdiff1d(np.arange(interactions.n_playlists), held)


def _ranker_examples(
    recommender: HybridRecommender,
    interactions: Interactions,
    held: npt.NDArray[np.int64],
    settings: RerankSettings,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32], list[int]]:
    """Each held playlist, cut like one of the challenge's scenarios its length allows."""
    rng = np.random.default_rng(settings.seed + 1)
    tables: list[npt.NDArray[np.float64]] = []
    labels: list[npt.NDArray[np.int32]] = []
    groups: list[int] = []
    lengths = np.diff(interactions.indptr)
    for row in np.repeat(held, settings.cuts).tolist():
        fitting = [s for s in SCENARIOS if s.min_length <= lengths[row]]
        scenario = fitting[int(rng.integers(len(fitting)))]
        playlist = hold_playlist(interactions, row, scenario, rng)
        seed_rows, _ = recommender.catalog.indices(playlist.seeds)
        candidates, table = recommender.rerank_candidates(seed_rows, playlist.name)
        hidden = set(playlist.hidden)
        label = np.asarray(
            [recommender.catalog.track_ids[int(r)] in hidden for r in candidates], dtype=np.int32
        )
        if len(candidates) < 2 or not label.any():
            continue  # nothing to learn from a list with no hit
        tables.append(table)
        labels.append(label)
        groups.append(len(candidates))
    if not groups:
        raise DataError("no held playlist had a hidden track among its candidates")
    return np.concatenate(tables), np.concatenate(labels), groups


def _first_stage(
    interactions: Interactions,
    features: FeatureTable,
    settings: TrainSettings,
    progress: Progress | None,
) -> TrainedModel:
    """The towers, the titles and the fusion rule: everything but the re-ranker."""
    started = time.perf_counter()
    catalog = build_catalog(interactions, features)
    _say(progress, f"catalogue: {len(catalog):,} tracks ({len(features):,} with audio features)")
    content: ContentTower | None = None
    scaler = FeatureScaler.neutral()
    if len(features):
        content, scaler = build_content(catalog, features, interactions, settings)
        _say(progress, f"content index: {len(content.rows):,} tracks")
    else:
        _say(progress, "no audio-feature tables: the content tower is empty ('similar' won't work)")
    if settings.model == "unified":
        collab, report = _train_unified(interactions, catalog, content, settings, progress)
    else:
        collab, report = train_collab(
            interactions, settings.collab, n_catalog=len(catalog), progress=progress
        )
    _say(progress, f"collaborative tower: {report.items:,} tracks in {report.seconds:.0f} s")
    if settings.model == "unified":
        training_extra = {"unified_tracks": _unified_kinds(collab, content, interactions, settings)}
    else:
        training_extra = {}
    popular = popularity(interactions)
    titles = TitleIndex.build(interactions)
    _say(progress, f"titles: {len(titles):,} playlist names")
    recommender = HybridRecommender(catalog, collab, content, popular, settings.fusion, titles)
    training = {
        "settings": asdict(settings),
        "playlists": interactions.n_playlists,
        "rows": len(interactions.tracks),
        "playlist_tracks": interactions.n_tracks,
        "feature_tracks": len(features),
        "imputed_values": int(features.imputed.sum()),
        "real_features": real_features(catalog, features, interactions),
        "model": settings.model,
        "collab_items": report.items,
        "collab_examples_per_epoch": report.examples_per_epoch,
        "collab_losses": report.losses,
        "seconds": round(time.perf_counter() - started, 1),
        **training_extra,
    }
    return TrainedModel(recommender, scaler, training)


def real_features(
    catalog: TrackCatalog, features: FeatureTable, interactions: Interactions
) -> dict[str, Any]:
    """Which tracks had real audio features: every one read from a dataset's table (a record
    needs 8 of the 13 values valid; a missing one is the table's median, and counted here).
    Those are exactly the content index's rows (``content.npz`` ``rows`` -> ``catalog.csv``);
    no track is given features it does not have."""
    complete = int((~features.imputed.any(axis=1)).sum()) if len(features) else 0
    playlist_ids = set(interactions.track_ids)
    return {
        "tracks": len(features),
        "listed_in": "content.npz rows (catalogue rows of catalog.csv)",
        "imputed_marks": "content.npz imputed (per track, per feature in features.order)",
        "all_13_values_read": complete,
        "some_values_imputed": len(features) - complete,
        "on_training_playlists": sum(1 for t in features.ids if t in playlist_ids),
        "catalogue_tracks_without": len(catalog) - len(features),
    }


def _unified_kinds(
    collab: CollabModel,
    content: ContentTower | None,
    interactions: Interactions,
    settings: TrainSettings,
) -> dict[str, int]:
    """How the unified tower places its tracks: by id and sound, id only, or sound only."""
    n_catalog = len(collab.position)
    has_features = np.zeros(n_catalog, dtype=bool)
    if content is not None:
        has_features[content.rows] = True
    counts = np.zeros(n_catalog, dtype=np.int64)
    counts[: interactions.n_tracks] = interactions.counts()
    has_id = counts >= settings.collab.min_count
    placed = np.zeros(n_catalog, dtype=bool)
    placed[collab.rows] = True
    return {
        "id_and_sound": int((placed & has_id & has_features).sum()),
        "id_only": int((placed & has_id & ~has_features).sum()),
        "sound_only": int((placed & ~has_id & has_features).sum()),
        "neither_left_out": int((~has_id & ~has_features).sum()),
    }


def train_from_directory(
    data: Path, settings: TrainSettings, *, progress: Progress | None = None
) -> TrainedModel:
    """Read every playlist slice and feature table under ``data`` and train on all of it."""
    started = time.perf_counter()
    if not data.is_dir():
        raise DataError(f"--data must be a folder of playlist slices and feature tables: {data}")
    interactions = read_interactions(data, progress=progress is not None)
    _say(
        progress,
        f"playlists: {interactions.n_playlists:,} ({len(interactions.tracks):,} rows, "
        f"{interactions.n_tracks:,} tracks)",
    )
    features = read_feature_tables(data, progress=progress is not None)
    _say(progress, f"audio features: {len(features):,} tracks from {len(features.sources)} files")
    trained = train_model(interactions, features, settings, progress=progress)
    files = [Path(f) for f in interactions.files] + find_feature_files(data)
    trained.training["data"] = {
        "directory": str(data.resolve()),
        "fingerprint": fingerprint_files(files, root=data),
        "files": len(files),
        "feature_sources": features.sources,
    }
    trained.training["seconds"] = round(time.perf_counter() - started, 1)
    return trained
