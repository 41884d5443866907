"""item bodies in a table of their own; attempt indexes without the status

An item's row is rewritten at every outcome and queue change; with its ~2 KB body inside, each such write
rewrote a page for one row. The body moves to `item_bodies` (written once, read at lay-out). The attempts'
chunk and request-hash indexes drop `status`, which every attempt changes once when it finishes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "item_bodies",
        sa.Column("item_id", sa.Integer(), sa.ForeignKey("items.id"), autoincrement=False, nullable=False),
        sa.Column("body_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("item_id"),
    )
    op.execute("INSERT INTO item_bodies (item_id, body_json) SELECT id, body_json FROM items")
    # In place, not by batch mode's copy of the table: on SQLite that drops `items`, which the attempts of any
    # existing batch reference (a foreign key violation). SQLite has had DROP COLUMN since 3.35.
    op.drop_column("items", "body_json")
    op.drop_index("ix_attempts_chunk_status", table_name="attempts")
    op.drop_index("ix_attempts_request_hash", table_name="attempts")
    op.create_index("ix_attempts_chunk", "attempts", ["provider_batch_row_id"])
    op.create_index("ix_attempts_request_hash", "attempts", ["request_hash"])


def downgrade() -> None:
    op.drop_index("ix_attempts_request_hash", table_name="attempts")
    op.drop_index("ix_attempts_chunk", table_name="attempts")
    op.create_index("ix_attempts_request_hash", "attempts", ["request_hash", "status"])
    op.create_index("ix_attempts_chunk_status", "attempts", ["provider_batch_row_id", "status"])
    # NOT NULL needs a default to be added in place; the UPDATE then gives every row its body.
    op.add_column("items", sa.Column("body_json", sa.Text(), nullable=False, server_default=""))
    op.execute("UPDATE items SET body_json = (SELECT body_json FROM item_bodies WHERE item_bodies.item_id = items.id)")
    op.drop_table("item_bodies")
