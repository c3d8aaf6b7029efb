"""The bot end to end: the real discord.py and spotipy against the fake Discord and Spotify.

The model is small and its right answers obvious: the synthetic world's eight groups of tracks
share playlists only inside a group and their audio features cluster by group. Its content
tower is built for real; its collaborative tower gets group vectors instead of TensorFlow
training, which would cost this file 20 s for nothing the bot does differently.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from annoy import AnnoyIndex
from conftest import World, write_world
from fakes.discord import (
    EPHEMERAL,
    GUILD_ID,
    MEMBER_ID,
    Attachment,
    FakeDiscord,
    Interaction,
    point_discord_py_at,
    running_bot,
)
from fakes.spotify import (
    CLIENT_ID,
    CLIENT_SECRET,
    REMOVED_ENTRY,
    FakeSpotify,
    episode_entry,
    local_entry,
    running,
    track_entry,
)

from bot.answers import Counts, footer_text, paginate
from bot.bot import BotConfig, HarmonYa, _serve
from bot.service import RecommendService, ServiceLimits
from bot.spotify import SpotifyClient, SpotifyEndpoints, SpotifyLimits
from bot.storage import HistoryStore, RequestKind, StoredRequest
from recommender.bundle import save_bundle
from recommender.collab import COLLAB_METRIC, CollabModel, CollabSettings
from recommender.data import read_interactions
from recommender.features import read_feature_tables
from recommender.hybrid import HybridRecommender, Recommendation
from recommender.train import TrainSettings, build_catalog, build_content, popularity

PLAYLIST = "PlaylistBBBBBBBBBBBBBB"
PLAYLIST_LINK = f"https://open.spotify.com/playlist/{PLAYLIST}?si=abc"
UNKNOWN_TRACK = "zzzzzzzzzzzzzzzzzzzzzz"
TRACK_LINK = re.compile(r"\(https://open\.spotify\.com/track/([0-9A-Za-z]{22})\)")
OTHER_MEMBER = MEMBER_ID + 1
WAIT = 10.0


@dataclass(frozen=True)
class Model:
    root: Path
    world: World


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """A bundle built from the synthetic world: real content tower, group collab vectors."""
    world = write_world(tmp_path_factory.mktemp("bot-world") / "data")
    interactions = read_interactions(world.directory)
    features = read_feature_tables(world.directory)
    settings = TrainSettings(content_trees=10)
    catalog = build_catalog(interactions, features)
    content, scaler = build_content(catalog, features, interactions, settings)

    rng = np.random.default_rng(3)
    rows = np.arange(interactions.n_tracks, dtype=np.int64)
    vectors = rng.normal(0, 0.05, size=(len(rows), len(world.groups))).astype(np.float32)
    for row in rows.tolist():
        group = world.group_of(catalog.track_ids[row])
        if group is not None:
            vectors[row, group] += 1.0
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = AnnoyIndex(vectors.shape[1], COLLAB_METRIC)
    for position, vector in enumerate(vectors):
        index.add_item(position, vector)
    index.build(10, n_jobs=1)
    collab_settings = CollabSettings(dimension=vectors.shape[1])
    collab = CollabModel(rows, vectors, vectors, index, len(catalog), collab_settings)

    recommender = HybridRecommender(catalog, collab, content, popularity(interactions))
    root = tmp_path_factory.mktemp("bot-model") / "model"
    save_bundle(recommender, scaler, root, training={"synthetic": True})
    return Model(root, world)


@pytest.fixture
def spotify() -> Iterator[FakeSpotify]:
    yield from running()


@dataclass
class Harness:
    discord: FakeDiscord
    spotify: FakeSpotify
    bot: HarmonYa
    store: HistoryStore

    async def history(self, count: int, member_id: int = MEMBER_ID) -> list[StoredRequest]:
        """The member's stored requests once there are ``count`` (waits a bounded time)."""
        async with asyncio.timeout(WAIT):
            while True:
                rows = await asyncio.to_thread(self.store.history, member_id, GUILD_ID)
                if len(rows) >= count:
                    return rows
                await asyncio.sleep(0.05)


def make_bot(model: Model, spotify: FakeSpotify, url: str, **limits: Any) -> HarmonYa:
    client = SpotifyClient(
        CLIENT_ID,
        CLIENT_SECRET,
        endpoints=SpotifyEndpoints(api_url=spotify.api_url, token_url=spotify.token_url),
        limits=SpotifyLimits(request_timeout=2.0, call_budget=5.0, retries=0),
    )
    service = RecommendService(
        HistoryStore.from_url(url),
        client,
        limits=ServiceLimits(**{"cooldown_seconds": 0.0, **limits}),
    )
    config = BotConfig(model_dir=model.root, database_url=url, dev_guild_id=GUILD_ID)
    return HarmonYa(service, config, guild_ready_timeout=0.05)


@asynccontextmanager
async def started(
    model: Model, spotify: FakeSpotify, tmp_path: Path, **limits: Any
) -> AsyncIterator[Harness]:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    bot = make_bot(model, spotify, url, **limits)
    async with FakeDiscord(heartbeat_interval=0.5) as fake, running_bot(bot, fake, timeout=WAIT):
        yield Harness(fake, spotify, bot, bot.service.history)


def seeds(world: World) -> list[str]:
    return world.groups[0][:6]


def add_playlist(spotify: FakeSpotify, world: World) -> None:
    """Six group-0 tracks, a local file, an episode, a removed track and an unknown track."""
    entries = [track_entry(track_id) for track_id in seeds(world)]
    entries += [local_entry("demo"), episode_entry("e" * 22), REMOVED_ENTRY]
    entries.append(track_entry(UNKNOWN_TRACK))
    spotify.add_playlist(PLAYLIST, "Group zero", entries)


async def answer_of(fake: FakeDiscord, interaction: Interaction) -> dict[str, Any]:
    """The first follow-up's body, after checking the deferral came within Discord's 3 s."""
    callback = await fake.callback(interaction, timeout=3.0)
    assert callback.status == 200 and callback.body["type"] == 5
    followup = (await fake.followups(interaction, timeout=WAIT))[0]
    assert followup.status == 200, followup.response
    body: dict[str, Any] = followup.body
    return body


def linked_ids(embed: dict[str, Any]) -> list[str]:
    return TRACK_LINK.findall(embed["description"])


@pytest.mark.asyncio
async def test_recommend_defers_then_answers_with_linked_tracks_counts_and_history(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    async with started(model, spotify, tmp_path) as run:
        interaction = await run.discord.invoke("recommend", {"playlist": PLAYLIST_LINK})
        body = await answer_of(run.discord, interaction)
        stored = await run.history(1)

    embed = body["embeds"][0]
    ids = linked_ids(embed)
    assert len(ids) == 10
    assert not set(ids) & set(seeds(model.world))
    assert all(model.world.group_of(track_id) == 0 for track_id in ids)
    assert "because you have Artist g0 - Song g0t" in embed["description"]
    assert embed["title"] == "Tracks for Group zero"
    assert embed["footer"]["text"] == (
        "used 6 of 10, skipped 3 (local files, episodes, removed), unknown 1"
    )
    assert not body.get("flags", 0) & EPHEMERAL

    (row,) = stored
    assert row.kind is RequestKind.RECOMMEND and row.input_text == PLAYLIST_LINK
    assert (row.used, row.total, row.skipped, row.unknown) == (6, 10, 3, 1)
    assert [track.track_id for track in row.tracks] == ids


@pytest.mark.asyncio
async def test_recommend_when_spotify_refuses_explains_privately_and_offers_uploads(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    spotify.fail(403, target="playlist")
    async with started(model, spotify, tmp_path) as run:
        interaction = await run.discord.invoke("recommend", {"playlist": PLAYLIST_LINK})
        body = await answer_of(run.discord, interaction)

    assert body["flags"] & EPHEMERAL
    assert "development mode" in body["content"]
    assert "track links" in body["content"] and "`file`" in body["content"]
    assert not body.get("embeds")


@pytest.mark.asyncio
async def test_recommend_reads_an_uploaded_csv_without_asking_spotify(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    group = model.world.groups[5]
    lines = ["Track URI,Track Name"] + [f"spotify:track:{t},Song" for t in group[:5]]
    lines.append("spotify:local:Someone:Somewhere:demo:180,Demo")
    upload = Attachment("export.csv", "\n".join(lines).encode(), "text/csv")
    async with started(model, spotify, tmp_path) as run:
        interaction = await run.discord.invoke("recommend", {"file": upload, "count": 5})
        body = await answer_of(run.discord, interaction)
        (row,) = await run.history(1)

    ids = linked_ids(body["embeds"][0])
    assert len(ids) == 5 and not set(ids) & set(group[:5])
    assert all(model.world.group_of(track_id) == 5 for track_id in ids)
    assert body["embeds"][0]["footer"]["text"].startswith("used 5 of 6, skipped 1 ")
    assert row.input_text == "file: export.csv"
    assert spotify.api_paths == [] and spotify.token_calls == 0


@pytest.mark.asyncio
async def test_similar_autocomplete_offers_catalogue_names_without_asking_spotify(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    async with started(model, spotify, tmp_path) as run:
        asked = await run.discord.autocomplete("similar", {"track": "song g3"}, focused="track")
        started_at = asked.created
        answer = await run.discord.callback(asked, timeout=3.0)
        took = time.monotonic() - started_at
        empty = await run.discord.autocomplete("similar", {"track": ""}, focused="track")
        popular = await run.discord.callback(empty, timeout=3.0)

    choices = answer.body["data"]["choices"]
    assert answer.status == 200 and len(choices) == 25 and took < 1.0
    assert all(c["name"] == f"Artist g3 - Song {c['value']}" for c in choices)
    assert all(c["value"] in model.world.groups[3] for c in choices)
    assert 0 < len(popular.body["data"]["choices"]) <= 25
    assert spotify.api_paths == [] and spotify.token_calls == 0


@pytest.mark.asyncio
async def test_similar_answers_with_sound_alikes_of_a_linked_or_named_track(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    track = model.world.groups[3][7]
    async with started(model, spotify, tmp_path) as run:
        by_link = await run.discord.invoke(
            "similar", {"track": f"https://open.spotify.com/track/{track}", "count": 5}
        )
        linked = await answer_of(run.discord, by_link)
        by_name = await run.discord.invoke("similar", {"track": f"song {track}"})
        named = await answer_of(run.discord, by_name)
        stored = await run.history(2)

    ids = linked_ids(linked["embeds"][0])
    assert len(ids) == 5 and track not in ids
    assert all(model.world.group_of(track_id) == 3 for track_id in ids)
    assert linked["embeds"][0]["title"] == f"Sounds like Artist g3 - Song {track}"
    assert named["embeds"][0]["title"] == linked["embeds"][0]["title"]
    assert len(linked_ids(named["embeds"][0])) == 10
    assert {row.kind for row in stored} == {RequestKind.SIMILAR}


@pytest.mark.asyncio
async def test_a_request_past_the_queue_is_told_the_bot_is_busy(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    async with started(model, spotify, tmp_path, max_pending=1) as run:
        run.bot.service.model_lane.submit(time.sleep, 1.0)  # a slow model lane
        first = await run.discord.invoke("recommend", {"playlist": PLAYLIST_LINK})
        assert (await run.discord.callback(first, timeout=3.0)).body["type"] == 5
        second = await run.discord.invoke(
            "recommend", {"playlist": PLAYLIST_LINK}, user_id=OTHER_MEMBER
        )
        refused = await run.discord.callback(second, timeout=3.0)
        answered = (await run.discord.followups(first, timeout=WAIT))[0]

    assert refused.body["type"] == 4
    assert refused.body["data"]["flags"] & EPHEMERAL
    assert "busy" in refused.body["data"]["content"]
    assert len(linked_ids(answered.body["embeds"][0])) == 10


@pytest.mark.asyncio
async def test_cooldown_refuses_a_second_request_but_a_bad_link_costs_none(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    async with started(model, spotify, tmp_path, cooldown_seconds=60.0) as run:
        typo = await run.discord.invoke("recommend", {"playlist": "https://example.com/x"})
        mistaken = await answer_of(run.discord, typo)
        first = await run.discord.invoke("recommend", {"playlist": PLAYLIST_LINK})
        await answer_of(run.discord, first)
        again = await run.discord.invoke("recommend", {"playlist": PLAYLIST_LINK})
        refused = await run.discord.callback(again, timeout=3.0)

    assert mistaken["content"] == "That is not a playlist link."
    assert mistaken["flags"] & EPHEMERAL
    assert refused.body["type"] == 4 and "Please wait" in refused.body["data"]["content"]


@pytest.mark.asyncio
async def test_long_answers_page_with_buttons_only_the_asker_can_turn(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    async with started(model, spotify, tmp_path) as run:
        interaction = await run.discord.invoke(
            "recommend", {"playlist": PLAYLIST_LINK, "count": 25}
        )
        body = await answer_of(run.discord, interaction)
        message_id = interaction.message_id
        assert message_id is not None
        turned = await run.discord.click(message_id, "harmonya:page:next")
        assert (await run.discord.callback(turned)).body["type"] == 7
        page_two = run.discord.messages[message_id]["embeds"][0]
        stranger = await run.discord.click(message_id, "harmonya:page:next", user_id=OTHER_MEMBER)
        refused = await run.discord.callback(stranger)

    first_ids, second_ids = linked_ids(body["embeds"][0]), linked_ids(page_two)
    assert len(first_ids) == len(second_ids) == 10 and not set(first_ids) & set(second_ids)
    assert body["embeds"][0]["footer"]["text"].endswith("page 1 of 3")
    assert page_two["footer"]["text"].endswith("page 2 of 3")
    assert refused.body["data"]["flags"] & EPHEMERAL


def item(number: int, name: str) -> Recommendation:
    track_id = f"t{number:021d}"
    return Recommendation(track_id, name, "A" * 300, 1.0, ("collaborative",), track_id)


def test_pages_stay_within_discords_embed_limits_whatever_the_names() -> None:
    items = [item(n, "[x](y) *" + "n" * 500) for n in range(50)]
    labels = {i.track_id: "L" * 500 for i in items}
    footer = footer_text(Counts(5000, 10000, 3, 2, capped=True))

    pages = [page.embed for page in paginate("T" * 400, items, labels, footer=footer)]

    assert sum(len(TRACK_LINK.findall(p.description or "")) for p in pages) == 50
    for page in pages:
        assert len(page.title or "") <= 256 and len(page.description or "") <= 4096
        assert len(page) <= 6000
        assert "[x](y)" not in (page.description or "")


def test_footer_counts_what_was_used_skipped_and_unknown() -> None:
    text = footer_text(Counts(6, 10, 3, 1))
    assert text == "used 6 of 10, skipped 3 (local files, episodes, removed), unknown 1"


@pytest.mark.asyncio
async def test_sigterm_lets_the_answer_in_progress_finish_then_stops(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    bot = make_bot(model, spotify, url)

    async with FakeDiscord(heartbeat_interval=0.5) as fake:
        with point_discord_py_at(fake):
            serving = asyncio.create_task(_serve(bot, fake.token))
            async with asyncio.timeout(WAIT):
                while not bot.is_ready():
                    await asyncio.sleep(0.02)
            bot.service.model_lane.submit(time.sleep, 0.5)  # an answer still being worked on
            interaction = await fake.invoke("recommend", {"playlist": PLAYLIST_LINK})
            await fake.callback(interaction, timeout=3.0)
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(WAIT):
                await serving
            answered = await fake.followups(interaction, timeout=0.1)

    assert bot.is_closed()
    assert len(linked_ids(answered[0].body["embeds"][0])) == 10
    assert len(HistoryStore.from_url(url).history(MEMBER_ID, GUILD_ID)) == 1
