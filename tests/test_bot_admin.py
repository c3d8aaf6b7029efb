"""/sync end to end: only an administrator can publish the commands to every server.

The model, the fakes and the harness are those of ``test_bot``.
"""

# The fixtures ``model`` and ``spotify`` are imported, so test arguments shadow them by design.
# ruff: noqa: F811

from __future__ import annotations

from pathlib import Path

import pytest
from fakes.discord import ADMINISTRATOR, EPHEMERAL, GUILD_ID, MEMBER_PERMISSIONS
from fakes.spotify import FakeSpotify
from test_bot import (  # noqa: F401 (model and spotify are fixtures, used by name)
    WAIT,
    Model,
    model,
    spotify,
    started,
)

COMMANDS = {"recommend", "similar", "history", "forget", "sync"}


@pytest.mark.asyncio
async def test_sync_by_an_admin_publishes_every_command_globally_and_says_how_many(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    async with started(model, spotify, tmp_path) as run:
        assert run.discord.commands.get(None, []) == []  # development: the test guild only
        interaction = await run.discord.invoke(
            "sync", permissions=MEMBER_PERMISSIONS | ADMINISTRATOR
        )
        callback = await run.discord.callback(interaction, timeout=3.0)
        (answer,) = await run.discord.followups(interaction, timeout=WAIT)
        published = run.discord.commands[None]
        in_guild = run.discord.commands[GUILD_ID]

    assert callback.body["type"] == 5 and callback.body["data"]["flags"] & EPHEMERAL
    assert answer.body["content"].startswith(f"Synced {len(COMMANDS)} commands to every server")
    assert answer.body["flags"] & EPHEMERAL
    assert {command["name"] for command in published} == COMMANDS
    (sync,) = [command for command in in_guild if command["name"] == "sync"]
    assert int(sync["default_member_permissions"]) == ADMINISTRATOR


@pytest.mark.asyncio
async def test_sync_is_hidden_from_members_who_are_not_admins(
    model: Model, spotify: FakeSpotify, tmp_path: Path
) -> None:
    async with started(model, spotify, tmp_path) as run:
        with pytest.raises(PermissionError):
            await run.discord.invoke("sync", permissions=MEMBER_PERMISSIONS)

    assert run.discord.commands.get(None, []) == []
