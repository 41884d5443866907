"""The webhook part of a batch summary: the last event to callback_url and its latest attempts."""

from __future__ import annotations

from service.store import Session
from service.store import webhooks as webhooks_store
from service.views.response_bodies import WebhookAttemptOut, WebhookOut

WEBHOOK_ATTEMPTS_SHOWN = 10


async def webhook_out(session: Session, batch_id: str) -> WebhookOut | None:
    delivery = await webhooks_store.latest_delivery(session, batch_id)
    if delivery is None or delivery.id is None:
        return None
    attempts = await webhooks_store.attempts(session, delivery.id, limit=WEBHOOK_ATTEMPTS_SHOWN)
    return WebhookOut(
        url=delivery.url,
        event=delivery.event,
        webhook_id=delivery.message_id,
        state=delivery.state,
        attempts=delivery.attempts,
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
        attempt_log=[
            WebhookAttemptOut(
                number=attempt.number,
                status_code=attempt.status_code,
                error=attempt.error,
                started_at=attempt.started_at,
                finished_at=attempt.finished_at,
            )
            for attempt in attempts
        ],
    )
