"""Settings: defaults, .env reading, environment over .env, one clear line per bad value."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, env_name, load_settings

TOKEN = "discord-token-do-not-print"
SECRET = "spotify-secret-do-not-print"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for field in Settings.model_fields:
        monkeypatch.delenv(env_name(field), raising=False)
    monkeypatch.chdir(tmp_path)


def write_env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_only_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)

    settings = load_settings(console=False, env_file=None)

    assert settings.discord_token is not None
    assert settings.discord_token.get_secret_value() == TOKEN
    assert settings.spotify_client_id is None and not settings.has_spotify
    assert settings.database_url == "sqlite:///harmonya.sqlite3"
    assert settings.model_dir == Path("models/default")
    assert settings.dev_guild_id is None
    assert settings.log_level == "INFO"
    assert settings.playlist_cap == 1000
    assert settings.cooldown_seconds == pytest.approx(10.0)


def test_console_runs_without_a_token() -> None:
    assert load_settings(console=True, env_file=None).discord_token is None


def test_missing_token_is_one_line_naming_it() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(console=False, env_file=None)

    message = str(caught.value)
    assert message.startswith("DISCORD_TOKEN is not set")
    assert "\n" not in message


def test_env_file_is_read(tmp_path: Path) -> None:
    env_file = write_env(
        tmp_path,
        "# comment\n"
        f"DISCORD_TOKEN={TOKEN}\n"
        "SPOTIFY_CLIENT_ID=abc\n"
        f"SPOTIFY_CLIENT_SECRET={SECRET}\n"
        "HARMONYA_DEV_GUILD_ID=123\n"
        "HARMONYA_LOG_LEVEL=debug\n"
        "HARMONYA_PLAYLIST_CAP=250\n"
        "HARMONYA_COOLDOWN_SECONDS=0\n"
        "HARMONYA_MODEL_DIR=models/other\n"
        "HARMONYA_DATA_DIR=../shared/data/raw\n",  # the command line's setting, ignored here
    )

    settings = load_settings(console=False, env_file=env_file)

    assert settings.spotify_client_id == "abc" and settings.has_spotify
    assert settings.spotify_client_secret is not None
    assert settings.spotify_client_secret.get_secret_value() == SECRET
    assert settings.dev_guild_id == 123
    assert settings.log_level == "DEBUG"
    assert settings.playlist_cap == 250
    assert settings.cooldown_seconds == 0
    assert settings.model_dir == Path("models/other")


def test_default_env_file_is_dot_env_in_the_working_directory(tmp_path: Path) -> None:
    write_env(tmp_path, f"DISCORD_TOKEN={TOKEN}\nHARMONYA_PLAYLIST_CAP=7\n")

    assert load_settings(console=False).playlist_cap == 7


def test_environment_overrides_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = write_env(tmp_path, "DISCORD_TOKEN=from-file\nHARMONYA_PLAYLIST_CAP=250\n")
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("HARMONYA_PLAYLIST_CAP", "500")

    settings = load_settings(console=False, env_file=env_file)

    assert settings.discord_token is not None
    assert settings.discord_token.get_secret_value() == TOKEN
    assert settings.playlist_cap == 500


def test_empty_value_means_default(tmp_path: Path) -> None:
    env_file = write_env(tmp_path, "HARMONYA_DEV_GUILD_ID=\nHARMONYA_PLAYLIST_CAP=\n")

    settings = load_settings(console=True, env_file=env_file)

    assert settings.dev_guild_id is None
    assert settings.playlist_cap == 1000


def test_a_model_folder_of_spaces_means_the_default(tmp_path: Path) -> None:
    env_file = write_env(tmp_path, "HARMONYA_MODEL_DIR='   '\n")

    settings = load_settings(console=True, env_file=env_file)

    assert settings.model_dir == Path("models/default")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("HARMONYA_PLAYLIST_CAP", "0", "greater than or equal to 1"),
        ("HARMONYA_PLAYLIST_CAP", "10001", "less than or equal to 10000"),
        ("HARMONYA_PLAYLIST_CAP", "many", "valid integer"),
        ("HARMONYA_COOLDOWN_SECONDS", "-1", "greater than or equal to 0"),
        ("HARMONYA_COOLDOWN_SECONDS", "inf", "finite number"),
        ("HARMONYA_DEV_GUILD_ID", "my-server", "valid integer"),
        ("HARMONYA_DEV_GUILD_ID", "-5", "greater than 0"),
        ("HARMONYA_LOG_LEVEL", "LOUD", "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"),
    ],
)
def test_malformed_value_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError) as caught:
        load_settings(console=True, env_file=None)

    message = str(caught.value)
    assert message.startswith(f"{name} is invalid: ")
    assert expected in message
    assert repr(value) in message
    assert "\n" not in message
    assert caught.value.__cause__ is None  # no pydantic traceback chained to it


def test_half_the_spotify_credentials_names_the_missing_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", "abc")

    with pytest.raises(SettingsError, match="SPOTIFY_CLIENT_SECRET is not set"):
        load_settings(console=True, env_file=None)


def test_secrets_never_show(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", "abc")
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("HARMONYA_DATABASE_URL", "postgresql://harmonya:db-password@db/harmonya")
    # The tests have no PostgreSQL driver, which settings would otherwise refuse.
    monkeypatch.setattr("bot.settings._check_database", lambda value: None)

    settings = load_settings(console=False, env_file=None)
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s %r", settings, settings)

    for text in (repr(settings), str(settings), caplog.text):
        assert TOKEN not in text
        assert SECRET not in text
        assert "db-password" not in text
    assert "postgresql://harmonya:***@db/harmonya" in repr(settings)
    assert settings.database_url.endswith(":db-password@db/harmonya")  # still usable


def test_malformed_database_url_hides_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARMONYA_DATABASE_URL", "harmonya:db-password@db")

    with pytest.raises(SettingsError) as caught:
        load_settings(console=True, env_file=None)

    message = str(caught.value)
    assert message.startswith("HARMONYA_DATABASE_URL is invalid: expected a URL")
    assert "db-password" not in message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("foo://bar", "foo is not supported"),
        ("mysql://harmonya:db-password@db/harmonya", "mysql is not supported"),
        ("postgresql://harmonya:db-password@db/harmonya", "driver is not installed"),
        ("sqlite://", "in-memory SQLite database loses the history"),
        ("sqlite:///:memory:", "in-memory SQLite database loses the history"),
        ("sqlite:///?x=1", "in-memory SQLite database loses the history"),
    ],
)
def test_a_database_url_the_bot_cannot_use_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    if "postgresql" in url:
        pytest.importorskip("sqlalchemy.dialects.postgresql")
        monkeypatch.setitem(sys.modules, "psycopg2", None)
        monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setenv("HARMONYA_DATABASE_URL", url)

    with pytest.raises(SettingsError) as caught:
        load_settings(console=True, env_file=None)

    text = str(caught.value)
    assert text.startswith("HARMONYA_DATABASE_URL is invalid: ") and message in text
    assert "db-password" not in text and "\n" not in text


def test_an_env_file_that_is_not_utf_8_is_one_line_naming_it(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_bytes("HARMONYA_LOG_LEVEL=info # café\n".encode("latin-1"))

    with pytest.raises(SettingsError) as caught:
        load_settings(console=True, env_file=env)

    assert str(caught.value) == f"{env} is not UTF-8 text; save it as UTF-8"
