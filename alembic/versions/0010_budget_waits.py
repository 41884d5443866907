"""a batch counts the items that wait for room in its budget

Items whose worst case does not fit what is left of the budget while reservations are in flight wait for a later
round instead of failing; the batch says how many wait (set at each round's lay-out).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("batches", sa.Column("budget_waiting", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.execute("ALTER TABLE batches DROP COLUMN budget_waiting")
