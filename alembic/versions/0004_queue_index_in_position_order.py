"""the queue index of items holds their position

A later pass reads the items the cascade queued for it by keyset on position, 500 at a time. The partial index
on (batch_id, next_tier) gave them in no order: with statistics taken before the queue filled (after the first
pass's lay-out), PostgreSQL read and sorted the whole queue, bodies included, for every page (12-22 ms a page at
20,000 queued items, quadratic in the queue's length). With the position in the index each page is a range.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 19:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED = sa.text("next_tier IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_items_batch_next_tier", table_name="items")
    op.create_index(
        "ix_items_batch_next_tier_position",
        "items",
        ["batch_id", "next_tier", "position"],
        sqlite_where=QUEUED,
        postgresql_where=QUEUED,
    )


def downgrade() -> None:
    op.drop_index("ix_items_batch_next_tier_position", table_name="items")
    op.create_index(
        "ix_items_batch_next_tier", "items", ["batch_id", "next_tier"], sqlite_where=QUEUED, postgresql_where=QUEUED
    )
