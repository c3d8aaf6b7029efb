"""/history and /forget end to end: the real discord.py bot against the fake Discord.

The model, the fakes and the harness are those of ``test_bot``; a /recommend of group-0 tracks
gives each test a stored request whose tracks are all known.
"""

# The fixtures ``model`` and ``spotify`` are imported, so test arguments shadow them by design.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakes.discord import EPHEMERAL, GUILD_ID, MEMBER_ID, FakeDiscord, Interaction
from fakes.spotify import FakeSpotify
from sqlalchemy import create_engine, func, select
from test_bot import (  # noqa: F401 (model and spotify are fixtures, used by name)
    OTHER_MEMBER,
    PLAYLIST_LINK,
    TRACK_LINK,
    WAIT,
    Harness,
    Model,
    add_playlist,
    answer_of,
    linked_ids,
    model,
    spotify,
    started,
)

from bot.cogs.history import MAX_HISTORY, forgotten_text, history_embed
from bot.storage import ForgottenRows, RequestKind, StoredRequest, TrackEntry
from bot.storage.models import Feedback, Member, RecommendedTrack, Request


async def recommended(run: Harness) -> list[str]:
    """Run one /recommend of the group-0 playlist; the track ids it answered with."""
    interaction = await run.discord.invoke("recommend", {"playlist": PLAYLIST_LINK})
    ids = linked_ids((await answer_of(run.discord, interaction))["embeds"][0])
    await run.history(1)
    return ids


async def private_answer(fake: FakeDiscord, interaction: Interaction) -> dict[str, Any]:
    body = await answer_of(fake, interaction)
    assert body["flags"] & EPHEMERAL
    return body


async def ask_to_forget(run: Harness, user_id: int = MEMBER_ID) -> tuple[int, dict[str, str]]:
    """Run /forget; the prompt's message id and its buttons' custom ids by label."""
    interaction = await run.discord.invoke("forget", user_id=user_id)
    callback = await run.discord.callback(interaction, timeout=3.0)
    assert callback.body["type"] == 4 and callback.body["data"]["flags"] & EPHEMERAL
    assert interaction.message_id is not None
    buttons = run.discord.messages[interaction.message_id]["components"][0]["components"]
    return interaction.message_id, {b["label"]: b["custom_id"] for b in buttons}


async def press(run: Harness, message_id: int, custom_id: str, user_id: int = MEMBER_ID) -> None:
    click = await run.discord.click(message_id, custom_id, user_id=user_id)
    await run.discord.callback(click, timeout=3.0)


async def message_settled(run: Harness, message_id: int) -> dict[str, Any]:
    """The prompt once its buttons are gone (the bot has answered the press)."""
    async with asyncio.timeout(WAIT):
        while run.discord.messages[message_id]["components"]:
            await asyncio.sleep(0.02)
    return run.discord.messages[message_id]


def count_rows(tmp_path: Path, member_id: int = MEMBER_ID) -> dict[str, int]:
    """The member's rows in each table of the database ``started`` made in ``tmp_path``."""
    engine = create_engine(f"sqlite:///{tmp_path / 'history.sqlite3'}")
    queries = {
        "members": select(func.count()).select_from(Member).where(Member.id == member_id),
        "requests": select(func.count()).where(Request.member_id == member_id),
        "tracks": select(func.count())
        .select_from(RecommendedTrack)
        .join(Request)
        .where(Request.member_id == member_id),
        "feedback": select(func.count()).where(Feedback.member_id == member_id),
    }
    try:
        with engine.connect() as connection:
            return {name: connection.scalar(query) or 0 for name, query in queries.items()}
    finally:
        engine.dispose()


@pytest.mark.asyncio
async def test_history_shows_the_latest_request_with_its_first_tracks_privately(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    async with started(model, spotify, tmp_path) as run:
        given = await recommended(run)
        interaction = await run.discord.invoke("history")
        body = await private_answer(run.discord, interaction)

    embed = body["embeds"][0]
    assert embed["title"] == "Your latest request"
    assert "/recommend" in embed["description"]
    assert TRACK_LINK.findall(embed["description"]) == given[:3]
    assert f"Artist g0 - Song {given[0]}" in embed["description"]
    assert "and 7 more" in embed["description"]


@pytest.mark.asyncio
async def test_forget_confirmed_deletes_every_row_and_history_is_then_empty(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    async with started(model, spotify, tmp_path) as run:
        await recommended(run)
        await asyncio.to_thread(run.store.set_feedback, MEMBER_ID, "a" * 22, False)
        before = count_rows(tmp_path)
        message_id, buttons = await ask_to_forget(run)
        await press(run, message_id, buttons["Delete everything"])
        done = await message_settled(run, message_id)
        after = count_rows(tmp_path)
        interaction = await run.discord.invoke("history")
        empty = await private_answer(run.discord, interaction)

    assert before == {"members": 1, "requests": 1, "tracks": 10, "feedback": 1}
    assert after == {"members": 0, "requests": 0, "tracks": 0, "feedback": 0}
    assert done["content"] == forgotten_text(ForgottenRows(1, 1, 10, 1))
    assert "no requests here yet" in empty["content"] and not empty.get("embeds")


@pytest.mark.asyncio
async def test_forget_cancelled_keeps_everything(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    async with started(model, spotify, tmp_path) as run:
        await recommended(run)
        message_id, buttons = await ask_to_forget(run)
        await press(run, message_id, buttons["Cancel"])
        cancelled = await message_settled(run, message_id)
        after = count_rows(tmp_path)

    assert cancelled["content"] == "Cancelled: I kept everything."
    assert after == {"members": 1, "requests": 1, "tracks": 10, "feedback": 0}


@pytest.mark.asyncio
async def test_another_member_cannot_confirm_someone_elses_forget(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    async with started(model, spotify, tmp_path) as run:
        await recommended(run)
        message_id, buttons = await ask_to_forget(run)
        click = await run.discord.click(
            message_id, buttons["Delete everything"], user_id=OTHER_MEMBER
        )
        refused = await run.discord.callback(click, timeout=3.0)
        await asyncio.sleep(0.2)  # a wrongly accepted press would delete by now
        after = count_rows(tmp_path)
        prompt = run.discord.messages[message_id]

    assert refused.body["type"] == 4 and refused.body["data"]["flags"] & EPHEMERAL
    assert "Only the member who asked" in refused.body["data"]["content"]
    assert after["requests"] == 1 and after["tracks"] == 10
    assert prompt["components"]


def stored(number: int, tracks: int) -> StoredRequest:
    return StoredRequest(
        id=number,
        created_at=datetime(2024, 5, 1, tzinfo=UTC),
        member_id=MEMBER_ID,
        guild_id=GUILD_ID,
        channel_id=None,
        kind=RequestKind.SIMILAR,
        input_text="[x](y) *" + "n" * 500,
        tracks=tuple(TrackEntry(f"t{n:021d}", 1.0) for n in range(tracks)),
    )


def test_history_embed_stays_within_discords_limits_whatever_the_names() -> None:
    requests = [stored(n, 50) for n in range(MAX_HISTORY)]

    embed = history_embed(requests, lambda track_id: "[L](M)" + "L" * 500)

    assert len(embed.description or "") <= 4096 and len(embed) <= 6000
    assert "[x](y)" not in (embed.description or "")
    assert all(f"**{n}.** /similar" in (embed.description or "") for n in range(1, 11))
    assert len(TRACK_LINK.findall(embed.description or "")) >= MAX_HISTORY


def test_history_embed_leaves_out_old_requests_rather_than_pass_the_limit() -> None:
    requests = [stored(n, 50) for n in range(40)]

    embed = history_embed(requests, lambda track_id: "[L](M)" + "L" * 500)

    assert len(embed.description or "") <= 4096 and len(embed) <= 6000
    assert (embed.description or "").endswith("older requests not shown.")
