"""provider_health remembers which row failed last

One chunk that fails again and again (a request the provider chokes on) must not pause every worker's provider
work for longer and longer as an outage of everyone's requests does: the shared pause grows only with failures
of different rows in a row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("provider_health", sa.Column("last_failure_source", sa.String(length=80), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE provider_health DROP COLUMN last_failure_source")  # in place (SQLite >= 3.35)
