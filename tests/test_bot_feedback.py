"""Marking tracks under an answer end to end: the real discord.py bot against the fake Discord.

The model, the fakes and the harness are those of ``test_bot``; /recommend of the group-0
playlist answers with the same ten group-0 tracks each time, unless the member disliked some.
"""

# The fixtures ``model`` and ``spotify`` are imported, so test arguments shadow them by design.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fakes.discord import EPHEMERAL, MEMBER_ID, FakeDiscord
from fakes.spotify import FakeSpotify
from sqlalchemy import create_engine, select
from test_bot import (  # noqa: F401 (model and spotify are fixtures, used by name)
    OTHER_MEMBER,
    PLAYLIST_LINK,
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

from bot.cogs.recommend import SAVE_FAILED
from bot.storage import StorageError
from bot.storage.models import Feedback

LIKE = "harmonya:mark:like"
DISLIKE = "harmonya:mark:dislike"


async def recommend(run: Harness, count: int = 10) -> tuple[int, list[str]]:
    """Run /recommend of the group-0 playlist; the answer's message id and its first page's ids."""
    interaction = await run.discord.invoke("recommend", {"playlist": PLAYLIST_LINK, "count": count})
    body = await answer_of(run.discord, interaction)
    assert interaction.message_id is not None
    return interaction.message_id, linked_ids(body["embeds"][0])


async def mark(
    fake: FakeDiscord, message_id: int, menu: str, values: list[str], user_id: int = MEMBER_ID
) -> dict[str, Any]:
    """Pick ``values`` in one of the answer's menus; the bot's private note about it."""
    click = await fake.click(message_id, menu, values=values, user_id=user_id)
    callback = await fake.callback(click, timeout=3.0)
    assert callback.body["type"] == 7
    (note,) = await fake.followups(click, timeout=WAIT)
    assert note.status == 200 and note.body["flags"] & EPHEMERAL
    body: dict[str, Any] = note.body
    return body


def menus(fake: FakeDiscord, message_id: int) -> dict[str, list[str]]:
    """The answer's components by custom id: a menu's offered track ids, [] for a button."""
    found = {}
    for row in fake.messages[message_id]["components"]:
        for component in row["components"]:
            options = component.get("options", [])
            found[component["custom_id"]] = [option["value"] for option in options]
    return found


def feedback(tmp_path: Path) -> dict[tuple[int, str], bool]:
    """Every feedback row in the database ``started`` made in ``tmp_path``."""
    engine = create_engine(f"sqlite:///{tmp_path / 'history.sqlite3'}")
    query = select(Feedback.member_id, Feedback.track_id, Feedback.liked)
    try:
        with engine.connect() as connection:
            return {(member, track): liked for member, track, liked in connection.execute(query)}
    finally:
        engine.dispose()


@pytest.mark.asyncio
async def test_a_disliked_track_is_stored_and_never_recommended_again(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    async with started(model, spotify, tmp_path) as run:
        message_id, first = await recommend(run)
        offered = menus(run.discord, message_id)
        note = await mark(run.discord, message_id, DISLIKE, [first[0]])
        stored = feedback(tmp_path)
        _, second = await recommend(run)

    assert offered == {LIKE: first, DISLIKE: first}
    assert stored == {(MEMBER_ID, first[0]): False}
    assert "won't recommend" in note["content"] and f"Song {first[0]}" in note["content"]
    assert len(second) == 10 and first[0] not in second
    assert set(first[1:]) <= set(second)


@pytest.mark.asyncio
async def test_liked_tracks_are_stored_as_liked_and_a_later_dislike_replaces_a_like(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    async with started(model, spotify, tmp_path) as run:
        message_id, ids = await recommend(run)
        note = await mark(run.discord, message_id, LIKE, ids[:2])
        liked = feedback(tmp_path)
        await mark(run.discord, message_id, DISLIKE, [ids[1]])
        changed = feedback(tmp_path)

    assert liked == {(MEMBER_ID, ids[0]): True, (MEMBER_ID, ids[1]): True}
    assert note["content"].startswith("Noted, you like these:")
    assert changed == {(MEMBER_ID, ids[0]): True, (MEMBER_ID, ids[1]): False}


@pytest.mark.asyncio
async def test_another_members_mark_is_refused_privately_and_stores_nothing(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    async with started(model, spotify, tmp_path) as run:
        message_id, ids = await recommend(run)
        click = await run.discord.click(message_id, DISLIKE, values=[ids[0]], user_id=OTHER_MEMBER)
        refused = await run.discord.callback(click, timeout=3.0)
        await asyncio.sleep(0.2)  # a wrongly accepted mark would be stored by now
        stored = feedback(tmp_path)

    assert refused.body["type"] == 4 and refused.body["data"]["flags"] & EPHEMERAL
    assert "Only the member who asked" in refused.body["data"]["content"]
    assert stored == {}


@pytest.mark.asyncio
async def test_menus_follow_the_page_and_stay_within_discords_component_limits(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    add_playlist(spotify, model.world)
    async with started(model, spotify, tmp_path) as run:
        message_id, first = await recommend(run, count=25)
        turned = await run.discord.click(message_id, "harmonya:page:next")
        assert (await run.discord.callback(turned, timeout=3.0)).body["type"] == 7
        second = linked_ids(run.discord.messages[message_id]["embeds"][0])
        offered = menus(run.discord, message_id)
        await mark(run.discord, message_id, DISLIKE, second[-1:])
        stored = feedback(tmp_path)

    assert offered == {
        "harmonya:page:previous": [],
        "harmonya:page:next": [],
        LIKE: second,
        DISLIKE: second,
    }
    assert not set(first) & set(second)
    assert stored == {(MEMBER_ID, second[-1]): False}


@pytest.mark.asyncio
async def test_a_storage_failure_is_reported_privately_and_the_answer_keeps_working(
    model: Model, spotify: FakeSpotify, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(member_id: int, track_id: str, liked: bool) -> None:
        raise StorageError("set feedback failed: disk I/O error")

    add_playlist(spotify, model.world)
    async with started(model, spotify, tmp_path) as run:
        message_id, ids = await recommend(run)
        monkeypatch.setattr(run.store, "set_feedback", broken)
        failed = await mark(run.discord, message_id, DISLIKE, [ids[0]])
        monkeypatch.undo()
        again = await mark(run.discord, message_id, DISLIKE, [ids[0]])
        stored = feedback(tmp_path)

    assert failed["content"] == SAVE_FAILED
    assert "won't recommend" in again["content"]
    assert stored == {(MEMBER_ID, ids[0]): False}
