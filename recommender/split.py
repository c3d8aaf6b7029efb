"""A RecSys Challenge 2018 style split of MPD playlists: held-out playlists in scenarios.

Each held-out playlist gives some of its tracks (its first N, N random ones, or only its
title) and hides all the others, as the challenge did. Held-out playlists never reach
training: their rows are removed, and so is any other playlist with exactly the same tracks
(the shared data holds copies under different pids). The split is a pure function of the
interactions and the seed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.data import TRACK_URI_PREFIX, Interactions


@dataclass(frozen=True)
class Scenario:
    """How much of a playlist is given: ``seeds`` tracks, the first ones or random ones."""

    name: str
    seeds: int
    random: bool = False

    @property
    def min_length(self) -> int:
        # Enough tracks left to hide that the scenario measures something: at least five,
        # and half as many as are given (the challenge's 100-seed playlists had 150 to 250).
        return max(10, self.seeds + max(5, self.seeds // 2))


# The challenge's scenarios that our inputs allow. The title travels with every playlist;
# "title only" gives nothing else.
SCENARIOS = (
    Scenario("title only", 0),
    Scenario("first 1", 1),
    Scenario("first 5", 5),
    Scenario("first 10", 10),
    Scenario("first 25", 25),
    Scenario("random 25", 25, random=True),
    Scenario("first 100", 100),
    Scenario("random 100", 100, random=True),
)
SCENARIO_NAMES = tuple(s.name for s in SCENARIOS)


@dataclass(frozen=True)
class HeldOut:
    """One held-out playlist: what a method is given, and what it should find."""

    pid: int
    scenario: str
    name: str
    seeds: list[str]  # 22-character track ids, in the playlist's order
    hidden: list[str]  # the playlist's other tracks, each once, seeds removed
    length: int

    @property
    def seed_uris(self) -> list[str]:
        return [TRACK_URI_PREFIX + t for t in self.seeds]

    @property
    def hidden_uris(self) -> list[str]:
        return [TRACK_URI_PREFIX + t for t in self.hidden]


@dataclass
class ChallengeSplit:
    train: Interactions
    test: list[HeldOut]
    validation: list[HeldOut]
    seed: int
    dropped_copies: int = 0  # training playlists removed for repeating a held-out one


def challenge_split(
    interactions: Interactions,
    *,
    per_scenario: int = 100,
    validation_per_scenario: int = 0,
    scenarios: Sequence[Scenario] = SCENARIOS,
    seed: int = 0,
) -> ChallengeSplit:
    """Hold out ``per_scenario`` test (+ validation) playlists for each scenario.

    Playlists are drawn without replacement, the most demanding scenario first, so long
    playlists are not used up by scenarios that need few tracks. A pid two playlists share
    (files that number their playlists alike) is never held out: challenge sets and scores
    name playlists by pid, so those stay in training. Raises ValueError when the data has too
    few long playlists for a scenario.
    """
    if per_scenario < 1 or validation_per_scenario < 0:
        raise ValueError("per_scenario must be at least 1 and validation_per_scenario at least 0")
    rng = np.random.default_rng(seed)
    lengths = np.diff(interactions.indptr)
    free = np.ones(interactions.n_playlists, dtype=bool)
    _, where, counts = np.unique(interactions.pids, return_inverse=True, return_counts=True)
    holdable = counts[where] == 1
    chosen: dict[str, np.ndarray] = {}
    wanted = per_scenario + validation_per_scenario
    for scenario in sorted(scenarios, key=lambda s: -s.min_length):
        eligible = np.flatnonzero(free & holdable & (lengths >= scenario.min_length))
        if len(eligible) < wanted:
            raise ValueError(
                f"scenario {scenario.name!r} needs {wanted} playlists of "
                f"{scenario.min_length}+ tracks; only {len(eligible)} are left"
            )
        rows = rng.choice(eligible, size=wanted, replace=False)
        free[rows] = False
        chosen[scenario.name] = rows

    test: list[HeldOut] = []
    validation: list[HeldOut] = []
    for scenario in scenarios:  # output in the given order, whatever order rows were drawn in
        rows = chosen[scenario.name]
        for number, row in enumerate(rows.tolist()):
            held = hold(interactions, row, scenario, rng)
            (test if number < per_scenario else validation).append(held)

    held_rows = np.flatnonzero(~free)
    held_keys = {_key(interactions, int(r)) for r in held_rows}
    copies = np.asarray(
        [r for r in np.flatnonzero(free).tolist() if _key(interactions, r) in held_keys],
        dtype=np.int64,
    )
    free[copies] = False
    train = interactions.subset(np.flatnonzero(free))
    return ChallengeSplit(train, test, validation, seed, dropped_copies=len(copies))


def _key(interactions: Interactions, row: int) -> bytes:
    return interactions.playlist(row).tobytes()


def hold(
    interactions: Interactions, row: int, scenario: Scenario, rng: np.random.Generator
) -> HeldOut:
    tracks = [interactions.track_ids[t] for t in interactions.playlist(row).tolist()]
    if scenario.random:
        positions = np.sort(rng.choice(len(tracks), size=scenario.seeds, replace=False))
        seeds = [tracks[p] for p in positions.tolist()]
    else:
        seeds = tracks[: scenario.seeds]
    given = set(seeds)
    hidden = list(dict.fromkeys(t for t in tracks if t not in given))
    return HeldOut(
        pid=int(interactions.pids[row]),
        scenario=scenario.name,
        name=interactions.playlist_names[row],
        seeds=list(dict.fromkeys(seeds)),
        hidden=hidden,
        length=len(tracks),
    )


def write_challenge_set(path: Path, playlists: Sequence[HeldOut]) -> None:
    """The given part of ``playlists`` as a challenge set JSON (the 2018 file's fields)."""
    entries = [
        {
            "pid": p.pid,
            "name": p.name,
            "num_tracks": p.length,
            "num_samples": len(p.seeds),
            "num_holdouts": len(p.hidden),
            "tracks": [{"pos": i, "track_uri": uri} for i, uri in enumerate(p.seed_uris)],
        }
        for p in playlists
    ]
    _write_json(path, {"version": "harmonya split", "playlists": entries})


def write_truth(path: Path, playlists: Sequence[HeldOut], artists: dict[str, str]) -> None:
    """The hidden part of ``playlists``, and ``artists`` (track id -> artist) whole: R-precision
    credits a recommended track by its artist, and any track may be recommended, so scoring a
    submission from this file alone (``harmonya evaluate --score``) needs them all."""
    entries = [asdict(p) for p in playlists]
    _write_json(path, {"playlists": entries, "artists": dict(sorted(artists.items()))})


def read_truth(path: Path) -> tuple[list[HeldOut], dict[str, str]]:
    """Read what :func:`write_truth` wrote: held-out playlists and track id -> artist."""
    with Path(path).open(encoding="utf-8") as handle:
        data = json.load(handle)
    playlists = [HeldOut(**entry) for entry in data["playlists"]]
    return playlists, dict(data.get("artists", {}))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path = Path(path)
    temp = path.with_name(path.name + ".tmp")
    with temp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False)
    temp.replace(path)
