"""The real discord.py client against the fake Discord: handshake, sync, interactions, limits."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import discord
import pytest
import pytest_asyncio
from discord import app_commands
from fakes.discord import (
    DEFAULT_TIMEOUT,
    GUILD_ID,
    LOADING,
    Attachment,
    FakeDiscord,
    running_bot,
)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(heartbeat_interval=0.5) as server:
        yield server


GENRES = ["ambient", "bossa nova", "drum and bass", "dub", "jazz", "techno"]


class PingBot(discord.Client):
    """A minimal bot: /ping defers then follows up, /genre autocompletes, /upload reads a file."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.guild = discord.Object(GUILD_ID)
        self.clicks: list[str] = []
        self.tree.add_command(ping, guild=self.guild)
        self.tree.add_command(genre, guild=self.guild)
        self.tree.add_command(upload, guild=self.guild)
        self.tree.add_command(shout, guild=self.guild)
        self.errors: list[Exception] = []
        self.tree.on_error = self.record_error  # type: ignore[method-assign]

    async def record_error(self, interaction: discord.Interaction, error: Exception) -> None:
        self.errors.append(error)

    async def setup_hook(self) -> None:
        await self.tree.sync(guild=self.guild)


@app_commands.command(name="ping", description="Check the bot answers.")
async def ping(interaction: discord.Interaction) -> None:
    await interaction.response.defer(thinking=True)
    await asyncio.sleep(0)
    await interaction.followup.send("pong", view=Vote())


class Vote(discord.ui.View):
    @discord.ui.button(label="Like", custom_id="vote:like")
    async def like(self, interaction: discord.Interaction, button: discord.ui.Button[Vote]) -> None:
        interaction.client.clicks.append("like")  # type: ignore[attr-defined]
        await interaction.response.edit_message(content="liked", view=None)


@app_commands.command(name="genre", description="Pick a genre.")
@app_commands.describe(name="The genre to pick", count="How many tracks")
async def genre(interaction: discord.Interaction, name: str, count: int = 5) -> None:
    await interaction.response.send_message(f"{name} x{count}", ephemeral=True)


@genre.autocomplete("name")
async def genre_names(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=g, value=g) for g in GENRES if current in g]


@app_commands.command(name="upload", description="Count the lines of a file.")
@app_commands.describe(file="A text file")
async def upload(interaction: discord.Interaction, file: discord.Attachment) -> None:
    lines = (await file.read()).decode().splitlines()
    await interaction.response.send_message(f"{file.filename}: {len(lines)} lines")


@app_commands.command(name="shout", description="Answer with more than Discord allows.")
async def shout(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("a" * 2001)


@pytest.mark.asyncio
async def test_bot_connects_and_syncs_to_the_test_guild(fake: FakeDiscord) -> None:
    bot = PingBot()
    async with running_bot(bot, fake):
        assert bot.is_ready()
        assert bot.user is not None and bot.user.name == "HarmonYa"
        assert [g.id for g in bot.guilds] == [GUILD_ID]

        sync = await fake.wait_for_request(lambda r: r.method == "PUT")
        assert sync.path.endswith(f"/guilds/{GUILD_ID}/commands")
        assert sorted(c["name"] for c in sync.body) == ["genre", "ping", "shout", "upload"]
        assert fake.identify is not None
        assert fake.identify["token"] == fake.token
        assert fake.gateway_queries[0]["compress"] == "zlib-stream"
    assert bot.is_closed()


@pytest.mark.asyncio
async def test_ping_defers_then_follows_up_and_its_button_edits_the_message(
    fake: FakeDiscord,
) -> None:
    bot = PingBot()
    async with running_bot(bot, fake):
        interaction = await fake.invoke("ping")
        callback = await fake.callback(interaction)
        followup = (await fake.followups(interaction))[0]

        assert callback.status == 200 and callback.body["type"] == 5
        assert followup.body["content"] == "pong"
        message_id = int(followup.response["id"])
        assert message_id == interaction.message_id  # the follow-up replaced "thinking"
        assert not fake.messages[message_id]["flags"] & LOADING

        click = await fake.click(message_id, "vote:like")
        answer = await fake.callback(click)
        assert answer.body["type"] == 7
        assert fake.messages[message_id]["content"] == "liked"
        assert bot.clicks == ["like"]


@pytest.mark.asyncio
async def test_autocomplete_answers_with_matching_choices(fake: FakeDiscord) -> None:
    async with running_bot(PingBot(), fake):
        interaction = await fake.autocomplete("genre", {"name": "d"}, focused="name")
        answer = await fake.callback(interaction)

    assert answer.body["type"] == 8
    names = [c["name"] for c in answer.body["data"]["choices"]]
    assert names == ["drum and bass", "dub"]


@pytest.mark.asyncio
async def test_options_reach_the_command_typed(fake: FakeDiscord) -> None:
    async with running_bot(PingBot(), fake):
        interaction = await fake.invoke("genre", {"name": "dub", "count": 3})
        answer = await fake.callback(interaction)

    assert answer.body["data"]["content"] == "dub x3"
    assert answer.body["data"]["flags"] == 64


@pytest.mark.asyncio
async def test_uploaded_attachment_is_served_to_the_bot(fake: FakeDiscord) -> None:
    file = Attachment("links.txt", b"spotify:track:a\nspotify:track:b\n")
    async with running_bot(PingBot(), fake):
        interaction = await fake.invoke("upload", {"file": file})
        answer = await fake.callback(interaction)

    assert answer.body["data"]["content"] == "links.txt: 2 lines"


@pytest.mark.asyncio
async def test_heartbeats_flow_and_are_acknowledged() -> None:
    async with FakeDiscord(heartbeat_interval=0.05) as quick:
        bot = PingBot()
        async with running_bot(bot, quick):
            await quick.wait_for_heartbeats(4, timeout=2.0)
            assert bot.latency < 1.0  # an ACK came back for a heartbeat
    beats = quick.heartbeats
    gaps = [b - a for a, b in itertools.pairwise(beats[1:])]
    assert all(gap < 0.5 for gap in gaps)


@pytest.mark.asyncio
async def test_fake_rejects_what_discord_rejects(fake: FakeDiscord) -> None:
    async with running_bot(PingBot(), fake):
        with pytest.raises(LookupError):
            await fake.invoke("missing")
        with pytest.raises(ValueError, match="without"):
            await fake.invoke("genre", {"count": 2})

        fake.callback_deadline = 0.0
        interaction = await fake.invoke("genre", {"name": "dub"})
        answer = await fake.callback(interaction)
        assert answer.status == 404 and answer.response["code"] == 10062


@pytest.mark.asyncio
async def test_message_over_discords_limit_is_refused_like_discord_does(fake: FakeDiscord) -> None:
    bot = PingBot()
    async with running_bot(bot, fake):
        answer = await fake.callback(await fake.invoke("shout"))
        async with asyncio.timeout(DEFAULT_TIMEOUT):
            while not bot.errors:
                await asyncio.sleep(0.01)

    assert answer.status == 400 and answer.response["code"] == 50035
    assert "content" in answer.response["errors"]
    assert isinstance(bot.errors[0].__cause__, discord.HTTPException)
