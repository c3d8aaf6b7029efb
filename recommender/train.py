"""Training: data directory in, a :class:`HybridRecommender` and its manifest entries out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recommender.catalog import TrackCatalog
from recommender.collab import CollabSettings, train_collab
from recommender.content import ContentTower, FeatureScaler
from recommender.data import DataError, Interactions, fingerprint_files, read_interactions
from recommender.features import FeatureTable, find_feature_files, read_feature_tables
from recommender.hybrid import FusionSettings, HybridRecommender

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
    """Train both towers on already-read data (the evaluation split calls this directly)."""
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
    collab, report = train_collab(
        interactions, settings.collab, n_catalog=len(catalog), progress=progress
    )
    _say(progress, f"collaborative tower: {report.items:,} tracks in {report.seconds:.0f} s")
    popular = popularity(interactions)
    recommender = HybridRecommender(catalog, collab, content, popular, settings.fusion)
    training = {
        "settings": asdict(settings),
        "playlists": interactions.n_playlists,
        "rows": len(interactions.tracks),
        "playlist_tracks": interactions.n_tracks,
        "feature_tracks": len(features),
        "imputed_values": int(features.imputed.sum()),
        "collab_items": report.items,
        "collab_examples_per_epoch": report.examples_per_epoch,
        "collab_losses": report.losses,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return TrainedModel(recommender, scaler, training)


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
