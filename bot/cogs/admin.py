"""/sync: an admin publishes the slash commands to every server, once, when they change."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

if TYPE_CHECKING:
    from bot.bot import HarmonYa

log = logging.getLogger(__name__)


class Admin(commands.Cog):
    """Commands for the server's administrators only."""

    def __init__(self, bot: HarmonYa) -> None:
        self.bot = bot

    @app_commands.command(name="sync")
    @app_commands.default_permissions(administrator=True)
    @app_commands.guild_only()
    # Discord hides the command from others; the check also refuses a server that changed that.
    @app_commands.checks.has_permissions(administrator=True)
    async def sync(self, interaction: discord.Interaction) -> None:
        """Publish my commands to every server (admins only; they can take an hour to show)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        synced = await self.bot.sync_commands(globally=True)
        log.info("member %d synced %d commands globally", interaction.user.id, synced)
        await interaction.followup.send(
            f"Synced {synced} commands to every server; Discord can take up to an hour to "
            "show the changes.",
            ephemeral=True,
        )


async def setup(bot: HarmonYa) -> None:
    await bot.add_cog(Admin(bot))
