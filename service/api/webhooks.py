"""callback_url at submit (signing key present, SSRF guard) and POST /batches/{id}/webhook/redeliver."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import update
from sqlmodel import col

from service import repository
from service.api.deps import SessionDep, StateDep
from service.api.errors import Problem, conflict, invalid, not_found
from service.api.presenters import webhook_out
from service.api.schemas import WebhookOut
from service.models import TERMINAL_BATCH_STATUSES, Batch, WebhookDelivery, WebhookState, utcnow
from service.webhooks.events import queue_terminal_event
from service.webhooks.ssrf import CallbackRefused, parse_callback_url

router = APIRouter(prefix="/batches", tags=["batches"])


async def check_callback_url(state: StateDep, callback_url: str) -> None:
    """422 unless the URL is well formed, webhooks can be signed, and the URL passes the SSRF guard (which
    checks it again at every delivery)."""
    try:
        parse_callback_url(callback_url)
        if state.settings.webhook_secret is None:
            raise CallbackRefused(
                "callback_url needs WEBHOOK_SECRET to be set on the service (webhooks are always signed); "
                "leave callback_url out and poll GET /batches/{id}, or ask for WEBHOOK_SECRET to be configured"
            )
        await state.callback_guard.vet(callback_url)
    except CallbackRefused as refusal:
        raise invalid(str(refusal), field="callback_url") from None


@router.post(
    "/{batch_id}/webhook/redeliver",
    status_code=202,
    response_model=WebhookOut,
    summary="Send the batch's last webhook event again (same webhook-id, new signature)",
    responses={409: {"description": "The batch has not finished yet"}},
)
async def redeliver_webhook(batch_id: str, session: SessionDep, state: StateDep) -> WebhookOut:
    batch = await session.get(Batch, batch_id)
    if batch is None:
        raise not_found(f"batch {batch_id!r}")
    if not batch.callback_url:
        raise Problem(
            404, "not-found", "Not found", f"batch {batch_id!r} has no callback_url, so there is no webhook to send"
        )
    if batch.status not in TERMINAL_BATCH_STATUSES:
        raise conflict(f"batch {batch_id} is {batch.status}; its webhook is sent when it finishes")
    delivery = await repository.latest_webhook_delivery(session, batch_id)
    if delivery is None:
        await queue_terminal_event(session, state.settings, batch)
    else:
        # A new schedule from now; an attempt in flight loses its lease, so its outcome is not recorded over this.
        await session.execute(
            update(WebhookDelivery)
            .where(col(WebhookDelivery.id) == delivery.id)
            .values(
                state=WebhookState.PENDING,
                next_attempt_at=utcnow(),
                schedule_attempts=0,
                delivered_at=None,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
    await session.commit()
    view = await webhook_out(session, batch_id)
    assert view is not None
    return view
