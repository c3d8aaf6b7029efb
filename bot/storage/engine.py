"""Engines for the history database: SQLite (WAL) by default, PostgreSQL when the URL says so."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

DATABASE_URL_ENV = "HARMONYA_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite:///harmonya.sqlite3"
# Seconds a SQLite statement waits for another writer's lock. With HistoryStore's retries a
# write gives up within ~5 s, so a locked database holds no worker thread for long.
DEFAULT_BUSY_TIMEOUT = 2.0
# Execution option a write transaction sets so SQLite takes the write lock at BEGIN: a deferred
# transaction that reads before it writes can fail at once, without waiting out the busy timeout.
BEGIN_MODE = "harmonya_sqlite_begin"


def create_storage_engine(url: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Engine:
    """An engine for ``url``; on SQLite every connection gets WAL, a busy timeout and foreign keys.

    Write transactions that should lock at once run on
    ``engine.execution_options(harmonya_sqlite_begin="IMMEDIATE")``.
    """
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, busy_timeout)
    log.debug("database engine for %s", engine.url.render_as_string(hide_password=True))
    return engine


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    timeout_ms = round(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below); the driver's own implicit BEGIN is turned off.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable in WAL mode except for the last commits on power loss.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(BEGIN_MODE, "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"unknown SQLite BEGIN mode {mode!r}")
        connection.exec_driver_sql(f"BEGIN {mode}")
