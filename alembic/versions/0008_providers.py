"""tiers name their provider; prompt tokens read from and written to a cache are kept apart

Passes and chunks record the provider they run on (every existing row is Groq's); attempts keep, of their prompt
tokens, those the provider read from its cache and wrote to it, which OpenAI and Anthropic bill at their own
prices. A chunk records when a create was first asked for it (`create_sent_at`: before it, no provider batch of
it can exist); a provider whose batches carry no tag of ours (Anthropic) has at most one chunk at a time whose
create is unresolved (`sending_chunk_id`), so a batch found unrecorded is that chunk's.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# In place on both databases (ADD and DROP COLUMN, SQLite >= 3.35): batch mode would rebuild referenced tables.
ADDED = (
    ("passes", sa.Column("provider", sa.String(length=40), nullable=False, server_default="groq")),
    ("provider_batches", sa.Column("provider", sa.String(length=40), nullable=False, server_default="groq")),
    ("attempts", sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False, server_default="0")),
    ("attempts", sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False, server_default="0")),
    ("provider_batches", sa.Column("create_sent_at", sa.DateTime(), nullable=True)),
    ("provider_health", sa.Column("sending_chunk_id", sa.Integer(), nullable=True)),
)


def upgrade() -> None:
    for table, column in ADDED:
        op.add_column(table, column)


def downgrade() -> None:
    for table, column in reversed(ADDED):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column.name}")
