"""The history tables: members, their requests, the tracks each answer gave, and feedback.

Discord ids are snowflakes up to 2**63, hence ``BigInteger``. A member is a Discord user, not a
user-in-a-guild: a dislike follows the member into every server; requests keep their guild and
channel so ``/history`` can show only the server it is asked in.

Constraint names come from one naming convention so Alembic's batch mode can find and alter
them on SQLite, which cannot alter a table in place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
TRACK_ID_LENGTH = 22


class RequestKind(StrEnum):
    RECOMMEND = "recommend"
    SIMILAR = "similar"


class RequestStatus(StrEnum):
    OK = "ok"
    ERROR = "error"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Member(Base):
    __tablename__ = "members"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Request(Base):
    __tablename__ = "requests"
    __table_args__ = (
        CheckConstraint("kind IN ('recommend', 'similar')", name="kind"),
        CheckConstraint("status IN ('ok', 'error')", name="status"),
        CheckConstraint(
            "used >= 0 AND skipped >= 0 AND unknown >= 0 AND total >= 0", name="counts"
        ),
        Index(None, "member_id", "guild_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id", ondelete="CASCADE"))
    # None outside a server (direct messages, the console).
    guild_id: Mapped[int | None] = mapped_column(BigInteger)
    channel_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    # What the member gave, as given: a playlist link, track links, an uploaded file's name.
    input_text: Mapped[str] = mapped_column(Text)
    used: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    unknown: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(8))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    tracks: Mapped[list[RecommendedTrack]] = relationship(
        back_populates="request",
        order_by="RecommendedTrack.rank",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class RecommendedTrack(Base):
    __tablename__ = "recommended_tracks"
    __table_args__ = (CheckConstraint("rank >= 1", name="rank"),)

    request_id: Mapped[int] = mapped_column(
        ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True
    )
    rank: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    track_id: Mapped[str] = mapped_column(String(TRACK_ID_LENGTH))
    score: Mapped[float] = mapped_column(Float)
    # The towers that proposed the track, comma-separated ("collaborative,content").
    sources: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str | None] = mapped_column(Text)

    request: Mapped[Request] = relationship(back_populates="tracks")


class Feedback(Base):
    """A member's latest like or dislike of a track; a new mark replaces the old one."""

    __tablename__ = "feedback"

    member_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    track_id: Mapped[str] = mapped_column(String(TRACK_ID_LENGTH), primary_key=True)
    liked: Mapped[bool] = mapped_column(Boolean)
    marked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
