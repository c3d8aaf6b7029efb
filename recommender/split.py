"""A RecSys Challenge 2018 style split of MPD playlists: held-out playlists in scenarios.

Each held-out playlist gives some of its tracks (its first N, N random ones, or only its
title) and hides all the others, as the challenge did. Held-out playlists never reach
training: their rows are removed, and so is any other playlist with exactly the same tracks
(the shared data holds copies under different pids). The split is a pure function of the
interactions and the seed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.data import TRACK_URI_PREFIX, DataError, Interactions
from recommender.text import write_text_atomically


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


TRUTH_MAX_BYTES = 2**30  # the full MPD's truth file, every artist included, is far smaller
_TRACK_ID_RE = re.compile(r"[0-9A-Za-z]{22}")
_TRUTH_FIELDS = {
    "pid": int,
    "scenario": str,
    "name": str,
    "seeds": list,
    "hidden": list,
    "length": int,
}


def read_truth(path: Path) -> tuple[list[HeldOut], dict[str, str]]:
    """Read what :func:`write_truth` wrote: held-out playlists and track id -> artist.

    Raises DataError, one sentence naming the first problem, for anything else: a missing,
    oversized or non-JSON file, a challenge set given in its place, wrong field types, a
    repeated pid or a playlist with nothing hidden.
    """
    path = Path(path)
    name = path.name
    try:
        if not path.is_file():
            # The whole path: "truth.json does not exist" would not say which one was looked for.
            raise DataError(f"{path} is not a file" if path.exists() else f"{path} does not exist")
        if path.stat().st_size > TRUTH_MAX_BYTES:
            raise DataError(f"{name} is larger than {TRUTH_MAX_BYTES >> 20} MiB: not a truth file")
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as error:
        raise DataError(f"{name} could not be read: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise DataError(f"{name} is not UTF-8 text") from error
    except json.JSONDecodeError as error:
        raise DataError(f"{name} is not JSON (line {error.lineno}: {error.msg})") from error
    except RecursionError as error:
        raise DataError(f"{name} nests too deeply to be a truth file") from error
    except ValueError as error:  # such as a number of thousands of digits
        raise DataError(f"{name} is not a truth file: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("playlists"), list):
        raise DataError(f"{name} has no 'playlists' list: not a truth file from harmonya evaluate")
    if not data["playlists"]:
        raise DataError(f"{name} holds no playlists")
    playlists, seen = [], set()
    for number, entry in enumerate(data["playlists"], start=1):
        playlists.append(_held_out(entry, f"{name}, playlist {number}"))
        if playlists[-1].pid in seen:
            raise DataError(f"{name}: pid {playlists[-1].pid} appears twice")
        seen.add(playlists[-1].pid)
    artists = data.get("artists", {})
    if not isinstance(artists, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in artists.items()
    ):
        raise DataError(f"{name}: 'artists' must map track ids to artist names")
    return playlists, dict(artists)


def _held_out(entry: Any, where: str) -> HeldOut:
    if not isinstance(entry, dict):
        raise DataError(f"{where} is not an object")
    if "hidden" not in entry and "tracks" in entry:
        raise DataError(
            f"{where} has no 'hidden' tracks: is this the challenge set, not the truth?"
        )
    missing = [field for field in _TRUTH_FIELDS if field not in entry]
    if missing:
        raise DataError(f"{where} lacks {', '.join(missing)}")
    for field, kind in _TRUTH_FIELDS.items():
        value = entry[field]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise DataError(
                f"{where}: {field} must be {'a number' if kind is int else 'a ' + kind.__name__}"
            )
    if not 0 <= entry["pid"] < 2**63:
        raise DataError(f"{where}: pid must be from 0 to 2**63 - 1")
    for field in ("seeds", "hidden"):
        # Bare 22-character ids, as write_truth writes them: a URI would never match a
        # submission's track and score 0 without a word.
        if not all(isinstance(t, str) and _TRACK_ID_RE.fullmatch(t) for t in entry[field]):
            raise DataError(f"{where}: {field} must be a list of 22-character track ids")
    if not entry["hidden"]:
        raise DataError(f"{where} (pid {entry['pid']}) hides no tracks, so it cannot be scored")
    return HeldOut(**{field: entry[field] for field in _TRUTH_FIELDS})


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path = Path(path)
    write_text_atomically(path, json.dumps(data, ensure_ascii=False))
