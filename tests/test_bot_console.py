"""``harmonya bot --console``: the bot's commands typed into a terminal, no Discord, no Spotify.

The model is the small synthetic bundle of ``test_bot``, whose group-0 tracks have group-0
neighbours only.
"""

# The fixture ``model`` is imported, so test arguments shadow it by design.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from test_bot import Model, model  # noqa: F401 (model is a fixture, used by name)

from bot.cogs.recommend import APOLOGY
from bot.console import CONSOLE_MEMBER_ID, Console, _split_count, _unquoted, run_console
from bot.service import RecommendService
from bot.storage import HistoryStore, RequestStatus

ENTRY = "from bot.cli import main; main()"
ALBUM = "https://open.spotify.com/album/4aawyAB9vmqN3uQ7FjRGTy"
LINE = re.compile(r"^(\d+)\. .*https://open\.spotify\.com/track/([0-9A-Za-z]{22})$")


def console(model: Model, tmp_path: Path, typed: str) -> subprocess.CompletedProcess[str]:
    environment = console_environment(model, tmp_path)
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


async def typed_into_console(model: Model, url: str, typed: str) -> str:
    """What the console prints for ``typed``, run in this process against ``url``."""
    service = RecommendService(HistoryStore.from_url(url), None)
    out = io.StringIO()
    await run_console(service, model.root, url, io.StringIO(typed), out)
    return out.getvalue()


@pytest.mark.asyncio
async def test_console_input_mistakes_get_one_line_each_and_are_stored_as_failures(
    model: Model, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    track = model.world.groups[0][0]
    playlist = tmp_path / "mine.txt"
    playlist.write_text(f"spotify:track:{track}\n")
    big = tmp_path / "big.txt"  # shown as named, not "Big.txt"
    big.write_bytes(b"x" * (6 * 2**20))
    mistakes = {
        f"/recommend count=\u00b2 {track}": "Count must be a number from 1 to 50.",
        '/recommend "abc': "A quote is not closed",
        f"/recommend {'x' * 300}": "That is not a track or playlist link, nor a file",
        "/recommend not-a-link": 'That is not a track or playlist link, nor a file: "not-a-link".',
        f"/recommend {tmp_path / 'missing.csv'}": "There is no such file",
        f"/recommend {ALBUM}": "album link, not a track",
        f"/recommend count=2 count=3 {track}": "Give count= only once.",
        f"/recommend {tmp_path}": "That is a folder, not a playlist file",
        f"/recommend {playlist} {playlist}": "Give me one playlist file at a time",
        f"/recommend {big}": f"{big.name} is too large for a playlist export.",
        '/similar "   "': "Give me a track link or name.",
    }
    typed = "\n".join([*mistakes, "x" * 20_000, "/HELP", ""])

    out = await typed_into_console(model, url, typed)

    for reply in mistakes.values():
        assert reply in out
    assert "longer than 10,000 characters" in out and "/similar <track link or name>" in out
    assert APOLOGY not in out
    rows = HistoryStore.from_url(url).history(CONSOLE_MEMBER_ID, None, 20)
    assert len(rows) == len(mistakes)
    assert {row.status for row in rows} == {RequestStatus.ERROR}


@pytest.mark.asyncio
async def test_console_comma_separated_links_and_unknown_tracks_are_explained(
    model: Model, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    a, b = model.world.groups[0][:2]
    typed = f"/recommend {a},{b},{a} count=3\n/recommend {'z' * 22}\n"

    out = await typed_into_console(model, url, typed)

    assert "used 2 of 3, 1 repeats, skipped 0" in out
    assert "none of your tracks is known to my model" in out


@pytest.mark.asyncio
async def test_a_playlist_name_no_terminal_can_print_is_answered_and_stored(
    model: Model, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    a, b = model.world.groups[0][:2]
    upload = tmp_path / "odd.json"
    upload.write_text(json.dumps({"name": "\ud800 workout\x1b[2J", "tracks": [a, b]}))

    out = await typed_into_console(model, url, f"/recommend {upload} count=3\n/history\n")

    assert "used 2 of 2" in out and APOLOGY not in out and "\x1b" not in out
    rows = HistoryStore.from_url(url).history(CONSOLE_MEMBER_ID, None, 5)
    assert [(row.status, len(row.tracks)) for row in rows] == [(RequestStatus.OK, 3)]
    assert "\ufffd workout" in out  # the playlist's name, printable


@pytest.mark.asyncio
async def test_a_refused_upload_quoting_unprintable_text_is_answered_and_stored(
    model: Model, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    upload = tmp_path / "odd.json"
    entry = {
        "type": "epi\x1b[31msode\ud800\nnext",
        "uri": f"spotify:track:{model.world.groups[0][0]}",
    }
    upload.write_text(json.dumps({"name": "x", "tracks": [entry]}))

    out = await typed_into_console(model, url, f"/recommend {upload}\n")

    assert "None of the 1 entries in the file is a Spotify track" in out
    assert "\x1b" not in out and "epi [31msode\ufffd next" in out
    rows = HistoryStore.from_url(url).history(CONSOLE_MEMBER_ID, None, 5)
    assert [row.status for row in rows] == [RequestStatus.ERROR]
    assert rows[0].error is not None and "\ufffd" in rows[0].error


@pytest.mark.asyncio
@pytest.mark.parametrize("between", ["\u00a0", "\u200b", "\t"])
async def test_links_pasted_with_any_space_between_them_are_each_used(
    model: Model, tmp_path: Path, between: str
) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    a, b = (f"https://open.spotify.com/track/{t}?si=x" for t in model.world.groups[0][:2])

    out = await typed_into_console(model, url, f"/recommend {a}{between}{b} count=3\n")

    assert "used 2 of 2" in out


@pytest.mark.asyncio
async def test_a_title_with_an_apostrophe_is_searched_not_refused(
    model: Model, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"

    out = await typed_into_console(model, url, "/similar Don't Stop Me Now\n")

    assert "quote is not closed" not in out
    assert "I don't know a track by that name" in out  # searched for, not in this catalogue


@pytest.mark.parametrize(
    ("typed", "name", "count"),
    [
        ("I Love Rock 'n' Roll count=2", "I Love Rock 'n' Roll", 2),
        ("\"I Love Rock 'n' Roll\"", "I Love Rock 'n' Roll", 10),
        ('track:Happy - From "Despicable Me 2"', 'Happy - From "Despicable Me 2"', 10),
        ("Axwell /\\ Ingrosso - Sun Is Shining", "Axwell /\\ Ingrosso - Sun Is Shining", 10),
    ],
)
def test_a_similar_name_keeps_its_quotes_apostrophes_and_backslashes(
    typed: str, name: str, count: int
) -> None:
    words, parsed_count = _split_count(typed, 50, name=True)

    assert (_unquoted(" ".join(words)), parsed_count) == (name, count)


@pytest.mark.asyncio
async def test_console_takes_discords_option_names_too(model: Model, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    a, b = model.world.groups[0][:2]
    link = f"https://open.spotify.com/track/{a}"
    typed = f"/recommend tracks:{link},{b} count: 3\n/similar track:{a} count:2\n"

    out = await typed_into_console(model, url, typed)

    assert "used 2 of 2" in out
    assert "not a track or playlist link" not in out and "don't know a track" not in out
    rows = HistoryStore.from_url(url).history(CONSOLE_MEMBER_ID, None, 5)
    assert {row.status for row in rows} == {RequestStatus.OK}
    assert sorted(len(row.tracks) for row in rows) == [2, 3]


@pytest.mark.asyncio
async def test_console_history_on_an_unreadable_database_says_so_and_keeps_running(
    model: Model, tmp_path: Path
) -> None:
    path = tmp_path / "history.sqlite3"
    await typed_into_console(model, f"sqlite:///{path}", "")
    path.write_bytes(b"this is not a database" * 100)

    service = RecommendService(HistoryStore.from_url(f"sqlite:///{path}"), None)
    await service.load_model(model.root)
    out = io.StringIO()
    await Console(service, io.StringIO("/history\n/help\n"), out).run()
    service.close()

    assert "I can't read your history right now" in out.getvalue()
    assert "/similar <track link or name>" in out.getvalue()


def test_console_stops_promptly_on_ctrl_c_at_the_prompt(model: Model, tmp_path: Path) -> None:
    environment = console_environment(model, tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "bot", "--console"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=environment,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "HarmonYa console" in process.stdout.readline()
        process.send_signal(signal.SIGINT)
        # stdin stays open: the old reader waited for a line that never came.
        returncode = process.wait(timeout=10)
    finally:
        process.kill()
        process.wait()

    assert returncode == 0  # a stop the README tells admins to use, not an error
    assert process.stdout is not None and "Stopped." in process.stdout.read()
    assert process.stderr is not None
    errors = process.stderr.read()
    assert "Traceback" not in errors and "error:" not in errors


class InputLeftOpen(io.StringIO):
    """Typed lines, then a terminal nobody types into (for up to a minute)."""

    def readline(self, size: int | None = -1) -> str:
        line = super().readline(size)
        if not line:
            threading.Event().wait(60)
        return line


@pytest.mark.asyncio
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_a_stop_signal_lets_the_answer_in_progress_finish_and_store_its_row(
    model: Model, tmp_path: Path, number: signal.Signals
) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    a, b = model.world.groups[0][:2]
    service = RecommendService(HistoryStore.from_url(url), None)
    answer = service.recommend

    async def signalled_while_answering(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), number)
        await asyncio.sleep(0.2)  # the signal is handled while this request is in progress
        return await answer(*args, **kwargs)

    service.recommend = signalled_while_answering  # type: ignore[method-assign]
    out = io.StringIO()
    stdin = InputLeftOpen(f"/recommend {a},{b} count=3\n/help\n")
    await asyncio.wait_for(run_console(service, model.root, url, stdin, out), 30)

    printed = out.getvalue()
    assert "Stopping once this answer is done" in printed
    assert "used 2 of 2" in printed and printed.rstrip().endswith("Stopped.")
    assert "/similar <track link or name>" not in printed  # /help came after the signal
    rows = HistoryStore.from_url(url).history(CONSOLE_MEMBER_ID, None, 5)
    assert [(row.status, len(row.tracks)) for row in rows] == [(RequestStatus.OK, 3)]
    assert signal.getsignal(number) is not None  # the handler before the console is back


@pytest.mark.asyncio
@pytest.mark.parametrize("times", [1, 2, 3])
async def test_a_stop_signal_at_the_prompt_ends_the_console_at_once(
    model: Model, tmp_path: Path, times: int
) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    service = RecommendService(HistoryStore.from_url(url), None)
    out = io.StringIO()
    running = asyncio.create_task(
        run_console(service, model.root, url, InputLeftOpen("/help\n"), out)
    )
    while "/similar <track link or name>" not in out.getvalue():
        await asyncio.sleep(0.05)
    for _ in range(times):  # more presses while it shuts down change nothing
        os.kill(os.getpid(), signal.SIGINT)
    await asyncio.wait_for(running, 10)

    assert out.getvalue().rstrip().endswith("Stopped.")
    assert out.getvalue().count("Stopped.") == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
async def test_a_stop_signal_during_start_up_ends_it_without_a_console(
    model: Model, tmp_path: Path, number: signal.Signals
) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    service = RecommendService(HistoryStore.from_url(url), None)
    load = service.load_model

    async def signalled_while_loading(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), number)
        await asyncio.sleep(0.1)
        return await load(*args, **kwargs)

    service.load_model = signalled_while_loading  # type: ignore[method-assign]
    out = io.StringIO()
    await asyncio.wait_for(run_console(service, model.root, url, InputLeftOpen("/help\n"), out), 30)

    assert out.getvalue().strip() == "Stopped."  # no greeting, no /help answered


@pytest.mark.parametrize("stop", [b"/quit\r", b"\x03"], ids=["quit", "ctrl-c"])
def test_console_on_a_terminal_exits_at_once(model: Model, tmp_path: Path, stop: bytes) -> None:
    """On a real terminal no reader may be left blocked: the process must end, not wait."""
    import pty
    import select
    import time

    environment = console_environment(model, tmp_path)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the console on the terminal's other end
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-c", ENTRY, "bot", "--console"], environment)
    seen = b""
    status = None
    try:
        deadline = time.monotonic() + 60
        while b"HarmonYa console" not in seen and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                seen += os.read(fd, 4096)
        assert b"HarmonYa console" in seen, seen
        os.write(fd, b"/help\r")
        while b"/similar" not in seen and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                seen += os.read(fd, 4096)
        os.write(fd, stop)
        stopped = time.monotonic()
        while time.monotonic() - stopped < 10:
            if select.select([fd], [], [], 0.1)[0]:
                with contextlib.suppress(OSError):  # the child has closed its end
                    seen += os.read(fd, 4096)
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = code
                break
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert status is not None, f"still running 10 s after {stop!r}: {seen[-300:]!r}"
    assert os.WEXITSTATUS(status) == 0
    assert b"Traceback" not in seen


def console_environment(model: Model, tmp_path: Path) -> dict[str, str]:
    """This process's environment without HarmonYa's settings, then the test's model and db."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HARMONYA_", "DISCORD_", "SPOTIFY_"))
    }
    environment.update(
        HARMONYA_MODEL_DIR=str(model.root),
        HARMONYA_DATABASE_URL=f"sqlite:///{tmp_path / 'history.sqlite3'}",
    )
    return environment
