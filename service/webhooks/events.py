"""Webhook events: which one a terminal batch sends, and its payload (the batch summary of GET /batches/{id})."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlmodel.ext.asyncio.session import AsyncSession
from ulid import ULID

from service.api.presenters import batch_out
from service.models import Batch, BatchStatus, WebhookDelivery, utcnow
from service.settings import Settings

EVENT_FOR_STATUS = {
    BatchStatus.COMPLETED: "batch.completed",
    BatchStatus.FAILED: "batch.failed",
    BatchStatus.CANCELLED: "batch.cancelled",
}


def new_message_id() -> str:
    return f"msg_{str(ULID()).lower()}"


def absolute_url(settings: Settings, path: str) -> str:
    return f"{settings.public_base_url}{path}" if settings.public_base_url else path


async def event_payload(session: AsyncSession, settings: Settings, batch: Batch, event: str) -> str:
    """Standard Webhooks' recommended shape: {"type", "timestamp", "data"}; data is the batch summary."""
    summary = await batch_out(session, batch)
    data = summary.model_dump(mode="json", exclude={"webhook"})
    data["results_url"] = absolute_url(settings, summary.results_url)
    body = {"type": event, "timestamp": datetime.now(UTC).isoformat(), "data": data}
    return orjson.dumps(body).decode("utf-8")


async def queue_terminal_event(session: AsyncSession, settings: Settings, batch: Batch) -> WebhookDelivery | None:
    """Called in the transaction that made the batch terminal, so the event is stored if and only if that
    transition is: nothing is lost when a worker dies, nothing is sent for a state that was rolled back."""
    event = EVENT_FOR_STATUS.get(BatchStatus(batch.status))
    if event is None or not batch.callback_url:
        return None
    delivery = WebhookDelivery(
        message_id=new_message_id(),
        batch_id=batch.id,
        event=event,
        url=batch.callback_url,
        payload=await event_payload(session, settings, batch, event),
        next_attempt_at=utcnow(),
    )
    session.add(delivery)
    return delivery
