"""The bot's commands on the ``harmonya`` entry point, run as a member of staff would."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ENTRY = "from bot.cli import main; main()"


def harmonya(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HARMONYA_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_db_upgrade_creates_every_table(tmp_path: Path) -> None:
    database = tmp_path / "history.sqlite3"

    done = harmonya("db", "upgrade", cwd=tmp_path, HARMONYA_DATABASE_URL=f"sqlite:///{database}")

    assert done.returncode == 0, done.stderr
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"members", "requests", "recommended_tracks", "feedback"} <= tables
    assert done.stdout.startswith("created the database at revision ")
    again = harmonya("db", "upgrade", cwd=tmp_path, HARMONYA_DATABASE_URL=f"sqlite:///{database}")
    assert again.stdout.startswith("database is up to date (revision ")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HARMONYA_DATABASE_URL": "sqlite:////no/such/dir/x.db"}, "cannot upgrade the database"),
        ({"HARMONYA_DATABASE_URL": "notaurl"}, "HARMONYA_DATABASE_URL is invalid"),
        ({"HARMONYA_DATABASE_URL": "foo://bar"}, "foo is not supported"),
        ({"HARMONYA_DATABASE_URL": "sqlite://"}, "in-memory SQLite database"),
        ({"HARMONYA_PLAYLIST_CAP": "many"}, "HARMONYA_PLAYLIST_CAP is invalid"),
    ],
)
def test_db_upgrade_with_a_bad_setting_is_one_error_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    done = harmonya("db", "upgrade", cwd=tmp_path, **env)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("error: ") and message in done.stderr


def test_recommender_commands_stay_on_the_full_entry_point(tmp_path: Path) -> None:
    done = harmonya("--help", cwd=tmp_path)

    assert done.returncode == 0
    for command in ("train", "recommend", "similar", "demo", "db"):
        assert f"  {command}" in done.stdout


def test_bot_without_a_token_says_which_setting_is_missing(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, "bot"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 1
    assert done.stderr.startswith("error: DISCORD_TOKEN is not set")
    assert "Traceback" not in done.stderr
