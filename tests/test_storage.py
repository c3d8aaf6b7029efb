"""History storage on real SQLite files: migrations, round trips, feedback, forgetting, locks."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from bot.storage import (
    Base,
    ForgottenRows,
    HistoryStore,
    RequestEntry,
    RequestKind,
    RequestStatus,
    StorageError,
    TrackEntry,
    alembic_config,
    create_storage_engine,
    upgrade_database,
)

REPO = Path(__file__).resolve().parents[1]
TABLES = {"alembic_version", "members", "requests", "recommended_tracks", "feedback"}
ALICE, BOB = 111_111_111_111_111_111, 222_222_222_222_222_222  # snowflakes need 64 bits
GUILD, OTHER_GUILD, CHANNEL = 900_000_000_000_000_001, 900_000_000_000_000_002, 42


def track_id(number: int) -> str:
    return f"track{number:017d}"


def entry(**changes: object) -> RequestEntry:
    values: dict[str, object] = {
        "member_id": ALICE,
        "guild_id": GUILD,
        "channel_id": CHANNEL,
        "kind": RequestKind.RECOMMEND,
        "input_text": "https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M",
        "used": 8,
        "skipped": 2,
        "unknown": 1,
        "total": 11,
        "tracks": (
            TrackEntry(track_id(1), 0.9, ("collaborative", "content"), track_id(7)),
            TrackEntry(track_id(2), 0.5, ("content",)),
            TrackEntry(track_id(3), 0.25),
        ),
    }
    values.update(changes)
    return RequestEntry(**values)  # type: ignore[arg-type]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def row_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("members", "requests", "recommended_tracks", "feedback")
            }
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file at the newest schema, migrated once and copied by ``database``."""
    path = tmp_path_factory.mktemp("migrated") / "history.sqlite3"
    upgrade_database(sqlite_url(path))
    return path


@pytest.fixture
def database(migrated: Path, tmp_path: Path) -> str:
    path = tmp_path / "history.sqlite3"
    shutil.copyfile(migrated, path)
    return sqlite_url(path)


@pytest.fixture
def store(database: str) -> Iterator[HistoryStore]:
    store = HistoryStore.from_url(database)
    yield store
    store.close()


@pytest.fixture
def lock(database: str) -> Iterator[sqlite3.Connection]:
    """Another connection that can hold the database's write lock."""
    connection = sqlite3.connect(
        database.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    yield connection
    connection.close()


# --- migrations ------------------------------------------------------------------------------


def test_migrations_upgrade_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "fresh.sqlite3")

    upgrade_database(url)
    assert table_names(url) == TABLES

    command.downgrade(alembic_config(url), "base")
    assert table_names(url) == {"alembic_version"}

    upgrade_database(url)
    assert table_names(url) == TABLES


def test_migrated_schema_matches_models(database: str) -> None:
    engine = create_engine(database)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()

    assert differences == []


def test_alembic_command_line_reads_url_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "cli.sqlite3"
    path.parent.mkdir()
    environment = {**os.environ, "HARMONYA_DATABASE_URL": sqlite_url(path)}

    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(REPO / "alembic.ini"), "upgrade", "head"],
        cwd=tmp_path,
        env=environment,
        check=True,
        capture_output=True,
    )

    assert table_names(sqlite_url(path)) == TABLES
    assert not (tmp_path / "harmonya.sqlite3").exists()


def test_upgrade_is_a_no_op_on_a_current_database(database: str) -> None:
    upgrade_database(database)

    assert table_names(database) == TABLES


# --- requests and history --------------------------------------------------------------------


def test_record_and_history_round_trip_exact_values(store: HistoryStore) -> None:
    before = datetime.now(UTC)
    request_id = store.record_request(entry())
    after = datetime.now(UTC)

    [stored] = store.history(ALICE, GUILD, limit=10)

    assert stored.id == request_id
    assert before <= stored.created_at <= after
    assert stored.created_at.tzinfo is UTC
    assert (stored.member_id, stored.guild_id, stored.channel_id) == (ALICE, GUILD, CHANNEL)
    assert stored.kind is RequestKind.RECOMMEND
    assert stored.input_text == "https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M"
    assert (stored.used, stored.skipped, stored.unknown, stored.total) == (8, 2, 1, 11)
    assert (stored.status, stored.error) == (RequestStatus.OK, None)
    assert stored.tracks == (
        TrackEntry(track_id(1), 0.9, ("collaborative", "content"), track_id(7)),
        TrackEntry(track_id(2), 0.5, ("content",), None),
        TrackEntry(track_id(3), 0.25, (), None),
    )


def test_failed_request_is_stored_with_its_error(store: HistoryStore) -> None:
    failed = entry(
        kind=RequestKind.SIMILAR,
        input_text="spotify:track:unknown",
        used=0,
        skipped=0,
        unknown=0,
        total=0,
        status=RequestStatus.ERROR,
        error="that is not a playlist link",
        tracks=(),
    )
    store.record_request(failed)

    [stored] = store.history(ALICE, GUILD)

    assert (stored.kind, stored.status) == (RequestKind.SIMILAR, RequestStatus.ERROR)
    assert stored.error == "that is not a playlist link"
    assert stored.tracks == ()


def test_history_is_newest_first_limited_and_kept_per_guild(store: HistoryStore) -> None:
    ids = [store.record_request(entry(input_text=f"request {n}")) for n in range(5)]
    elsewhere = store.record_request(entry(guild_id=OTHER_GUILD))
    direct = store.record_request(entry(guild_id=None))
    store.record_request(entry(member_id=BOB))

    assert [r.id for r in store.history(ALICE, GUILD, limit=3)] == ids[:1:-1]
    assert [r.id for r in store.history(ALICE, OTHER_GUILD)] == [elsewhere]
    assert [r.id for r in store.history(ALICE, None)] == [direct]
    assert store.history(BOB, OTHER_GUILD) == []


def test_request_and_tracks_are_written_together_or_not_at_all(
    store: HistoryStore, database: str
) -> None:
    broken = entry(tracks=(TrackEntry(track_id(1), 0.5), TrackEntry(track_id(2), None)))  # type: ignore[arg-type]

    with pytest.raises(StorageError, match="record request failed"):
        store.record_request(broken)

    assert row_counts(database) == {
        "members": 0,
        "requests": 0,
        "recommended_tracks": 0,
        "feedback": 0,
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tracks": (TrackEntry("short", 0.5),)}, "22 characters"),
        ({"skipped": -1}, "skipped must not be negative"),
        ({"tracks": (TrackEntry(track_id(1), 0.5, ("a,b",)),)}, "comma"),
    ],
)
def test_bad_requests_are_refused_before_the_database(
    store: HistoryStore, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.record_request(entry(**changes))


# --- feedback and forgetting -----------------------------------------------------------------


def test_latest_feedback_wins_and_only_dislikes_are_listed(store: HistoryStore) -> None:
    store.set_feedback(ALICE, track_id(1), liked=False)
    store.set_feedback(ALICE, track_id(2), liked=False)
    store.set_feedback(ALICE, track_id(3), liked=True)
    store.set_feedback(ALICE, track_id(2), liked=True)  # changed her mind
    store.set_feedback(ALICE, track_id(3), liked=False)
    store.set_feedback(BOB, track_id(4), liked=False)

    assert store.disliked_tracks(ALICE) == {track_id(1), track_id(3)}
    assert store.disliked_tracks(BOB) == {track_id(4)}
    assert store.disliked_tracks(333) == set()


def test_forget_deletes_that_member_only(store: HistoryStore, database: str) -> None:
    for member_id in (ALICE, BOB):
        store.record_request(entry(member_id=member_id))
        store.record_request(entry(member_id=member_id, guild_id=OTHER_GUILD, tracks=()))
        store.set_feedback(member_id, track_id(1), liked=False)

    forgotten = store.forget(ALICE)

    assert forgotten == ForgottenRows(members=1, requests=2, tracks=3, feedback=1)
    assert forgotten.total == 7
    assert store.history(ALICE, GUILD) == [] and store.disliked_tracks(ALICE) == set()
    assert row_counts(database) == {
        "members": 1,
        "requests": 2,
        "recommended_tracks": 3,
        "feedback": 1,
    }
    assert len(store.history(BOB, GUILD)) == 1
    assert store.forget(ALICE) == ForgottenRows()


# --- concurrency, locks and SQLite settings --------------------------------------------------


@pytest.mark.parametrize("shared", [True, False], ids=["one store", "a store per writer"])
def test_two_writers_at_once_lose_nothing(database: str, shared: bool) -> None:
    stores = [HistoryStore.from_url(database) for _ in range(1 if shared else 2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(member_id: int, store: HistoryStore) -> None:
        barrier.wait()
        try:
            for number in range(50):
                store.record_request(entry(member_id=member_id, input_text=f"#{number}"))
                store.set_feedback(member_id, track_id(number), liked=number % 2 == 0)
        except BaseException as error:  # reported below, in the test's own thread
            errors.append(error)

    writers = [
        threading.Thread(target=write, args=(member_id, stores[number % len(stores)]))
        for number, member_id in enumerate((ALICE, BOB))
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=30)
    for store in stores:
        store.close()

    assert errors == []
    assert row_counts(database) == {
        "members": 2,
        "requests": 100,
        "recommended_tracks": 300,
        "feedback": 100,
    }


def test_write_to_a_locked_database_is_retried_until_released(
    database: str, lock: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    store = HistoryStore.from_url(database, busy_timeout=0.05, attempts=8, backoff=0.05)
    lock.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.3, lock.execute, args=("COMMIT",))

    release.start()
    with caplog.at_level(logging.WARNING, logger="bot.storage.history"):
        request_id = store.record_request(entry())
    release.join()

    assert [r.id for r in store.history(ALICE, GUILD)] == [request_id]
    assert any("database is locked" in r.getMessage() for r in caplog.records)
    store.close()


def test_write_to_a_database_locked_too_long_raises_storage_error(
    database: str, lock: sqlite3.Connection
) -> None:
    store = HistoryStore.from_url(database, busy_timeout=0.02, attempts=3, backoff=0.01)
    lock.execute("BEGIN EXCLUSIVE")

    with pytest.raises(StorageError, match="after 3 attempts: database is locked"):
        store.set_feedback(ALICE, track_id(1), liked=False)

    lock.execute("ROLLBACK")
    store.close()


def test_store_on_an_unmigrated_database_fails_at_once_without_retries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = HistoryStore.from_url(sqlite_url(tmp_path / "empty.sqlite3"), attempts=5, backoff=1)

    with caplog.at_level(logging.WARNING), pytest.raises(StorageError, match="no such table"):
        store.disliked_tracks(ALICE)

    assert caplog.records == []
    store.close()


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(database: str) -> None:
    engine = create_storage_engine(database, busy_timeout=2.5)
    with engine.connect() as connection:
        settings = {
            name: connection.execute(text(f"PRAGMA {name}")).scalar_one()
            for name in ("journal_mode", "busy_timeout", "foreign_keys")
        }
    engine.dispose()

    assert settings == {"journal_mode": "wal", "busy_timeout": 2500, "foreign_keys": 1}
