"""The HarmonYa bot: a ``commands.Bot`` that loads the model once and serves the cogs.

``run_bot(settings)`` is what ``harmonya bot`` calls: it builds the storage, the Spotify client
and the service from the settings, runs the bot, and stops it cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
from discord.ext import commands

from bot.cogs import EXTENSIONS
from bot.service import RecommendService, ServiceLimits
from bot.settings import Settings, SettingsError
from bot.spotify import SpotifyClient
from bot.storage import HistoryStore, upgrade_database

log = logging.getLogger(__name__)

# How long a stopping bot waits for answers in progress before it closes anyway.
DRAIN_TIMEOUT = 20.0


@dataclass(frozen=True)
class BotConfig:
    """Start-up choices: where the model is, which database to migrate, where to sync.

    ``database_url`` None skips migrations (the caller ran them). Commands sync to
    ``dev_guild_id`` when it is set; globally only with ``sync_globally``, since a global
    sync takes up to an hour to reach every server and is rate-limited.
    """

    model_dir: Path
    database_url: str | None = None
    dev_guild_id: int | None = None
    sync_globally: bool = False
    drain_timeout: float = DRAIN_TIMEOUT


class HarmonYa(commands.Bot):
    """The bot; its dependencies come in ready-made, so tests pass fakes."""

    def __init__(self, service: RecommendService, config: BotConfig, **options: Any) -> None:
        options.setdefault("intents", discord.Intents.default())
        options.setdefault("help_command", None)
        super().__init__(command_prefix=commands.when_mentioned, **options)
        self.service = service
        self.config = config
        self._closing = False

    async def setup_hook(self) -> None:
        if self.config.database_url is not None:
            await self.service.run_io(upgrade_database, self.config.database_url)
        await self.service.run_io(self.service.history.check_writable)
        await self.service.load_model(self.config.model_dir)
        # The catalogue is ~300k small Python objects that live as long as the process; left
        # in the collector's generations, each full pass walks them and stalls the event loop
        # for ~0.2 s (bench/load.py). Frozen, they are never scanned.
        gc.collect()
        gc.freeze()
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.sync_commands(globally=self.config.sync_globally)

    async def sync_commands(self, *, globally: bool = False) -> int:
        """Register the slash commands with Discord: the dev guild, or everywhere if asked.

        Returns how many commands Discord now has (0 when nothing was synced).
        """
        if globally:
            synced = await self.tree.sync()
            log.info("synced %d commands globally", len(synced))
        elif self.config.dev_guild_id is not None:
            guild = discord.Object(self.config.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %d", len(synced), guild.id)
        else:
            log.warning(
                "commands not synced: set HARMONYA_DEV_GUILD_ID, or sync globally once "
                "(this is only needed when commands change)"
            )
            return 0
        return len(synced)

    async def on_ready(self) -> None:
        log.info("ready as %s (%s) in %d guilds", self.user, self.application_id, len(self.guilds))

    async def close(self) -> None:
        """Let answers in progress finish, then disconnect and close the database."""
        if self._closing:
            await super().close()
            return
        self._closing = True
        log.info("stopping: waiting for answers in progress")
        await self.service.drain(self.config.drain_timeout)
        await super().close()
        await asyncio.get_running_loop().run_in_executor(None, self.service.close)
        log.info("stopped")


def build_service(settings: Settings) -> RecommendService:
    """The service with its storage and, when credentials are set, a Spotify client."""
    history = HistoryStore.from_url(settings.database_url)
    spotify = None
    if settings.spotify_client_id is not None and settings.spotify_client_secret is not None:
        secret = settings.spotify_client_secret.get_secret_value()
        spotify = SpotifyClient(settings.spotify_client_id, secret)
    limits = ServiceLimits(
        cooldown_seconds=settings.cooldown_seconds, playlist_cap=settings.playlist_cap
    )
    return RecommendService(history, spotify, limits=limits)


def build_bot(settings: Settings, *, sync_globally: bool = False) -> HarmonYa:
    """The bot with its storage, Spotify client and service, all from ``settings``."""
    config = BotConfig(
        model_dir=settings.model_dir,
        database_url=settings.database_url,
        dev_guild_id=settings.dev_guild_id,
        sync_globally=sync_globally,
    )
    return HarmonYa(build_service(settings), config)


def run_bot(settings: Settings, *, sync_globally: bool = False) -> None:
    """Run the bot until SIGINT or SIGTERM, then stop it cleanly. Logging is the caller's."""
    if settings.discord_token is None:
        raise SettingsError("DISCORD_TOKEN is not set: put the bot token in the environment")
    token = settings.discord_token.get_secret_value()
    asyncio.run(_serve(build_bot(settings, sync_globally=sync_globally), token))


async def _serve(bot: HarmonYa, token: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = []
    for number in (signal.SIGINT, signal.SIGTERM):
        # Not available on Windows; Ctrl+C still raises KeyboardInterrupt there.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(number, stop.set)
            handled.append(number)
    try:
        async with bot:
            running = asyncio.create_task(bot.start(token))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping.done():
                log.info("signal received")
                await bot.close()
            stopping.cancel()
            await running
    finally:
        for number in handled:
            loop.remove_signal_handler(number)
