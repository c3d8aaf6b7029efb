"""``harmonya bot --console``: the bot's commands typed into a terminal, no Discord, no Spotify.

The model is the small synthetic bundle of ``test_bot``, whose group-0 tracks have group-0
neighbours only.
"""

# The fixture ``model`` is imported, so test arguments shadow it by design.
# ruff: noqa: F811

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from test_bot import Model, model  # noqa: F401 (model is a fixture, used by name)

ENTRY = "from bot.cli import main; main()"
LINE = re.compile(r"^(\d+)\. .*https://open\.spotify\.com/track/([0-9A-Za-z]{22})$")


def console(model: Model, tmp_path: Path, typed: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HARMONYA_", "DISCORD_", "SPOTIFY_"))
    }
    environment.update(
        HARMONYA_MODEL_DIR=str(model.root),
        HARMONYA_DATABASE_URL=f"sqlite:///{tmp_path / 'history.sqlite3'}",
    )
    return subprocess.run(
        [sys.executable, "-c", ENTRY, "bot", "--console"],
        input=typed,
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_console_answers_recommend_similar_and_history_then_stops_at_end_of_input(
    model: Model, tmp_path: Path
) -> None:
    group = model.world.groups[0]
    links = " ".join(f"https://open.spotify.com/track/{t}" for t in group[:4])
    typed = "\n".join(
        [
            "/help",
            f"/recommend {links} count=5",
            f"/similar {group[10]} count=3",
            "/recommend https://open.spotify.com/playlist/PlaylistBBBBBBBBBBBBBB",
            "/history",
        ]
    )

    done = console(model, tmp_path, typed + "\n")

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "/similar <track link or name>" in out
    ranked = [LINE.match(line) for line in out.splitlines()]
    found = [(int(m[1]), m[2]) for m in ranked if m is not None]
    recommended, similar = found[:5], found[5:8]
    assert [rank for rank, _ in recommended] == [1, 2, 3, 4, 5]
    assert all(model.world.group_of(t) == 0 and t not in group[:4] for _, t in recommended)
    assert [rank for rank, _ in similar] == [1, 2, 3]
    assert all(model.world.group_of(t) == 0 and t != group[10] for _, t in similar)
    assert "Tracks for you" in out and "used 4 of 4, skipped 0" in out
    assert f"Sounds like Artist g0 - Song {group[10]}" in out
    assert "cannot read Spotify playlists" in out and "track links" in out
    assert "failed: This bot cannot read Spotify playlists" in out
    assert "Traceback" not in done.stderr

    with sqlite3.connect(tmp_path / "history.sqlite3") as connection:
        rows = connection.execute(
            "SELECT member_id, kind, status FROM requests ORDER BY id"
        ).fetchall()
    assert rows == [(0, "recommend", "ok"), (0, "similar", "ok"), (0, "recommend", "error")]


def test_console_needs_no_token_and_ends_cleanly_on_empty_input(
    model: Model, tmp_path: Path
) -> None:
    done = console(model, tmp_path, "")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("HarmonYa console")
