"""Train on a slice of the real data and beat the most-popular baseline on held-out playlists.

Reads ``shared/data/raw`` in place (next to the checkout, as in CI): 200 MPD slice files are
linked into a temporary folder for training, and 150 playlists of 10+ tracks from other slice
files are held out. Each held-out playlist gives its first half as seeds; the rest is hidden.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.bundle import load_bundle, save_bundle
from recommender.collab import CollabSettings
from recommender.data import Playlist, iter_playlists, read_interactions
from recommender.features import read_feature_tables
from recommender.hybrid import HybridRecommender
from recommender.train import TrainSettings, train_model

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
SLICES = RAW / "mpd_soundscout_f10"
TRAIN_FILES = 200
HELD_OUT = 150
TOP_K = 500
SETTINGS = TrainSettings(
    collab=CollabSettings(dimension=16, epochs=3, batch_size=256, n_trees=10),
    content_trees=5,
    model="two-tower",
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not SLICES.is_dir(), reason=f"the real data is not at {SLICES} (shared/ beside the repo)"
    ),
]


def split_files() -> tuple[list[Path], list[Path]]:
    files = sorted(SLICES.glob("mpd.slice.*.json*"))
    train = files[:: len(files) // TRAIN_FILES][:TRAIN_FILES]
    chosen = set(train)
    return train, [f for f in files if f not in chosen]


def held_out_playlists(files: list[Path]) -> list[Playlist]:
    playlists = []
    for playlist in iter_playlists(files):
        if len(set(playlist.track_ids)) >= 10:
            playlists.append(playlist)
        if len(playlists) == HELD_OUT:
            break
    return playlists


def recall(recommender: HybridRecommender, playlists: list[Playlist], method: str) -> float:
    """Hidden tracks found in the top 500, over all hidden tracks (micro recall)."""
    found = total = 0
    for playlist in playlists:
        tracks = list(dict.fromkeys(playlist.track_ids))
        seeds, hidden = tracks[: len(tracks) // 2], set(tracks[len(tracks) // 2 :])
        result = recommender.recommend(seeds, TOP_K, method=method, explain=False)
        found += len(hidden & {item.track_id for item in result.items})
        total += len(hidden)
    return found / total


def test_trained_model_finds_hidden_tracks_well_above_the_popular_baseline(
    tmp_path: Path,
) -> None:
    train_files, other_files = split_files()
    slices = tmp_path / "slices"
    slices.mkdir()
    for path in train_files:
        (slices / path.name).symlink_to(path)
    interactions = read_interactions(slices)
    held_out = held_out_playlists(other_files)
    features = read_feature_tables(RAW)

    trained = train_model(interactions, features, SETTINGS)
    save_bundle(trained.recommender, trained.scaler, tmp_path / "model", training=trained.training)
    recommender, _ = load_bundle(tmp_path / "model")

    assert len(held_out) == HELD_OUT
    assert not {p.pid for p in held_out} & set(interactions.pids.tolist())
    for playlist in held_out[:5]:  # the saved bundle answers as the trained model does
        seeds = playlist.track_ids[:5]
        saved = [item.track_id for item in recommender.recommend(seeds, 50).items]
        assert saved == [item.track_id for item in trained.recommender.recommend(seeds, 50).items]
    popular = recall(recommender, held_out, "popularity")
    hybrid = recall(recommender, held_out, "hybrid")
    assert popular > 0
    assert hybrid >= 1.5 * popular, f"recall@{TOP_K}: hybrid {hybrid:.3f}, popular {popular:.3f}"
    assert np.isfinite(trained.training["collab_losses"]).all()
