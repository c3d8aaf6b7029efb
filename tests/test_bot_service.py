"""The service without Discord: history writes on a locked database, and /similar's names.

The model is the small synthetic bundle of ``test_bot``.
"""

# The fixture ``model`` is imported, so test arguments shadow it by design.
# ruff: noqa: F811

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from test_bot import Model, model  # noqa: F401 (model is a fixture, used by name)

from bot.service import BadInput, RecommendService
from bot.storage import (
    HistoryStore,
    RequestEntry,
    RequestKind,
    StorageError,
    upgrade_database,
)


def entry(member_id: int, text: str) -> RequestEntry:
    return RequestEntry(
        member_id=member_id,
        guild_id=None,
        channel_id=None,
        kind=RequestKind.SIMILAR,
        input_text=text,
    )


@pytest.mark.asyncio
async def test_a_write_on_a_locked_database_is_bounded_kept_and_stored_by_the_next(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.sqlite3"
    upgrade_database(f"sqlite:///{path}")
    store = HistoryStore.from_url(f"sqlite:///{path}", busy_timeout=0.05, attempts=1)
    service = RecommendService(store, None)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")

    started = time.monotonic()
    await service.record(entry(1, "while locked"))
    took = time.monotonic() - started
    locker.execute("ROLLBACK")
    await service.record(entry(2, "after"))
    first, second = store.history(1, None), store.history(2, None)
    service.close()

    assert took < 2.0
    assert [row.input_text for row in first] == ["while locked"]
    assert [row.input_text for row in second] == ["after"]


@pytest.mark.asyncio
async def test_rows_kept_from_failed_writes_are_stored_at_shutdown(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    url = f"sqlite:///{path}"
    upgrade_database(url)
    service = RecommendService(HistoryStore.from_url(url, busy_timeout=0.05, attempts=1), None)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    await service.record(entry(1, "a"))
    await service.record(entry(2, "b"))
    locker.execute("ROLLBACK")

    service.close()

    store = HistoryStore.from_url(url)
    assert [row.input_text for row in store.history(1, None)] == ["a"]
    assert [row.input_text for row in store.history(2, None)] == ["b"]


def test_a_read_only_database_fails_the_start_up_write_probe(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    upgrade_database(f"sqlite:///{path}")
    HistoryStore.from_url(f"sqlite:///{path}").check_writable()

    with pytest.raises(StorageError, match="readonly"):
        HistoryStore.from_url(f"sqlite:///file:{path}?mode=ro&uri=true").check_writable()


@pytest.mark.asyncio
async def test_similar_names_resolve_by_artist_and_name_in_any_case_never_blank(
    model: Model, tmp_path: Path
) -> None:
    service = RecommendService(HistoryStore.from_url(f"sqlite:///{tmp_path / 'h.db'}"), None)
    await service.load_model(model.root)
    names = service.names
    assert names is not None
    track = model.world.groups[3][7]

    assert names.resolve(f"SONG {track}") == track
    assert names.resolve(f"artist g3 -  song {track}") == track
    for blank in ("", "   ", "\t"):
        with pytest.raises(BadInput, match="Give me a track link or name"):
            names.resolve(blank)
    assert names.suggest(f"Artist g3 - Song {track}")[0] == (f"Artist g3 - Song {track}", track)
    service.close()
