"""kb_suggestion: questions learned from traffic, proposed as alternate questions

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.storage.tables

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kb_suggestion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("question", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("normalized", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("conversation_ids", sa.JSON(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_at", hub.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", hub.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", hub.storage.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["article_id"], ["article.id"]),
        sa.ForeignKeyConstraint(["decided_by"], ["agent.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("article_id", "normalized", name="uq_kb_suggestion_question"),
    )
    with op.batch_alter_table("kb_suggestion", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_kb_suggestion_article_id"), ["article_id"], unique=False
        )
        batch_op.create_index(
            "ix_kb_suggestion_status_seen", ["status", "last_seen_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("kb_suggestion", schema=None) as batch_op:
        batch_op.drop_index("ix_kb_suggestion_status_seen")
        batch_op.drop_index(batch_op.f("ix_kb_suggestion_article_id"))
    op.drop_table("kb_suggestion")
