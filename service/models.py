"""Database tables. Every change here needs an Alembic migration (tests/db/test_migrations.py checks)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Naive UTC: SQLite keeps no zone, so every timestamp in the database is UTC without tzinfo."""
    return datetime.now(UTC).replace(tzinfo=None)


class BatchStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_BATCH_STATUSES = frozenset({BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELLED})


class ItemStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PassStatus(StrEnum):
    PLANNED = "planned"  # created; attempts and chunks not yet laid out
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class PassKind(StrEnum):
    PRIMARY = "primary"
    FALLBACK = "fallback"
    RETRY = "retry"


class ChunkState(StrEnum):
    PENDING = "pending"  # nothing sent to the provider yet
    UPLOADING = "uploading"  # upload/create may have happened: reconcile before sending again
    SUBMITTED = "submitted"  # provider batch exists; polled until terminal
    DONE = "done"  # results ingested (or the chunk was abandoned with every attempt failed)


class AttemptStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def _json_column(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=nullable))


def _timestamp(nullable: bool = True) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(DateTime(), nullable=True))
    return Field(default_factory=utcnow, sa_column=Column(DateTime(), nullable=False, default=utcnow))


class Batch(SQLModel, table=True):
    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_status_created", "status", "created_at"),)

    id: str = Field(primary_key=True, max_length=40)
    status: str = Field(default=BatchStatus.QUEUED, max_length=16)
    model: str = Field(max_length=200)
    fallback_model: str = Field(max_length=200)
    fallback_enabled: bool = False
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict))
    fallback_params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict))
    output_schema: dict[str, Any] | None = _json_column(nullable=True)
    completion_window: str = Field(default="24h", max_length=8)
    callback_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    user_metadata: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict))
    item_count: int = 0
    cancel_requested: bool = False
    lease_owner: str | None = Field(default=None, max_length=80)
    lease_expires_at: datetime | None = _timestamp()
    created_at: datetime = _timestamp(nullable=False)
    updated_at: datetime = _timestamp(nullable=False)
    finished_at: datetime | None = _timestamp()


class Item(SQLModel, table=True):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("batch_id", "custom_id", name="uq_items_batch_custom_id"),
        Index("ix_items_batch_position", "batch_id", "position"),
        Index("ix_items_batch_status", "batch_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", max_length=40)
    custom_id: str = Field(max_length=512)
    position: int
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict))
    status: str = Field(default=ItemStatus.PENDING, max_length=16)
    # The attempt that decides the merged row (the latest finished one).
    deciding_attempt_id: int | None = Field(default=None)


class Pass(SQLModel, table=True):
    __tablename__ = "passes"
    __table_args__ = (UniqueConstraint("batch_id", "number", name="uq_passes_batch_number"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", max_length=40, index=True)
    number: int
    kind: str = Field(max_length=16)
    model: str = Field(max_length=200)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict))
    # For a retry limited to some items; None means every currently failed item.
    selected_custom_ids: list[str] | None = _json_column(nullable=True)
    status: str = Field(default=PassStatus.PLANNED, max_length=16)
    created_at: datetime = _timestamp(nullable=False)
    finished_at: datetime | None = _timestamp()


class ProviderBatch(SQLModel, table=True):
    """One chunk of a pass: at most one provider batch ever exists for it."""

    __tablename__ = "provider_batches"
    __table_args__ = (
        UniqueConstraint("pass_id", "chunk_index", name="uq_provider_batches_pass_chunk"),
        Index("ix_provider_batches_state_due", "state", "next_action_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", max_length=40, index=True)
    pass_id: int = Field(foreign_key="passes.id")
    chunk_index: int
    line_count: int = 0
    byte_count: int = 0
    state: str = Field(default=ChunkState.PENDING, max_length=16)
    input_file_id: str | None = Field(default=None, max_length=80)
    provider_batch_id: str | None = Field(default=None, max_length=80, unique=True)
    provider_status: str | None = Field(default=None, max_length=24)
    request_total: int = 0
    request_completed: int = 0
    request_failed: int = 0
    output_file_id: str | None = Field(default=None, max_length=80)
    error_file_id: str | None = Field(default=None, max_length=80)
    provider_errors: list[dict[str, Any]] | None = _json_column(nullable=True)
    next_action_at: datetime = _timestamp(nullable=False)
    retry_count: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    lease_owner: str | None = Field(default=None, max_length=80)
    lease_expires_at: datetime | None = _timestamp()
    created_at: datetime = _timestamp(nullable=False)
    submitted_at: datetime | None = _timestamp()
    finished_at: datetime | None = _timestamp()


class Attempt(SQLModel, table=True):
    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("item_id", "pass_id", name="uq_attempts_item_pass"),
        Index("ix_attempts_chunk_status", "provider_batch_row_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="items.id", index=True)
    pass_id: int = Field(foreign_key="passes.id", index=True)
    provider_batch_row_id: int = Field(foreign_key="provider_batches.id")
    status: str = Field(default=AttemptStatus.PENDING, max_length=16)
    error_code: str | None = Field(default=None, max_length=80)
    error_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    content: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    output: Any | None = _json_column(nullable=True)
    finish_reason: str | None = Field(default=None, max_length=32)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    provider_request_id: str | None = Field(default=None, max_length=80)
    created_at: datetime = _timestamp(nullable=False)
    finished_at: datetime | None = _timestamp()
