"""Schema migrations, run from code: the bot upgrades its database on start."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from bot.storage.history import StorageError

log = logging.getLogger(__name__)

# migrations/ sits beside the bot package: in the repository, and (as a namespace package, see
# pyproject's packages.find) in site-packages after a regular install.
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# env.py reads the database URL from this Config attribute before the environment variable.
URL_ATTRIBUTE = "database_url"


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` that works from any working directory."""
    config = Config()
    # Config values go through ConfigParser interpolation, where "%" is special.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes[URL_ATTRIBUTE] = url
    return config


def upgrade_database(url: str) -> tuple[str | None, str | None]:
    """Bring the database at ``url`` to the newest schema (creating it if it is empty).

    Returns the schema revision before and after; None before means a new database.
    """
    log.info("upgrading database schema to head")
    try:
        before = _revision(url)
        command.upgrade(alembic_config(url), "head")
        return before, _revision(url)
    except SQLAlchemyError as error:
        shown = make_url(url).render_as_string(hide_password=True)
        reason = getattr(error, "orig", None) or error
        raise StorageError(f"cannot upgrade the database at {shown}: {reason}") from error


def _revision(url: str) -> str | None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
