"""Settings for the bot, read from the environment and a ``.env`` file.

Every setting is ``HARMONYA_<NAME>`` except the three credentials, which keep the names their
services' own documentation uses: ``DISCORD_TOKEN``, ``SPOTIFY_CLIENT_ID`` and
``SPOTIFY_CLIENT_SECRET``. The environment wins over ``.env``; empty values mean "use the
default". Secrets are ``SecretStr`` and a database password is masked, so neither shows up in a
repr, a str or a log line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

ENV_PREFIX = "HARMONYA_"
# Never echoed back in an error; a database URL may carry a password.
_SECRET_NAMES = {"DISCORD_TOKEN", "SPOTIFY_CLIENT_SECRET", ENV_PREFIX + "DATABASE_URL"}
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# The databases the history store supports, and how to install a missing driver.
_DRIVERS = {"sqlite": "rebuild Python with SQLite", "postgresql": "pip install psycopg[binary]"}


class SettingsError(Exception):
    """A missing or malformed setting; the message is one line that names it."""


class Settings(BaseSettings):
    """What an admin configures; see ``.env.example`` for each setting with a comment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    discord_token: SecretStr | None = Field(default=None, validation_alias="DISCORD_TOKEN")
    spotify_client_id: str | None = Field(default=None, validation_alias="SPOTIFY_CLIENT_ID")
    spotify_client_secret: SecretStr | None = Field(
        default=None, validation_alias="SPOTIFY_CLIENT_SECRET"
    )
    database_url: str = "sqlite:///harmonya.sqlite3"
    model_dir: Path = Path("models/default")
    dev_guild_id: int | None = Field(default=None, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    playlist_cap: int = Field(default=1000, ge=1, le=10000)
    cooldown_seconds: float = Field(default=10.0, ge=0, allow_inf_nan=False)

    @field_validator("model_dir", mode="before")
    @classmethod
    def _blank_is_default(cls, value: Any) -> Any:
        # Only spaces means unset, as an empty value does and as the command line takes it.
        return Path("models/default") if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _looks_like_url(cls, value: str) -> str:
        if not _URL_SCHEME.match(value):
            raise ValueError("expected a URL such as sqlite:///harmonya.sqlite3")
        _check_database(value)
        return value

    @model_validator(mode="after")
    def _spotify_pair(self) -> Settings:
        if (self.spotify_client_id is None) != (self.spotify_client_secret is None):
            pair = ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET")
            missing = pair[1] if self.spotify_client_secret is None else pair[0]
            raise ValueError(f"{missing} is not set (Spotify needs both the id and the secret)")
        return self

    @property
    def has_spotify(self) -> bool:
        return self.spotify_client_id is not None

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, _mask_password(value) if name == "database_url" else value


def load_settings(console: bool, *, env_file: str | Path | None = ".env") -> Settings:
    """Read the settings, or raise :class:`SettingsError` with one line naming what is wrong.

    ``console`` is ``harmonya bot --console``, which needs no Discord token.
    """
    try:
        settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except UnicodeDecodeError:
        raise SettingsError(f"{env_file} is not UTF-8 text; save it as UTF-8") from None

    if not console and settings.discord_token is None:
        raise SettingsError(
            "DISCORD_TOKEN is not set: put the bot token in the environment or .env "
            "(see .env.example)"
        )
    return settings


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else ENV_PREFIX + field.upper()


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    if not error["loc"]:  # a check across settings; its message names them itself
        return f"Invalid settings: {error['msg'].removeprefix('Value error, ')}"
    field = str(error["loc"][0])
    name = env_name(field) if field in Settings.model_fields else field
    message = error["msg"].removeprefix("Value error, ")
    shown = "" if name in _SECRET_NAMES else f" (got {error['input']!r})"
    return f"{name} is invalid: {message}{shown}"


def _check_database(value: str) -> None:
    """Refuse a URL the history store cannot use: another database, no driver, in memory."""
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError("it is not a database URL such as sqlite:///harmonya.sqlite3") from None
    backend = url.get_backend_name()
    if backend not in _DRIVERS:
        raise ValueError(f"{backend} is not supported; use sqlite:///<file> or postgresql://...")
    if backend == "sqlite" and _in_memory(url):
        raise ValueError(
            "an in-memory SQLite database loses the history at every restart; "
            "give a file, e.g. sqlite:///harmonya.sqlite3"
        )
    try:
        url.get_dialect().import_dbapi()
    except (ImportError, NoSuchModuleError):
        hint = _DRIVERS[backend]
        raise ValueError(f"the {url.get_driver_name()} driver is not installed ({hint})") from None


def _in_memory(url: URL) -> bool:
    database = url.database or ""
    memory = url.query.get("mode") == "memory"
    return database in ("", ":memory:") or database.startswith("file::memory:") or memory


def _mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
