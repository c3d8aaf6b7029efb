"""``HistoryStore``: what the bot writes and reads about members' requests and feedback.

Plain and synchronous; the bot calls it from an executor. A write that meets a locked database
(another writer, a checkpoint) is retried a few times with a growing pause; after that, and for
any other database failure, :class:`StorageError` is raised for the caller to log. A lost
history row must never cost the member their answer.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from bot.storage.engine import BEGIN_MODE, DEFAULT_BUSY_TIMEOUT, create_storage_engine
from bot.storage.models import (
    TRACK_ID_LENGTH,
    Feedback,
    Member,
    RecommendedTrack,
    Request,
    RequestKind,
    RequestStatus,
    utcnow,
)
from recommender.text import printable

log = logging.getLogger(__name__)

T = TypeVar("T")


class StorageError(Exception):
    """The history database could not do what was asked (after retries, for a locked one)."""


@dataclass(frozen=True)
class TrackEntry:
    """One recommended track as stored; its rank is its position in the request's tracks."""

    track_id: str
    score: float
    sources: tuple[str, ...] = ()
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class RequestEntry:
    """A request to record: who asked where, what they gave, what was made of it, the answer.

    ``used`` of ``total`` input tracks fed the model; ``skipped`` ones could not be read (local
    files, episodes, removed tracks); ``unknown`` ones the model does not know.
    """

    member_id: int
    guild_id: int | None
    channel_id: int | None
    kind: RequestKind
    input_text: str
    used: int = 0
    skipped: int = 0
    unknown: int = 0
    total: int = 0
    status: RequestStatus = RequestStatus.OK
    error: str | None = None
    tracks: tuple[TrackEntry, ...] = ()


@dataclass(frozen=True, kw_only=True)
class StoredRequest(RequestEntry):
    """A recorded request, as ``history`` returns it."""

    id: int
    created_at: datetime  # timezone-aware, UTC


@dataclass(frozen=True)
class ForgottenRows:
    """How many rows ``forget`` deleted from each table."""

    members: int = 0
    requests: int = 0
    tracks: int = 0
    feedback: int = 0

    @property
    def total(self) -> int:
        return self.members + self.requests + self.tracks + self.feedback


class HistoryStore:
    """Members' requests, the tracks they were given, and their likes and dislikes.

    ``attempts`` counts tries of one transaction that meets a locked database; the pause
    between tries starts at ``backoff`` seconds and doubles. Run ``upgrade_database`` first::

        store = HistoryStore.from_url("sqlite:///harmonya.sqlite3")
        banned = store.disliked_tracks(interaction.user.id)
    """

    def __init__(self, engine: Engine, *, attempts: int = 2, backoff: float = 0.1) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self._engine = engine
        self._write_engine = engine.execution_options(**{BEGIN_MODE: "IMMEDIATE"})
        self._attempts = attempts
        self._backoff = backoff

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        attempts: int = 2,
        backoff: float = 0.1,
    ) -> HistoryStore:
        engine = create_storage_engine(url, busy_timeout=busy_timeout)
        return cls(engine, attempts=attempts, backoff=backoff)

    def close(self) -> None:
        self._engine.dispose()

    def check_writable(self) -> None:
        """Raise StorageError unless a write can be made (a read-only file, a full disk)."""
        member = Member(id=-1, created_at=utcnow())

        def work(session: Session) -> None:
            session.add(member)
            session.flush()
            session.rollback()

        self._run("a test write to the history database", work, write=True)

    def record_request(self, entry: RequestEntry) -> int:
        """Store a request and its tracks in one transaction; returns the request's id."""
        _check_request(entry)

        def work(session: Session) -> int:
            self._ensure_member(session, entry.member_id)
            request = _request_row(entry)
            session.add(request)
            session.flush()
            return request.id

        request_id = self._run("record request", work, write=True)
        log.debug("recorded request %d of member %d", request_id, entry.member_id)
        return request_id

    def history(self, member_id: int, guild_id: int | None, limit: int = 10) -> list[StoredRequest]:
        """The member's latest requests in this guild (``None``: outside any), newest first."""
        query = (
            select(Request)
            .where(Request.member_id == member_id)
            .where(Request.guild_id.is_not_distinct_from(guild_id))
            .order_by(Request.created_at.desc(), Request.id.desc())
            .limit(limit)
            .options(selectinload(Request.tracks))
        )

        def work(session: Session) -> list[StoredRequest]:
            return [_stored_request(row) for row in session.scalars(query)]

        return self._run("read history", work, write=False)

    def set_feedback(self, member_id: int, track_id: str, liked: bool) -> None:
        """Mark a track liked or disliked for the member; the latest mark replaces earlier ones."""
        _check_track_id(track_id)
        values = {"member_id": member_id, "track_id": track_id, "liked": liked}

        def work(session: Session) -> None:
            self._ensure_member(session, member_id)
            statement = self._insert(Feedback).values(**values, marked_at=utcnow())
            statement = statement.on_conflict_do_update(
                index_elements=[Feedback.member_id, Feedback.track_id],
                set_={"liked": liked, "marked_at": statement.excluded.marked_at},
            )
            session.execute(statement)

        self._run("set feedback", work, write=True)

    def disliked_tracks(self, member_id: int) -> set[str]:
        """Track ids the member last marked as disliked."""
        query = select(Feedback.track_id).where(
            Feedback.member_id == member_id, Feedback.liked.is_(False)
        )
        return self._run("read dislikes", lambda s: set(s.scalars(query)), write=False)

    def forget(self, member_id: int) -> ForgottenRows:
        """Delete everything stored about the member, in one transaction."""

        def work(session: Session) -> ForgottenRows:
            their_requests = select(Request.id).where(Request.member_id == member_id)
            # Children before parents: arguments are evaluated in the order written.
            return ForgottenRows(
                tracks=_delete(
                    session, RecommendedTrack, RecommendedTrack.request_id.in_(their_requests)
                ),
                requests=_delete(session, Request, Request.member_id == member_id),
                feedback=_delete(session, Feedback, Feedback.member_id == member_id),
                members=_delete(session, Member, Member.id == member_id),
            )

        forgotten = self._run("forget member", work, write=True)
        log.info("forgot member %d: %d rows", member_id, forgotten.total)
        return forgotten

    def _ensure_member(self, session: Session, member_id: int) -> None:
        statement = self._insert(Member).values(id=member_id, created_at=utcnow())
        session.execute(statement.on_conflict_do_nothing(index_elements=[Member.id]))

    def _insert(self, model: type[Any]) -> Any:
        # Both dialects' INSERT ... ON CONFLICT share this interface; no other is supported.
        dialect = self._engine.dialect.name
        if dialect == "sqlite":
            return sqlite.insert(model)
        if dialect == "postgresql":
            return postgresql.insert(model)
        raise StorageError(f"history storage supports SQLite and PostgreSQL, not {dialect}")

    def _run(self, action: str, work: Callable[[Session], T], *, write: bool) -> T:
        engine = self._write_engine if write else self._engine
        for attempt in range(1, self._attempts + 1):
            try:
                with Session(engine, expire_on_commit=False) as session, session.begin():
                    return work(session)
            except OperationalError as error:
                if not _is_transient(error):
                    raise StorageError(f"{action} failed: {error.orig}") from error
                if attempt == self._attempts:
                    raise StorageError(
                        f"{action} failed after {attempt} attempts: {error.orig}"
                    ) from error
                # Jitter keeps two waiting writers from retrying in lockstep.
                delay = self._backoff * 2 ** (attempt - 1) * random.uniform(1.0, 1.5)
                log.warning(
                    "%s: %s; retrying in %.2f s (attempt %d of %d)",
                    action,
                    error.orig,
                    delay,
                    attempt,
                    self._attempts,
                )
                time.sleep(delay)
            except SQLAlchemyError as error:
                raise StorageError(f"{action} failed: {error}") from error
        raise AssertionError("unreachable")  # the loop returns or raises


def _is_transient(error: OperationalError) -> bool:
    """Worth another try: a lock another writer holds, or (other databases) a lost connection."""
    if isinstance(error.orig, sqlite3.Error):
        message = str(error.orig)
        return "database is locked" in message or "database is busy" in message
    return True


def _check_track_id(track_id: str) -> None:
    if len(track_id) != TRACK_ID_LENGTH:
        raise ValueError(f"a track id has {TRACK_ID_LENGTH} characters, got {track_id!r}")


def _check_request(entry: RequestEntry) -> None:
    counts = {
        "used": entry.used,
        "skipped": entry.skipped,
        "unknown": entry.unknown,
        "total": entry.total,
    }
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")
    for track in entry.tracks:
        _check_track_id(track.track_id)
        if any("," in source for source in track.sources):
            raise ValueError(f"a source name cannot contain a comma: {track.sources!r}")


def _request_row(entry: RequestEntry) -> Request:
    return Request(
        member_id=entry.member_id,
        guild_id=entry.guild_id,
        channel_id=entry.channel_id,
        kind=RequestKind(entry.kind).value,
        # What members typed or uploaded: nothing SQLite cannot encode (a lone surrogate).
        input_text=printable(entry.input_text),
        used=entry.used,
        skipped=entry.skipped,
        unknown=entry.unknown,
        total=entry.total,
        status=RequestStatus(entry.status).value,
        error=None if entry.error is None else printable(entry.error),
        created_at=utcnow(),
        tracks=[
            RecommendedTrack(
                rank=rank,
                track_id=track.track_id,
                score=track.score,
                sources=",".join(track.sources),
                reason=track.reason,
            )
            for rank, track in enumerate(entry.tracks, start=1)
        ],
    )


def _stored_request(row: Request) -> StoredRequest:
    return StoredRequest(
        id=row.id,
        created_at=_as_utc(row.created_at),
        member_id=row.member_id,
        guild_id=row.guild_id,
        channel_id=row.channel_id,
        kind=RequestKind(row.kind),
        input_text=row.input_text,
        used=row.used,
        skipped=row.skipped,
        unknown=row.unknown,
        total=row.total,
        status=RequestStatus(row.status),
        error=row.error,
        tracks=tuple(
            TrackEntry(
                track_id=track.track_id,
                score=track.score,
                sources=tuple(track.sources.split(",")) if track.sources else (),
                reason=track.reason,
            )
            for track in row.tracks
        ),
    )


def _as_utc(value: datetime) -> datetime:
    # SQLite keeps no time zone; every stored time was written in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _delete(session: Session, model: type[Any], condition: Any) -> int:
    result = session.execute(delete(model).where(condition))
    return int(getattr(result, "rowcount", 0))
