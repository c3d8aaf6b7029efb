"""Alembic's entry point: which database, which models, how to compare them.

The URL comes from the caller: ``config.attributes["database_url"]`` (set by
``bot.storage.upgrade_database``), else the ``HARMONYA_DATABASE_URL`` environment variable,
else a SQLite file in the working directory.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import create_engine, pool

from bot.storage.engine import DATABASE_URL_ENV, DEFAULT_DATABASE_URL
from bot.storage.migrate import URL_ATTRIBUTE
from bot.storage.models import Base

config = context.config
# Only the alembic command line configures logging; the bot has set up its own by now.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = config.attributes.get(URL_ATTRIBUTE) or os.environ.get(DATABASE_URL_ENV)
    return url or DEFAULT_DATABASE_URL


def configure(**options: Any) -> None:
    context.configure(
        target_metadata=Base.metadata,
        # SQLite cannot alter most of a table in place: batch mode copies it instead.
        render_as_batch=True,
        compare_type=True,
        **options,
    )


def run_migrations_offline() -> None:
    configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # A plain engine: foreign keys stay off on SQLite while batch mode copies tables.
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
