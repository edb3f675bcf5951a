"""kb_feedback.visitor_id: one help-center vote per visitor and article

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("kb_feedback", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("visitor_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.create_unique_constraint("uq_kb_feedback_visitor", ["article_id", "visitor_id"])


def downgrade() -> None:
    with op.batch_alter_table("kb_feedback", schema=None) as batch_op:
        batch_op.drop_constraint("uq_kb_feedback_visitor", type_="unique")
        batch_op.drop_column("visitor_id")
