"""Failed /recommend and /similar requests are stored as history rows with their error.

The model, the fakes and the harness are those of ``test_bot``.
"""

# The fixtures ``model`` and ``spotify`` are imported, so test arguments shadow them by design.
# ruff: noqa: F811

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fakes.discord import EPHEMERAL, GUILD_ID, Attachment
from fakes.spotify import FakeSpotify
from test_bot import (  # noqa: F401 (model and spotify are fixtures, used by name)
    OTHER_MEMBER,
    PLAYLIST_LINK,
    UNKNOWN_TRACK,
    Model,
    add_playlist,
    answer_of,
    linked_ids,
    model,
    spotify,
    started,
)

from bot.cogs.history import history_embed
from bot.storage import RequestKind, RequestStatus


@pytest.mark.asyncio
async def test_spotify_refusing_a_playlist_stores_one_error_row_with_the_reply(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    spotify.fail(403, target="playlist")
    async with started(model, spotify, tmp_path) as run:
        interaction = await run.discord.invoke("recommend", {"playlist": PLAYLIST_LINK})
        body = await answer_of(run.discord, interaction)
        stored = await run.history(1)

    (row,) = stored
    assert body["flags"] & EPHEMERAL
    assert row.kind is RequestKind.RECOMMEND and row.input_text == PLAYLIST_LINK
    assert row.status is RequestStatus.ERROR
    assert row.error == body["content"] and "development mode" in row.error
    assert row.tracks == () and (row.used, row.total) == (0, 0)
    assert "failed: " in (history_embed(stored, lambda _: None).description or "")


@pytest.mark.asyncio
async def test_a_bad_link_and_an_unknown_track_are_stored_as_errors(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    unknown = f"https://open.spotify.com/track/{UNKNOWN_TRACK}"
    async with started(model, spotify, tmp_path) as run:
        typo = await run.discord.invoke("recommend", {"playlist": "https://example.com/x"})
        mistaken = await answer_of(run.discord, typo)
        similar = await run.discord.invoke("similar", {"track": unknown})
        refused = await answer_of(run.discord, similar)
        stored = await run.history(2)

    by_kind = {row.kind: row for row in stored}
    assert by_kind[RequestKind.RECOMMEND].error == mistaken["content"]
    assert by_kind[RequestKind.RECOMMEND].input_text == "https://example.com/x"
    assert by_kind[RequestKind.SIMILAR].error == refused["content"]
    assert by_kind[RequestKind.SIMILAR].input_text == unknown
    assert {row.status for row in stored} == {RequestStatus.ERROR}


@pytest.mark.asyncio
async def test_busy_and_cooldown_refusals_are_not_stored(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    async with started(model, spotify, tmp_path, max_pending=1, cooldown_seconds=60.0) as run:
        run.bot.service.model_lane.submit(time.sleep, 0.5)  # a slow model lane
        first = await run.discord.invoke("recommend", {"playlist": PLAYLIST_LINK})
        assert (await run.discord.callback(first, timeout=3.0)).body["type"] == 5
        busy = await run.discord.invoke(
            "recommend", {"playlist": PLAYLIST_LINK}, user_id=OTHER_MEMBER
        )
        assert "busy" in (await run.discord.callback(busy, timeout=3.0)).body["data"]["content"]
        answered = (await run.discord.followups(first, timeout=10.0))[0]
        again = await run.discord.invoke("recommend", {"playlist": PLAYLIST_LINK})
        waiting = await run.discord.callback(again, timeout=3.0)
        mine = await run.history(1)
        others = run.store.history(OTHER_MEMBER, GUILD_ID)

    assert len(linked_ids(answered.body["embeds"][0])) == 10
    assert "Please wait" in waiting.body["data"]["content"]
    assert [row.status for row in mine] == [RequestStatus.OK]
    assert others == []


@pytest.mark.asyncio
async def test_a_csv_header_past_the_field_limit_is_explained_stored_and_costs_no_cooldown(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    wide = Attachment("wide.csv", ("id;" * 50_000 + "\n" + UNKNOWN_TRACK + "\n").encode())
    async with started(model, spotify, tmp_path, cooldown_seconds=60.0) as run:
        upload = await run.discord.invoke("recommend", {"file": wide})
        refused = await answer_of(run.discord, upload)
        (row,) = await run.history(1)
        again = await run.discord.invoke("recommend", {"playlist": PLAYLIST_LINK})
        retried = await run.discord.callback(again, timeout=3.0)

    assert refused["flags"] & EPHEMERAL
    assert refused["content"].startswith("The CSV file is malformed")
    assert row.status is RequestStatus.ERROR and row.error == refused["content"]
    assert row.input_text == "file: wide.csv"
    assert retried.body["type"] == 5  # deferred to answer, not refused by a cooldown
