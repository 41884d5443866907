"""provider_health remembers which row failed last

One chunk that fails again and again (a request the provider chokes on) must not pause every worker's provider
work as an outage would: a failure counts towards the shared back-off only when it comes from another row than
the failure before it.

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
    with op.batch_alter_table("provider_health") as table:
        table.drop_column("last_failure_source")
