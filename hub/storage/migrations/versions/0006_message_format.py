"""message format: "plain" (customers) or "markdown" (bot and agents), rendered per channel

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("format", sa.String(length=16), nullable=False, server_default="plain")
        )
    # What the bot and agents wrote before is Markdown (the bot's answers quote articles).
    op.execute("UPDATE message SET format = 'markdown' WHERE author_kind IN ('bot', 'agent')")


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("format")
