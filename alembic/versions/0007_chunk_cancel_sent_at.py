"""a chunk remembers when its provider batch was asked to cancel

Whether a cancel was sent was read from the provider's own status word ("cancelling" on Groq); each provider
has its own words, so the chunk records the fact itself.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("provider_batches", sa.Column("cancel_sent_at", sa.DateTime(), nullable=True))
    # Chunks Groq was already asked to cancel (the exact time was not kept).
    op.execute("UPDATE provider_batches SET cancel_sent_at = submitted_at WHERE provider_status = 'cancelling'")


def downgrade() -> None:
    # In place on both databases (SQLite >= 3.35): batch mode would rebuild a table other rows reference.
    op.execute("ALTER TABLE provider_batches DROP COLUMN cancel_sent_at")
