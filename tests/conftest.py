"""Shared fixtures: synthetic playlists whose right answers are obvious, and models trained once.

Two synthetic worlds:

- ``block_interactions``: 4 disjoint groups of 10 tracks, every playlist drawn inside one group,
  plus one track that occurs in a single playlist. The collaborative tower must learn the groups.
- ``world``: an MPD-format folder (two slice files, one gzipped) and an audio-feature CSV with
  8 groups of 80 tracks whose features cluster by group, plus tracks with features but no
  playlist (cold), playlist tracks with no features, and tracks that occur once. It is large
  enough (> 600 playlist tracks) for the 500-track challenge answers.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from recommender.bundle import save_bundle
from recommender.collab import CollabModel, CollabSettings, TrainReport, train_collab
from recommender.data import Interactions
from recommender.features import FEATURE_ORDER
from recommender.train import TrainedModel, TrainSettings, train_from_directory

# Read by TensorFlow when it is first imported, which happens lazily inside train_collab.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BLOCK_GROUPS = 4
BLOCK_SIZE = 10
WORLD_GROUPS = 8
WORLD_GROUP_SIZE = 80
WORLD_PLAYLISTS_PER_GROUP = 30
WORLD_PLAYLIST_LENGTH = 12
WORLD_COLD_PER_GROUP = 4


def make_track_id(label: str, number: int) -> str:
    """A valid 22-character id that shows where it came from, e.g. ``g3t000...0017``."""
    return f"{label}{number:0{22 - len(label)}d}"


def make_interactions(playlists: list[list[str]]) -> Interactions:
    """Interactions of ``playlists`` (lists of track ids), vocabulary in first-seen order."""
    vocabulary: dict[str, int] = {}
    rows = [[vocabulary.setdefault(t, len(vocabulary)) for t in p] for p in playlists]
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=indptr[1:])
    ids = list(vocabulary)
    return Interactions(
        track_ids=ids,
        track_names=[f"Song {t}" for t in ids],
        track_artists=[f"Artist {t[:2]}" for t in ids],
        pids=np.arange(len(rows), dtype=np.int64),
        playlist_names=[f"playlist {i}" for i in range(len(rows))],
        indptr=indptr,
        tracks=np.asarray([i for r in rows for i in r], dtype=np.int32),
    )


# --- block-structured playlists for the collaborative tower ----------------------------------


@dataclass(frozen=True)
class Blocks:
    interactions: Interactions
    groups: list[list[int]]  # vocabulary rows of each group
    singleton: int  # vocabulary row of a track that occurs in one playlist only


@pytest.fixture(scope="session")
def blocks() -> Blocks:
    """50 playlists of 3 tracks per group; short playlists keep one-seed contexts in training."""
    rng = np.random.default_rng(0)
    groups = [[make_track_id(f"g{g}t", i) for i in range(BLOCK_SIZE)] for g in range(BLOCK_GROUPS)]
    playlists = [
        [group[i] for i in rng.choice(BLOCK_SIZE, size=3, replace=False)]
        for group in groups
        for _ in range(50)
    ]
    singleton = make_track_id("once", 0)
    playlists.append([groups[0][0], groups[0][1], singleton])
    interactions = make_interactions(playlists)
    index = {t: i for i, t in enumerate(interactions.track_ids)}
    return Blocks(
        interactions,
        [[index[t] for t in group] for group in groups],
        index[singleton],
    )


BLOCK_SETTINGS = CollabSettings(
    dimension=16, epochs=5, batch_size=32, learning_rate=0.01, context_size=8, n_trees=10
)


@pytest.fixture(scope="session")
def block_training(blocks: Blocks) -> tuple[CollabModel, TrainReport]:
    return train_collab(blocks.interactions, BLOCK_SETTINGS)


@pytest.fixture(scope="session")
def block_collab(block_training: tuple[CollabModel, TrainReport]) -> CollabModel:
    return block_training[0]


# --- an MPD-format data folder -------------------------------------------------------------


@dataclass(frozen=True)
class World:
    directory: Path
    groups: list[list[str]]  # playlist tracks with features, 8 groups of 80
    cold: list[list[str]]  # per group: features, in no playlist
    no_features: list[str]  # in several group-0 playlists, no audio features
    once_with_features: str  # in one group-1 playlist only, with features
    once_without_features: str  # in one group-2 playlist only, no features: neither tower
    playlists: list[list[str]]

    def group_of(self, track_id: str) -> int | None:
        for number, (group, cold) in enumerate(zip(self.groups, self.cold, strict=True)):
            if track_id in group or track_id in cold:
                return number
        return None


def _feature_row(rng: np.random.Generator, centre: dict[str, float]) -> dict[str, float]:
    row = dict(centre)
    for name in ("danceability", "energy", "speechiness", "acousticness", "liveness", "valence"):
        row[name] = float(np.clip(centre[name] + rng.normal(0, 0.01), 0, 1))
    row["instrumentalness"] = float(np.clip(centre["instrumentalness"] + rng.normal(0, 0.01), 0, 1))
    row["loudness"] = centre["loudness"] + rng.normal(0, 0.2)
    row["tempo"] = centre["tempo"] + rng.normal(0, 1.0)
    row["duration_ms"] = round(centre["duration_ms"] + rng.normal(0, 2000))
    return row


def _group_centre(rng: np.random.Generator, group: int) -> dict[str, float]:
    centre = {name: float(rng.uniform(0.1, 0.9)) for name in FEATURE_ORDER}
    centre["loudness"] = float(rng.uniform(-20, -3))
    centre["tempo"] = float(rng.uniform(70, 180))
    centre["duration_ms"] = float(rng.uniform(150_000, 300_000))
    centre["key"] = group % 12
    centre["mode"] = group % 2
    centre["time_signature"] = 4
    return centre


def _mpd_track(track_id: str, position: int) -> dict[str, object]:
    return {
        "pos": position,
        "track_uri": f"spotify:track:{track_id}",
        "track_name": f"Song {track_id}",
        "artist_name": f"Artist {track_id[:2]}",
    }


def write_world(directory: Path) -> World:
    rng = np.random.default_rng(7)
    groups = [
        [make_track_id(f"g{g}t", i) for i in range(WORLD_GROUP_SIZE)] for g in range(WORLD_GROUPS)
    ]
    cold = [
        [make_track_id(f"c{g}t", i) for i in range(WORLD_COLD_PER_GROUP)]
        for g in range(WORLD_GROUPS)
    ]
    no_features = [make_track_id("nofeat", i) for i in range(3)]
    once_with, once_without = make_track_id("oncefeat", 0), make_track_id("oncebare", 0)

    playlists = []
    for group in groups:
        for _ in range(WORLD_PLAYLISTS_PER_GROUP):
            picks = rng.choice(WORLD_GROUP_SIZE, size=WORLD_PLAYLIST_LENGTH, replace=False)
            playlists.append([group[i] for i in picks])
    for number, track_id in enumerate(no_features):
        for playlist in playlists[number * 5 : number * 5 + 4]:  # group 0
            playlist.append(track_id)
    playlists[WORLD_PLAYLISTS_PER_GROUP].append(once_with)  # group 1
    playlists[2 * WORLD_PLAYLISTS_PER_GROUP].append(once_without)  # group 2

    directory.mkdir(parents=True, exist_ok=True)
    slices: list[dict[str, object]] = [{"info": {"slice": s}, "playlists": []} for s in range(2)]
    for pid, playlist in enumerate(playlists):
        raw = {
            "pid": pid,
            "name": f"mix {pid}",
            "tracks": [_mpd_track(t, p) for p, t in enumerate(playlist)],
        }
        slices[pid % 2]["playlists"].append(raw)  # type: ignore[attr-defined]
    (directory / "mpd.slice.0-999.json").write_text(json.dumps(slices[0]), encoding="utf-8")
    with gzip.open(directory / "mpd.slice.1000-1999.json.gz", "wt", encoding="utf-8") as handle:
        json.dump(slices[1], handle)

    with (directory / "audio_features.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["track_id", "track_name", "artist_name", *FEATURE_ORDER])
        for number, (group, group_cold) in enumerate(zip(groups, cold, strict=True)):
            centre = _group_centre(rng, number)
            members = group + group_cold + ([once_with] if number == 1 else [])
            for track_id in members:
                row = _feature_row(rng, centre)
                writer.writerow([track_id, "", "", *(row[name] for name in FEATURE_ORDER)])
    return World(directory, groups, cold, no_features, once_with, once_without, playlists)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return write_world(tmp_path_factory.mktemp("world") / "data")


WORLD_SETTINGS = TrainSettings(
    collab=CollabSettings(dimension=16, epochs=3, batch_size=64, n_trees=10),
    content_trees=10,
    model="two-tower",  # the unified model has tests/test_unified.py
)


@pytest.fixture(scope="session")
def trained_world(world: World) -> TrainedModel:
    return train_from_directory(world.directory, WORLD_SETTINGS)


@pytest.fixture(scope="session")
def world_bundle(trained_world: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle root (``current`` link and ``versions/``); tests must not change it."""
    root = tmp_path_factory.mktemp("bundle") / "model"
    save_bundle(
        trained_world.recommender, trained_world.scaler, root, training=trained_world.training
    )
    return root
