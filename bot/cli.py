"""The full ``harmonya`` command: the recommender's commands plus the bot's.

The recommender's command group knows nothing of the bot; this module adds the bot's
commands to it, so ``harmonya`` (this entry point) has both and ``python -m recommender``
has the recommender's alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import click

from bot.settings import Settings, SettingsError, load_settings
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
        before, after = upgrade_database(settings.database_url)
    except (SettingsError, StorageError) as error:
        raise UserError(str(error)) from error
    if before == after:
        click.echo(f"database is up to date (revision {after})")
    elif before is None:
        click.echo(f"created the database at revision {after}")
    else:
        click.echo(f"migrated the database from revision {before} to {after}")


@cli.command("bot")
@click.option(
    "--sync-global",
    is_flag=True,
    help="Publish the slash commands to every server (takes up to an hour to show).",
)
@click.option(
    "--console",
    is_flag=True,
    help="Try the commands in this terminal instead of Discord (no token needed).",
)
@friendly
def run(sync_global: bool, console: bool) -> None:
    """Run the Discord bot until SIGINT or SIGTERM (settings: environment and .env)."""
    from bot.bot import run_bot

    try:
        settings = load_settings(console=console)
    except SettingsError as error:
        raise UserError(str(error)) from error
    # The command group's own handler already writes to stderr; a second one (such as
    # discord.utils.setup_logging adds) would print every line twice.
    logging.getLogger().setLevel(settings.log_level)
    if settings.log_level != "DEBUG":
        # Alembic logs its migration context at INFO on every start ("Context impl ...").
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # spotipy logs every refused request as an ERROR; bot/spotify.py turns each into a
        # member's reply and logs what an admin needs.
        logging.getLogger("spotipy").setLevel(logging.CRITICAL)
    if console:
        _run_console(settings)
        return
    from bot.storage import StorageError

    try:
        run_bot(settings, sync_globally=sync_global)
    except StorageError as error:
        raise UserError(str(error)) from error


def _run_console(settings: Settings) -> None:
    import asyncio
    import io
    import signal
    import sys

    from bot.bot import build_service
    from bot.console import run_console

    if not settings.has_spotify:
        log.info("no Spotify credentials: playlist links will not be read")
    from bot.storage import StorageError

    # A byte that is not UTF-8 becomes U+FFFD instead of ending the console.
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="replace")
    service = build_service(settings)
    finished = False

    async def main() -> None:
        nonlocal finished
        await run_console(service, settings.model_dir, settings.database_url, sys.stdin, sys.stdout)
        finished = True

    try:
        asyncio.run(main())
    except StorageError as error:
        raise UserError(str(error)) from error
    except KeyboardInterrupt:
        # Pressed again while the event loop closed, after the console had stopped cleanly.
        if not finished:
            raise
    # The console has stopped and stored what it had: a press during the interpreter's exit
    # (which restores the default handlers) must not turn a clean stop into a kill.
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def main(argv: Sequence[str] | None = None) -> None:
    recommender_main(argv)


if __name__ == "__main__":
    main()
