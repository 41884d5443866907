"""deletion and retention: a batch records when it was deleted and when its content was purged

`deleted_at` is set by DELETE /batches/{id} (nothing of its content is served from then on); `purged_at` once a
worker has purged its bodies, outputs, error texts, spool and provider files (by DELETE, or RETENTION_SECONDS after
it finished). Two partial indexes find the batches a purge sweep has to purge (deleted ones, finished ones by when
they finished) among those not purged yet, without reading the others.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDED = (
    ("batches", sa.Column("deleted_at", sa.DateTime(), nullable=True)),
    ("batches", sa.Column("purged_at", sa.DateTime(), nullable=True)),
)


INDEXES = (
    ("ix_batches_deleted_unpurged", "deleted_at", "deleted_at IS NOT NULL AND purged_at IS NULL"),
    ("ix_batches_finished_unpurged", "finished_at", "finished_at IS NOT NULL AND purged_at IS NULL"),
)


def upgrade() -> None:
    for table, column in ADDED:
        op.add_column(table, column)
    for name, column_name, where in INDEXES:
        op.create_index(name, "batches", [column_name], sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def downgrade() -> None:
    for name, _column_name, _where in INDEXES:
        op.drop_index(name, table_name="batches")
    for table, column in reversed(ADDED):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column.name}")
