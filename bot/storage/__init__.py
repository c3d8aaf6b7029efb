"""History storage: SQLAlchemy models, the ``HistoryStore`` the bot calls, and migrations."""

from bot.storage.engine import DATABASE_URL_ENV, DEFAULT_DATABASE_URL, create_storage_engine
from bot.storage.history import (
    ForgottenRows,
    HistoryStore,
    RequestEntry,
    StorageError,
    StoredRequest,
    TrackEntry,
)
from bot.storage.migrate import alembic_config, upgrade_database
from bot.storage.models import Base, RequestKind, RequestStatus

__all__ = [
    "DATABASE_URL_ENV",
    "DEFAULT_DATABASE_URL",
    "Base",
    "ForgottenRows",
    "HistoryStore",
    "RequestEntry",
    "RequestKind",
    "RequestStatus",
    "StorageError",
    "StoredRequest",
    "TrackEntry",
    "alembic_config",
    "create_storage_engine",
    "upgrade_database",
]
