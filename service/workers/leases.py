"""Claiming rows with leases: a conditional UPDATE, so two workers can never both own one row.

Every later write by the owner is fenced on `lease_owner`, so a worker that was paused past its lease
changes nothing when it wakes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from service.db import rows_affected
from service.models import Batch, ProviderBatch, utcnow


def _claim_statement(table: Any, row_id: Any, owner: str, lease_seconds: float) -> Any:
    now = utcnow()
    return (
        update(table)
        .where(table.id == row_id)
        .where(or_(table.lease_owner.is_(None), table.lease_owner == owner, table.lease_expires_at < now))
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds))
    )


def claim_batch(batch_id: str, owner: str, lease_seconds: float) -> Any:
    return _claim_statement(Batch, batch_id, owner, lease_seconds)


def release_batch(batch_id: str, owner: str) -> Any:
    return (
        update(Batch)
        .where(col(Batch.id) == batch_id, col(Batch.lease_owner) == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


def release_chunk(row_id: int, owner: str) -> Any:
    return (
        update(ProviderBatch)
        .where(col(ProviderBatch.id) == row_id, col(ProviderBatch.lease_owner) == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


def renew(table: Any, row_id: Any, owner: str, lease_seconds: float) -> Any:
    """Extend a lease we still hold; matches no row once another worker has taken it over."""
    return (
        update(table)
        .where(table.id == row_id, table.lease_owner == owner)
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
    )


def release_everything(table: Any, owner: str) -> Any:
    """A stopping worker's last word: whatever it still holds is free at once, not when the lease runs out."""
    return update(table).where(table.lease_owner == owner).values(lease_owner=None, lease_expires_at=None)


async def update_held_chunk(
    session: AsyncSession, worker_id: str, row_id: int, expected_state: str, **values: object
) -> bool:
    """Write to a chunk only while it is in `expected_state` and this worker holds its lease (the fence)."""
    result = await session.execute(
        update(ProviderBatch)
        .where(
            col(ProviderBatch.id) == row_id,
            col(ProviderBatch.state) == expected_state,
            col(ProviderBatch.lease_owner) == worker_id,
        )
        .values(**values)
    )
    return rows_affected(result) > 0
