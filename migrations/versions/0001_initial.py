"""Initial schema: members, requests, recommended tracks, feedback.

Revision ID: 0001
Revises:
Created: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
    )
    op.create_table(
        "requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("input_text", sa.Text(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("unknown", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('recommend', 'similar')", name=op.f("ck_requests_kind")),
        sa.CheckConstraint("status IN ('ok', 'error')", name=op.f("ck_requests_status")),
        sa.CheckConstraint(
            "used >= 0 AND skipped >= 0 AND unknown >= 0 AND total >= 0",
            name=op.f("ck_requests_counts"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_requests_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
    )
    op.create_index(
        op.f("ix_requests_member_id_guild_id_created_at"),
        "requests",
        ["member_id", "guild_id", "created_at"],
    )
    op.create_table(
        "recommended_tracks",
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("track_id", sa.String(length=22), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("sources", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint("rank >= 1", name=op.f("ck_recommended_tracks_rank")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_recommended_tracks_request_id_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "rank", name=op.f("pk_recommended_tracks")),
    )
    op.create_table(
        "feedback",
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("track_id", sa.String(length=22), nullable=False),
        sa.Column("liked", sa.Boolean(), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_feedback_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_id", "track_id", name=op.f("pk_feedback")),
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("recommended_tracks")
    op.drop_index(op.f("ix_requests_member_id_guild_id_created_at"), table_name="requests")
    op.drop_table("requests")
    op.drop_table("members")
