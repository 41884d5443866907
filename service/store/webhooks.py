"""Webhook deliveries (one per terminal event of a batch) and their attempts."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.models import WebhookAttempt, WebhookDelivery, WebhookState
from service.store.unit import rows_affected


async def latest_delivery(session: AsyncSession, batch_id: str) -> WebhookDelivery | None:
    result = await session.exec(
        select(WebhookDelivery)
        .where(col(WebhookDelivery.batch_id) == batch_id)
        .order_by(col(WebhookDelivery.id).desc())
        .limit(1)
    )
    return result.first()


async def attempts(session: AsyncSession, delivery_id: int, *, limit: int) -> list[WebhookAttempt]:
    """The latest attempts of a delivery, newest first."""
    result = await session.exec(
        select(WebhookAttempt)
        .where(col(WebhookAttempt.delivery_id) == delivery_id)
        .order_by(col(WebhookAttempt.number).desc())
        .limit(limit)
    )
    return list(result.all())


async def insert_delivery(session: AsyncSession, delivery: WebhookDelivery) -> None:
    session.add(delivery)
    await session.flush()


async def requeue(session: AsyncSession, delivery_id: int) -> None:
    """A new schedule from now; an attempt in flight loses its lease, so its outcome is not recorded over this."""
    await session.execute(
        update(WebhookDelivery)
        .where(col(WebhookDelivery.id) == delivery_id)
        .values(
            state=WebhookState.PENDING,
            next_attempt_at=utcnow(),
            schedule_attempts=0,
            delivered_at=None,
            lease_owner=None,
            lease_expires_at=None,
        )
    )


async def record_attempt(
    session: AsyncSession, delivery_id: int, owner: str, values: Mapping[str, object], attempt: WebhookAttempt
) -> bool:
    """The attempt row and the delivery's new counters and state, fenced on the lease; False (nothing written)
    when the lease was lost."""
    updated = await session.execute(
        update(WebhookDelivery)
        .where(col(WebhookDelivery.id) == delivery_id, col(WebhookDelivery.lease_owner) == owner)
        .values(**values)
    )
    if not rows_affected(updated):
        return False
    session.add(attempt)
    return True
