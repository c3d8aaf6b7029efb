"""The challenge-style split: scenarios, determinism, and no held-out playlist in training."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_interactions, make_track_id

from recommender.split import SCENARIOS, Scenario, challenge_split, read_truth, write_truth


def library(playlists: int = 120, length: int = 40, seed: int = 3) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    pool = [make_track_id("t", i) for i in range(400)]
    return [
        [pool[i] for i in rng.choice(len(pool), size=length, replace=False)]
        for _ in range(playlists)
    ]


SMALL = (Scenario("title only", 0), Scenario("first 5", 5), Scenario("random 25", 25, random=True))


def test_held_out_playlists_never_reach_training() -> None:
    playlists = library()
    playlists += [list(playlists[0]), list(playlists[1])]  # copies under other pids
    interactions = make_interactions(playlists)
    split = challenge_split(
        interactions, per_scenario=5, validation_per_scenario=3, scenarios=SMALL, seed=1
    )
    held = split.test + split.validation
    assert len(split.test) == 15 and len(split.validation) == 9
    assert len({p.pid for p in held}) == len(held)
    assert not {p.pid for p in held} & set(split.train.pids.tolist())
    held_lists = {tuple(playlists[p.pid]) for p in held}
    train_lists = {
        tuple(split.train.track_ids[t] for t in split.train.playlist(r))
        for r in range(split.train.n_playlists)
    }
    assert not held_lists & train_lists
    copies_held = sum(1 for pid in (0, 1) if pid in {p.pid for p in held})
    assert split.dropped_copies == copies_held
    assert split.train.n_playlists == len(playlists) - len(held) - copies_held


def test_a_pid_two_playlists_share_is_never_held_out() -> None:
    interactions = make_interactions(library(playlists=40))
    shared = np.arange(40, dtype=np.int64)
    shared[30:] = np.arange(10)  # a second file numbering its playlists from 0 again
    interactions.pids = shared
    split = challenge_split(
        interactions, per_scenario=3, validation_per_scenario=2, scenarios=SMALL, seed=0
    )
    held = split.test + split.validation
    assert len({p.pid for p in held}) == len(held) == 15
    assert all(10 <= p.pid < 30 for p in held)  # only the pids no other playlist has


def test_each_scenario_gives_what_it_says_and_hides_the_rest() -> None:
    playlists = library()
    split = challenge_split(make_interactions(playlists), per_scenario=6, scenarios=SMALL, seed=2)
    for held in split.test:
        tracks = playlists[held.pid]
        scenario = next(s for s in SMALL if s.name == held.scenario)
        assert len(held.seeds) == scenario.seeds
        if not scenario.random:
            assert held.seeds == tracks[: scenario.seeds]
        else:
            positions = [tracks.index(t) for t in held.seeds]
            assert positions == sorted(positions)
        assert set(held.hidden) == set(tracks) - set(held.seeds)
        assert held.name == f"playlist {held.pid}"
    randoms = [p for p in split.test if p.scenario == "random 25"]
    assert any(p.seeds != playlists[p.pid][:25] for p in randoms)


def test_split_is_a_function_of_the_seed() -> None:
    interactions = make_interactions(library())
    first = challenge_split(interactions, per_scenario=5, scenarios=SMALL, seed=4)
    again = challenge_split(interactions, per_scenario=5, scenarios=SMALL, seed=4)
    other = challenge_split(interactions, per_scenario=5, scenarios=SMALL, seed=5)
    assert first.test == again.test
    assert [p.pid for p in first.test] != [p.pid for p in other.test]


def test_too_few_long_playlists_is_a_clear_error() -> None:
    interactions = make_interactions(library(playlists=30, length=20))
    with pytest.raises(ValueError, match=r"'first 100' needs 2 playlists of 150\+ tracks"):
        challenge_split(interactions, per_scenario=2, scenarios=SCENARIOS)


def test_truth_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    interactions = make_interactions(library())
    split = challenge_split(interactions, per_scenario=2, scenarios=SMALL)
    artists = {t: "someone" for t in split.test[0].hidden}
    write_truth(tmp_path / "truth.json", split.test, artists)
    playlists, read_artists = read_truth(tmp_path / "truth.json")
    assert playlists == split.test
    assert read_artists == artists
