"""store.webhooks on SQLite and PostgreSQL: a batch's latest delivery and a delivery's latest attempts, an
attempt recorded only under the delivery's lease (nothing written once it was lost), and a redelivery that starts
a new schedule and takes the lease from an attempt in flight."""

from __future__ import annotations

from datetime import timedelta

from service.kit.clock import utcnow
from service.models import WebhookAttempt, WebhookDelivery, WebhookState
from service.store import Database, transaction
from service.store import leases as leases_store
from service.store import webhooks as webhooks_store
from tests.store.rows import add_batch, add_delivery, all_rows, one_row

HOLDER, OTHER = "worker-1", "worker-2"


async def add_deliveries(db: Database, batch_id: str, count: int) -> list[int]:
    """A batch with `count` deliveries (oldest first); their ids."""
    ids: list[int] = []
    async with transaction(db.api) as session:
        await add_batch(session, batch_id, ("x",))
        for n in range(count):
            ids.append(await add_delivery(session, batch_id, f"msg_{batch_id}_{n}"))
    return ids


def attempt(delivery_id: int, number: int, status_code: int | None = 500) -> WebhookAttempt:
    now = utcnow()
    return WebhookAttempt(
        delivery_id=delivery_id, number=number, status_code=status_code, started_at=now, finished_at=now
    )


async def test_latest_delivery_is_the_batchs_newest(db: Database) -> None:
    ids = await add_deliveries(db, "lb_one", 3)
    await add_deliveries(db, "lb_two", 1)
    async with db.api() as session:
        latest = await webhooks_store.latest_delivery(session, "lb_one")
        assert latest is not None and (latest.id, latest.message_id) == (ids[-1], "msg_lb_one_2")
        assert await webhooks_store.latest_delivery(session, "lb_missing") is None


async def test_record_attempt_writes_the_attempt_and_the_delivery_under_the_lease(db: Database) -> None:
    (delivery_id,) = await add_deliveries(db, "lb_one", 1)
    assert await leases_store.claim(db.workers, WebhookDelivery, delivery_id, HOLDER, 60)
    now = utcnow()
    async with transaction(db.workers) as session:
        recorded = await webhooks_store.record_attempt(
            session,
            delivery_id,
            HOLDER,
            {"state": WebhookState.DELIVERED, "attempts": 1, "last_status": 204, "delivered_at": now},
            attempt(delivery_id, 1, 204),
        )
    assert recorded
    delivery = await one_row(db.api, WebhookDelivery, delivery_id)
    assert (delivery.state, delivery.attempts, delivery.last_status, delivery.delivered_at) == (
        WebhookState.DELIVERED,
        1,
        204,
        now,
    )
    assert [(a.delivery_id, a.number, a.status_code) for a in await all_rows(db.api, WebhookAttempt)] == [
        (delivery_id, 1, 204)
    ]


async def test_record_attempt_writes_nothing_once_the_lease_was_lost(db: Database) -> None:
    (delivery_id,) = await add_deliveries(db, "lb_one", 1)
    assert await leases_store.claim(db.workers, WebhookDelivery, delivery_id, OTHER, 60)
    before = await one_row(db.api, WebhookDelivery, delivery_id)
    async with transaction(db.workers) as session:
        recorded = await webhooks_store.record_attempt(
            session, delivery_id, HOLDER, {"state": WebhookState.FAILED, "attempts": 9}, attempt(delivery_id, 1)
        )
    assert not recorded
    assert (await one_row(db.api, WebhookDelivery, delivery_id)).model_dump() == before.model_dump()
    assert await all_rows(db.api, WebhookAttempt) == []


async def test_attempts_are_the_latest_first_up_to_the_limit(db: Database) -> None:
    first, second = await add_deliveries(db, "lb_one", 2)
    async with transaction(db.workers) as session:
        session.add_all([attempt(first, n) for n in (2, 1, 4, 3)] + [attempt(second, 1)])
    async with db.api() as session:
        latest = await webhooks_store.attempts(session, first, limit=3)
        assert [a.number for a in await webhooks_store.attempts(session, second, limit=10)] == [1]
    assert [(a.delivery_id, a.number) for a in latest] == [(first, 4), (first, 3), (first, 2)]


async def test_requeue_starts_a_new_schedule_and_takes_the_lease_from_an_attempt_in_flight(db: Database) -> None:
    (delivery_id,) = await add_deliveries(db, "lb_one", 1)
    async with transaction(db.workers) as session:
        delivery = await session.get_one(WebhookDelivery, delivery_id)
        delivery.state, delivery.attempts, delivery.schedule_attempts = WebhookState.FAILED, 8, 8
        delivery.next_attempt_at, delivery.delivered_at = None, utcnow() - timedelta(hours=1)
        session.add(delivery)
    assert await leases_store.claim(db.workers, WebhookDelivery, delivery_id, HOLDER, 60)
    before = utcnow()
    async with transaction(db.api) as session:
        await webhooks_store.requeue(session, delivery_id)
    requeued = await one_row(db.api, WebhookDelivery, delivery_id)
    assert (requeued.state, requeued.attempts, requeued.schedule_attempts, requeued.delivered_at) == (
        WebhookState.PENDING,
        8,
        0,
        None,
    )
    assert (requeued.lease_owner, requeued.lease_expires_at) == (None, None)
    assert requeued.next_attempt_at is not None and before <= requeued.next_attempt_at <= utcnow()
    async with transaction(db.workers) as session:  # the attempt that was in flight records nothing
        assert not await webhooks_store.record_attempt(
            session, delivery_id, HOLDER, {"state": WebhookState.FAILED}, attempt(delivery_id, 9)
        )
    assert (await one_row(db.api, WebhookDelivery, delivery_id)).state == WebhookState.PENDING
    assert await all_rows(db.api, WebhookAttempt) == []
