"""The webhook loop: deliver due webhook events (at least once), and purge expired idempotency keys.

A delivery is leased like other work (one statement picks and leases it, see service/store/leases.py), so two workers
never send the same attempt at the same moment. The attempt's outcome is written in one transaction fenced
on the lease: the attempt row, the delivery's counters and its next attempt time (exponential back-off with
jitter) or its final state. A worker that dies mid-attempt leaves the lease to expire; the attempt is then
made again, with the same webhook-id, which is what receivers deduplicate on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from service.kit.clock import utcnow
from service.models import WebhookAttempt, WebhookState
from service.observability import metrics
from service.settings import Settings
from service.store import Sessions, transaction
from service.store import idempotency as idempotency_store
from service.store import leases as leases_store
from service.store import webhooks as webhooks_store
from service.webhooks.delivery import AttemptResult, RetrySchedule, attempt_delivery
from service.webhooks.signing import WebhookSigner
from service.webhooks.ssrf import CallbackGuard
from service.workers.context import WorkerContext, new_worker_id

logger = logging.getLogger(__name__)

MAX_CONCURRENT_DELIVERIES = 8
PURGE_INTERVAL_SECONDS = 300.0


@dataclass
class WebhookWorkerContext:
    sessions: Sessions
    settings: Settings
    guard: CallbackGuard
    worker_id: str = field(default_factory=new_worker_id)

    @classmethod
    def of(cls, ctx: WorkerContext, guard: CallbackGuard | None = None) -> WebhookWorkerContext:
        guard = guard or CallbackGuard(ctx.settings.callback_allowed_hosts)
        return cls(sessions=ctx.sessions, settings=ctx.settings, guard=guard, worker_id=ctx.worker_id)

    def __post_init__(self) -> None:
        secret = self.settings.webhook_secret
        self.signer = WebhookSigner(secret.get_secret_value()) if secret is not None else None
        self.schedule = RetrySchedule(
            max_attempts=self.settings.webhook_max_attempts,
            base_seconds=self.settings.webhook_backoff_base_seconds,
            max_seconds=self.settings.webhook_backoff_max_seconds,
        )

    @property
    def lease_seconds(self) -> float:
        # An attempt is bounded by twice the timeout (see attempt_delivery); the lease outlives it.
        return self.settings.webhook_timeout_seconds * 2 + 30.0


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    message_id: str
    url: str
    payload: str
    attempts: int
    schedule_attempts: int


async def claim_next_delivery(ctx: WebhookWorkerContext) -> ClaimedDelivery | None:
    row = await leases_store.claim_next_delivery(ctx.sessions, ctx.worker_id, ctx.lease_seconds)
    if row is None:
        return None
    delivery_id, message_id, url, payload, attempts, schedule_attempts = row
    return ClaimedDelivery(delivery_id, message_id, url, payload, attempts, schedule_attempts)


async def record_attempt(
    ctx: WebhookWorkerContext, delivery: ClaimedDelivery, result: AttemptResult, started_at: datetime
) -> WebhookState | None:
    """Store the attempt and what follows from it: the delivery's new state, or None when the lease was lost
    (nothing is written then)."""
    now = utcnow()
    number = delivery.attempts + 1
    values: dict[str, object] = {
        "attempts": number,
        "schedule_attempts": delivery.schedule_attempts + 1,
        "last_status": result.status_code,
        "last_error": result.error,
        "last_attempt_at": now,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    state = WebhookState.PENDING
    if result.delivered:
        state = WebhookState.DELIVERED
        values |= {"state": state, "delivered_at": now, "next_attempt_at": None}
    else:
        delay = ctx.schedule.delay_after(delivery.schedule_attempts + 1)
        if delay is None:
            state = WebhookState.FAILED
            values |= {"state": state, "next_attempt_at": None}
        else:
            values["next_attempt_at"] = now + delay
    attempt = WebhookAttempt(
        delivery_id=delivery.id,
        number=number,
        status_code=result.status_code,
        error=result.error,
        started_at=started_at,
        finished_at=now,
    )
    async with transaction(ctx.sessions) as session:
        if not await webhooks_store.record_attempt(session, delivery.id, ctx.worker_id, values, attempt):
            return None
    return state


async def deliver(ctx: WebhookWorkerContext, delivery: ClaimedDelivery) -> None:
    """One attempt, recorded. Never raises: a database hiccup leaves the lease to expire and the attempt to be
    made again."""
    assert ctx.signer is not None
    number = delivery.attempts + 1
    started_at = utcnow()
    try:
        result = await attempt_delivery(
            url=delivery.url,
            message_id=delivery.message_id,
            body=delivery.payload.encode("utf-8"),
            signer=ctx.signer,
            guard=ctx.guard,
            timeout_seconds=ctx.settings.webhook_timeout_seconds,
        )
        state = await record_attempt(ctx, delivery, result, started_at)
    except Exception:
        logger.exception("webhook %s attempt %d could not be recorded", delivery.message_id, number)
        return
    if state is None:
        logger.warning("webhook %s: lease lost during attempt %d; not recorded", delivery.message_id, number)
        return
    metrics.record_webhook_delivery(_outcome(result, state))
    if result.delivered:
        logger.info("webhook %s delivered on attempt %d", delivery.message_id, number)
    else:
        logger.warning("webhook %s attempt %d failed (%s): %s", delivery.message_id, number, state, result.error)


def _outcome(result: AttemptResult, state: WebhookState) -> str:
    if result.delivered:
        return "delivered"
    if result.refused:
        return "refused"
    return "gave_up" if state == WebhookState.FAILED else "retry"


async def deliver_due(ctx: WebhookWorkerContext) -> int:
    """Claim and send every due delivery, a few at a time; how many were attempted."""
    if ctx.signer is None:
        return 0
    attempted = 0
    slots = asyncio.Semaphore(MAX_CONCURRENT_DELIVERIES)

    async def deliver_in_slot(delivery: ClaimedDelivery) -> None:
        try:
            await deliver(ctx, delivery)
        finally:
            slots.release()

    async with asyncio.TaskGroup() as group:
        while True:
            await slots.acquire()
            delivery = await claim_next_delivery(ctx)
            if delivery is None:
                slots.release()
                break
            attempted += 1
            group.create_task(deliver_in_slot(delivery), name=f"webhook-{delivery.message_id}")
    return attempted


async def run_webhook_worker(ctx: WebhookWorkerContext, stop: asyncio.Event) -> None:
    if ctx.signer is None:
        logger.warning("WEBHOOK_SECRET is not set: webhook events stay pending until it is")
    idle = ctx.settings.worker_idle_seconds
    next_purge = 0.0
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            await deliver_due(ctx)
            if loop.time() >= next_purge:
                purged = await idempotency_store.purge_expired(ctx.sessions)
                if purged:
                    logger.info("purged %d expired idempotency keys", purged)
                next_purge = loop.time() + PURGE_INTERVAL_SECONDS
        except Exception:
            logger.exception("webhook sweep failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=idle)


def webhook_loop(guard: CallbackGuard | None = None) -> Callable[[WorkerContext, asyncio.Event], Awaitable[None]]:
    """The loop for WorkerRunner; `guard` is the API's own (one allow-list and resolver for both)."""

    async def webhooks(ctx: WorkerContext, stop: asyncio.Event) -> None:
        await run_webhook_worker(WebhookWorkerContext.of(ctx, guard), stop)

    return webhooks
