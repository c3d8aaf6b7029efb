"""The full ``harmonya`` command: the recommender's commands plus the bot's.

The recommender's command group knows nothing of the bot; this module adds the bot's
commands to it, so ``harmonya`` (this entry point) has both and ``python -m recommender``
has the recommender's alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import click

from bot.settings import SettingsError, load_settings
from recommender.cli import UserError, cli, friendly
from recommender.cli import main as recommender_main

log = logging.getLogger(__name__)


@cli.group()
def db() -> None:
    """The history database (SQLite by default; HARMONYA_DATABASE_URL)."""


@db.command()
@friendly
def upgrade() -> None:
    """Create the database or bring it to the newest schema."""
    from bot.storage import StorageError, upgrade_database

    try:
        settings = load_settings(console=True)
        upgrade_database(settings.database_url)
    except (SettingsError, StorageError) as error:
        raise UserError(str(error)) from error
    click.echo("database is up to date")


@cli.command("bot")
@click.option(
    "--sync-global",
    is_flag=True,
    help="Publish the slash commands to every server (takes up to an hour to show).",
)
@friendly
def run(sync_global: bool) -> None:
    """Run the Discord bot until SIGINT or SIGTERM (settings: environment and .env)."""
    import discord

    from bot.bot import run_bot

    try:
        settings = load_settings(console=False)
    except SettingsError as error:
        raise UserError(str(error)) from error
    discord.utils.setup_logging(level=logging.getLevelName(settings.log_level))
    run_bot(settings, sync_globally=sync_global)


def main(argv: Sequence[str] | None = None) -> None:
    recommender_main(argv)


if __name__ == "__main__":
    main()
