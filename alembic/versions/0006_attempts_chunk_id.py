"""attempts.provider_batch_row_id is attempts.chunk_id

"Provider batch" named both our row (a chunk of a pass) and the provider's batch. Our row is a chunk now in
code and in this column; the provider's batch keeps its name (provider_batches.provider_batch_id). The table
keeps its name.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 04:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# In place on both databases (SQLite >= 3.25 renames a column and the indexes and foreign keys naming it).


def upgrade() -> None:
    op.execute("ALTER TABLE attempts RENAME COLUMN provider_batch_row_id TO chunk_id")


def downgrade() -> None:
    op.execute("ALTER TABLE attempts RENAME COLUMN chunk_id TO provider_batch_row_id")
