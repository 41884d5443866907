"""Finishing a batch: its terminal status and, in the same transaction, the webhook event it owes.

The event exists if and only if the terminal state does: nothing is lost when a worker dies, nothing is sent
for a state that was rolled back. Its payload is the batch summary (`service/views/`), frozen at that moment.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from ulid import ULID

from service.batches.config import LifecycleConfig
from service.batches.reading import batch_or_404
from service.kit.clock import utcnow
from service.kit.problems import Problem, conflict
from service.models import TERMINAL_BATCH_STATUSES, Batch, BatchStatus, WebhookDelivery
from service.settings import Settings
from service.store import Session
from service.store import batches as batches_store
from service.store import webhooks as webhooks_store
from service.views.batches import batch_out

EVENT_FOR_STATUS = {
    BatchStatus.COMPLETED: "batch.completed",
    BatchStatus.FAILED: "batch.failed",
    BatchStatus.CANCELLED: "batch.cancelled",
}


def new_message_id() -> str:
    return f"msg_{str(ULID()).lower()}"


def absolute_url(settings: Settings, path: str) -> str:
    return f"{settings.public_base_url}{path}" if settings.public_base_url else path


async def event_payload(session: Session, settings: Settings, batch: Batch, event: str) -> str:
    """Standard Webhooks' recommended shape: {"type", "timestamp", "data"}; data is the batch summary."""
    summary = await batch_out(session, batch, with_webhook=False)
    data = summary.model_dump(mode="json", exclude={"webhook"})
    data["results_url"] = absolute_url(settings, summary.results_url)
    body = {"type": event, "timestamp": datetime.now(UTC).isoformat(), "data": data}
    return orjson.dumps(body).decode("utf-8")


async def queue_terminal_event(session: Session, settings: Settings, batch: Batch) -> WebhookDelivery | None:
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
    await webhooks_store.insert_delivery(session, delivery)
    return delivery


async def finish(session: Session, config: LifecycleConfig, batch: Batch, status: BatchStatus) -> Batch:
    """Write the terminal status (releasing the batch's lease) and queue the webhook event."""
    await batches_store.set_status(session, batch.id, status, finished_at=utcnow(), release=True)
    finished = await batches_store.get_batch(session, batch.id)
    assert finished is not None
    await queue_terminal_event(session, config.settings, finished)
    return finished


async def redeliver(session: Session, config: LifecycleConfig, batch_id: str, tenant: str | None) -> None:
    """Send the last webhook event again (same webhook-id, new signature); queue it if none was made."""
    batch = await batch_or_404(session, batch_id, tenant)
    if not batch.callback_url:
        raise Problem(
            404, "not-found", "Not found", f"batch {batch_id!r} has no callback_url, so there is no webhook to send"
        )
    if batch.status not in TERMINAL_BATCH_STATUSES:
        raise conflict(f"batch {batch_id} is {batch.status}; its webhook is sent when it finishes")
    delivery = await webhooks_store.latest_delivery(session, batch_id)
    if delivery is None or delivery.id is None:
        await queue_terminal_event(session, config.settings, batch)
    else:
        await webhooks_store.requeue(session, delivery.id)
