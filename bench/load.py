"""Load check: 50 `/recommend` interactions arriving at once through the fake Discord.

    python bench/load.py [--model models/default] [--requests 50] [--repeat 3]

The real bot (discord.py, spotipy, the service, SQLite history) runs against the fake Discord
and fake Spotify from `tests/fakes`, both on loopback. Each request comes from its own member
and reads its own playlist of 30-100 tracks drawn from the model's catalogue. Reported per run
and as medians: seconds from firing to the last follow-up, the slowest deferral (Discord allows
3 s), the longest event-loop stall (a 10 ms sleeper's worst overshoot, and the longest gap
between gateway heartbeats), and counts of deferrals, answers, busy replies and history rows.
The fake Discord shares the bot's event loop, so its own work is inside the stall figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# The fakes live with the tests, which import them as the top-level package `fakes`.
sys.path.insert(0, str(ROOT / "tests"))

from fakes.discord import (  # noqa: E402
    APPLICATION_ID,
    GUILD_ID,
    MEMBER_ID,
    FakeDiscord,
    Interaction,
    running_bot,
)
from fakes.spotify import CLIENT_ID, CLIENT_SECRET, FakeSpotify, track_entry  # noqa: E402

from bot.bot import BotConfig, HarmonYa  # noqa: E402
from bot.service import RecommendService, ServiceLimits  # noqa: E402
from bot.spotify import SpotifyClient, SpotifyEndpoints  # noqa: E402
from bot.storage import HistoryStore  # noqa: E402
from recommender.bundle import load_bundle  # noqa: E402
from recommender.hybrid import HybridRecommender  # noqa: E402

DEFERRED = 5
CHANNEL_MESSAGE = 4
HEARTBEAT_INTERVAL = 0.5
PROBE_SLEEP = 0.010
POLL = 0.005
# Bounds on one run's waits, far above what a healthy run needs.
READY_TIMEOUT = 30.0
ANSWER_TIMEOUT = 60.0
HISTORY_TIMEOUT = 15.0


@dataclass
class RunResult:
    seconds_to_last_answer: float
    slowest_deferral: float
    probe_stall: float
    stall_at: float
    heartbeat_gap: float
    deferred: int
    answered: int
    busy: int
    history_rows: int


@dataclass
class Watcher:
    """Notes when each interaction's callback and first follow-up reach the fake Discord.

    One task reads the fake's request log incrementally, so watching 50 interactions costs
    the loop little (a waiter per interaction would rescan the whole log on every request).
    """

    fake: FakeDiscord
    interactions: dict[str, Interaction] = field(default_factory=dict)
    callbacks: dict[str, tuple[float, int]] = field(default_factory=dict)
    followups: dict[str, tuple[float, bool]] = field(default_factory=dict)
    _seen: int = 0

    def watch(self, interaction: Interaction) -> None:
        self.interactions[interaction.token] = interaction

    def done(self) -> bool:
        """Every interaction has been refused, or deferred and then answered."""
        for token in self.interactions:
            callback = self.callbacks.get(token)
            if callback is None or (callback[1] == DEFERRED and token not in self.followups):
                return False
        return True

    async def run(self) -> None:
        while True:
            self._scan(time.monotonic())
            await asyncio.sleep(POLL)

    def _scan(self, now: float) -> None:
        requests = self.fake.requests
        webhook = f"/webhooks/{APPLICATION_ID}/"
        for request in requests[self._seen :]:
            parts = request.path.split("/")
            if request.path.startswith("/interactions/") and parts[-1] == "callback":
                kind = request.body.get("type") if request.status == 200 else -request.status
                self.callbacks.setdefault(parts[-2], (now, kind))
            elif request.method == "POST" and request.path.startswith(webhook):
                has_embed = isinstance(request.body, dict) and bool(request.body.get("embeds"))
                ok = request.status == 200 and has_embed
                self.followups.setdefault(parts[-1], (now, ok))
        self._seen = len(requests)


@dataclass
class StallProbe:
    """A task that sleeps 10 ms at a time and keeps the worst overshoot, in seconds."""

    worst: float = 0.0
    worst_at: float = 0.0

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(PROBE_SLEEP)
            overshoot = time.monotonic() - started - PROBE_SLEEP
            if overshoot > self.worst:
                self.worst, self.worst_at = overshoot, started


def machine() -> str:
    return (
        f"machine: {platform.machine()}, {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )


def add_playlists(spotify: FakeSpotify, track_ids: list[str], count: int, seed: int) -> list[str]:
    """``count`` playlists of 30-100 catalogue tracks each; returns their links."""
    rng = np.random.default_rng(seed)
    links = []
    for number in range(count):
        playlist_id = f"LoadPlaylist{number:010d}"
        size = int(rng.integers(30, 101))
        rows = rng.choice(len(track_ids), size=size, replace=False)
        entries = [track_entry(track_ids[row]) for row in rows.tolist()]
        spotify.add_playlist(playlist_id, f"Load {number}", entries)
        links.append(f"https://open.spotify.com/playlist/{playlist_id}")
    return links


def make_bot(
    recommender: HybridRecommender, model: Path, spotify: FakeSpotify, url: str, max_pending: int
) -> HarmonYa:
    """The bot as the tests build it; the bundle loaded once is handed to every run."""
    client = SpotifyClient(
        CLIENT_ID,
        CLIENT_SECRET,
        endpoints=SpotifyEndpoints(api_url=spotify.api_url, token_url=spotify.token_url),
    )
    service = RecommendService(
        HistoryStore.from_url(url),
        client,
        limits=ServiceLimits(max_pending=max_pending, cooldown_seconds=0.0),
        load=lambda _path: recommender,
    )
    config = BotConfig(model_dir=model, database_url=url, dev_guild_id=GUILD_ID)
    return HarmonYa(service, config, guild_ready_timeout=0.05)


def history_rows(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        (count,) = connection.execute("SELECT count(*) FROM requests").fetchone()
    return int(count)


async def wait_for_rows(database: Path, expected: int) -> int:
    """The number of history rows once there are ``expected`` (or the timeout passes)."""
    deadline = time.monotonic() + HISTORY_TIMEOUT
    rows = await asyncio.to_thread(history_rows, database)
    while rows < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        rows = await asyncio.to_thread(history_rows, database)
    return rows


def heartbeat_gap(heartbeats: list[float], start: float, end: float) -> float:
    """The longest time without a heartbeat that overlaps ``start`` to ``end``."""
    before = [beat for beat in heartbeats if beat < start][-1:]
    during = [beat for beat in heartbeats if start <= beat <= end]
    times = before + during + [end]
    return max(later - earlier for earlier, later in itertools.pairwise(times))


async def fire(
    fake: FakeDiscord, links: list[str], count: int
) -> tuple[Watcher, StallProbe, float, float]:
    """Send one /recommend per link at once; wait for every answer. Returns the timings."""
    watcher, probe = Watcher(fake), StallProbe()
    tasks = [asyncio.create_task(watcher.run()), asyncio.create_task(probe.run())]
    await asyncio.sleep(0.1)  # let the probe settle so start-up work is not counted
    probe.worst = 0.0
    started = time.monotonic()
    try:
        interactions = await asyncio.gather(
            *(
                fake.invoke(
                    "recommend", {"playlist": link, "count": count}, user_id=MEMBER_ID + number
                )
                for number, link in enumerate(links)
            )
        )
        for interaction in interactions:
            watcher.watch(interaction)
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while not watcher.done():
                await asyncio.sleep(POLL)
        finished = time.monotonic()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return watcher, probe, started, finished


async def run_once(
    recommender: HybridRecommender,
    args: argparse.Namespace,
    spotify: FakeSpotify,
    links: list[str],
) -> RunResult:
    with tempfile.TemporaryDirectory(prefix="harmonya-load-") as directory:
        database = Path(directory) / "history.sqlite3"
        bot = make_bot(recommender, args.model, spotify, f"sqlite:///{database}", args.max_pending)
        async with (
            FakeDiscord(heartbeat_interval=HEARTBEAT_INTERVAL) as fake,
            running_bot(bot, fake, timeout=READY_TIMEOUT),
        ):
            watcher, probe, started, finished = await fire(fake, links, args.count)
            deferred = [t for t, (_, kind) in watcher.callbacks.items() if kind == DEFERRED]
            rows = await wait_for_rows(database, len(deferred))
        deferrals = [
            watcher.callbacks[token][0] - interaction.created
            for token, interaction in watcher.interactions.items()
        ]
        return RunResult(
            seconds_to_last_answer=finished - started,
            slowest_deferral=max(deferrals),
            probe_stall=probe.worst,
            stall_at=probe.worst_at - started,
            heartbeat_gap=heartbeat_gap(fake.heartbeats, started, finished),
            deferred=len(deferred),
            answered=sum(1 for token in deferred if watcher.followups.get(token, (0, False))[1]),
            busy=sum(1 for _, kind in watcher.callbacks.values() if kind == CHANNEL_MESSAGE),
            history_rows=rows,
        )


def describe(label: str, result: RunResult, requests: int) -> str:
    complete = (
        result.deferred == result.answered == result.history_rows
        and result.deferred + result.busy == requests
    )
    return (
        f"{label}: last answer {result.seconds_to_last_answer:.2f} s, "
        f"slowest deferral {result.slowest_deferral * 1000:.0f} ms, "
        f"loop stall {result.probe_stall * 1000:.1f} ms (at +{result.stall_at:.2f} s), "
        f"heartbeat gap {result.heartbeat_gap:.2f} s; "
        f"deferred {result.deferred}, answered {result.answered}, busy {result.busy}, "
        f"history rows {result.history_rows} of {requests}"
        + ("" if complete else "  <-- INCOMPLETE")
    )


def summary(results: list[RunResult], requests: int) -> str:
    """Medians of the timings; the counts are summed over the runs."""

    def median(name: str) -> float:
        return statistics.median(getattr(result, name) for result in results)

    def total(name: str) -> int:
        return sum(getattr(result, name) for result in results)

    return (
        f"median of {len(results)}: last answer {median('seconds_to_last_answer'):.2f} s, "
        f"slowest deferral {median('slowest_deferral') * 1000:.0f} ms, "
        f"loop stall {median('probe_stall') * 1000:.1f} ms "
        f"(worst {max(r.probe_stall for r in results) * 1000:.1f} ms), "
        f"heartbeat gap {median('heartbeat_gap'):.2f} s; all runs: deferred {total('deferred')}, "
        f"answered {total('answered')}, busy {total('busy')}, "
        f"history rows {total('history_rows')} of {requests * len(results)}"
    )


async def run_all(recommender: HybridRecommender, args: argparse.Namespace) -> list[RunResult]:
    results = []
    with FakeSpotify() as spotify:
        links = add_playlists(spotify, recommender.catalog.track_ids, args.requests, args.seed)
        for run in range(1, args.repeat + 1):
            result = await run_once(recommender, args, spotify, links)
            print(describe(f"run {run}", result, args.requests), flush=True)
            results.append(result)
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/default"))
    parser.add_argument("--requests", type=int, default=50, help="interactions fired at once")
    parser.add_argument("--count", type=int, default=10, help="tracks asked for per request")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--max-pending",
        type=int,
        default=None,
        help="the service's queue limit (default: --requests, so none is turned away)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-level", default="ERROR")
    args = parser.parse_args()
    if args.max_pending is None:
        args.max_pending = args.requests
    if not args.model.exists():
        parser.exit(2, f"no model bundle at {args.model}: run `make demo` to train one\n")
    return args


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=args.log_level.upper())
    print(machine())

    started = time.perf_counter()
    recommender, _ = load_bundle(args.model)
    print(
        f"model: {args.model} ({len(recommender.catalog):,} tracks, loaded in "
        f"{time.perf_counter() - started:.2f} s); {args.requests} /recommend at once, "
        f"count {args.count}, max pending {args.max_pending}, "
        f"heartbeat interval {HEARTBEAT_INTERVAL} s"
    )
    results = asyncio.run(run_all(recommender, args))
    print(summary(results, args.requests))


if __name__ == "__main__":
    main()
