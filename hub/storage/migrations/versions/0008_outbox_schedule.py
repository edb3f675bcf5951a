"""outbox schedule: a failed message's reason, and the durable retry schedule of unsent ones

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.storage.tables

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivery_error", sa.Text(), nullable=True))
    op.create_table(
        "outbox_schedule",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", hub.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("queued_at", hub.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"]),
        sa.PrimaryKeyConstraint("message_id"),
    )


def downgrade() -> None:
    op.drop_table("outbox_schedule")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("delivery_error")
