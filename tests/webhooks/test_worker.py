"""The webhook worker: deliveries leased so that two workers never send one attempt at the same moment,
the back-off schedule, and the purge of expired idempotency keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import (
    Batch,
    BatchStatus,
    IdempotencyKey,
    IdempotencyState,
    WebhookAttempt,
    WebhookDelivery,
    utcnow,
)
from service.store import transaction
from service.store.database import create_engine, migrate, session_factory
from service.store.idempotency import purge_expired as purge_expired_idempotency_keys
from service.webhooks.delivery import RetrySchedule
from service.webhooks.ssrf import CallbackGuard
from service.workers.webhook_loop import WebhookWorkerContext, deliver_due
from tests.conftest import test_settings as make_settings
from tests.webhooks.helpers import webhook_settings
from tests.webhooks.receiver import HANG, Receiver


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    await migrate(engine)
    yield session_factory(engine)
    await engine.dispose()


async def queue_delivery(sessions: async_sessionmaker[AsyncSession], url: str) -> int:
    async with transaction(sessions) as session:
        session.add(Batch(id="lb_webhook", model="m", fallback_model="f", status=BatchStatus.COMPLETED))
        await session.flush()
        delivery = WebhookDelivery(
            message_id="msg_one", batch_id="lb_webhook", event="batch.completed", url=url, payload='{"type":"x"}'
        )
        delivery.next_attempt_at = utcnow()
        session.add(delivery)
        await session.flush()
        assert delivery.id is not None
        return delivery.id


def worker(
    sessions: async_sessionmaker[AsyncSession], database_url: str, tmp_path: Path, name: str
) -> WebhookWorkerContext:
    settings = make_settings(database_url, tmp_path, **webhook_settings(webhook_timeout_seconds=5.0))
    return WebhookWorkerContext(sessions, settings, CallbackGuard(settings.callback_allowed_hosts), worker_id=name)


async def test_two_workers_never_send_the_same_attempt_at_once(
    sessions: async_sessionmaker[AsyncSession], database_url: str, tmp_path: Path
) -> None:
    with Receiver([HANG], hang_seconds=0.5) as receiver:
        delivery_id = await queue_delivery(sessions, receiver.url())
        workers = [worker(sessions, database_url, tmp_path, f"worker-{n}") for n in range(3)]
        attempted = await asyncio.gather(*(deliver_due(ctx) for ctx in workers))
    assert sorted(attempted) == [0, 0, 1]
    assert len(receiver.received) == 1
    async with sessions() as session:
        delivery = await session.get_one(WebhookDelivery, delivery_id)
        attempts = (await session.exec(select(WebhookAttempt))).all()
    assert (delivery.state, delivery.attempts, delivery.lease_owner) == ("delivered", 1, None)
    assert [(attempt.number, attempt.status_code) for attempt in attempts] == [(1, 204)]


async def test_a_delivery_leased_by_a_live_worker_is_left_alone(
    sessions: async_sessionmaker[AsyncSession], database_url: str, tmp_path: Path
) -> None:
    with Receiver() as receiver:
        delivery_id = await queue_delivery(sessions, receiver.url())
        async with transaction(sessions) as session:
            row = await session.get_one(WebhookDelivery, delivery_id)
            row.lease_owner, row.lease_expires_at = "someone-else", utcnow() + timedelta(minutes=1)
        assert await deliver_due(worker(sessions, database_url, tmp_path, "me")) == 0
        async with transaction(sessions) as session:
            row = await session.get_one(WebhookDelivery, delivery_id)
            row.lease_expires_at = utcnow() - timedelta(seconds=1)  # its owner died
        assert await deliver_due(worker(sessions, database_url, tmp_path, "me")) == 1
    assert len(receiver.received) == 1


def test_back_off_grows_exponentially_with_jitter_up_to_the_cap_then_gives_up() -> None:
    schedule = RetrySchedule(max_attempts=6, base_seconds=30, max_seconds=300)
    for failed, step in [(1, 30), (2, 60), (3, 120), (4, 240), (5, 300)]:
        delays = {schedule.delay_after(failed) for _ in range(20)}
        assert all(d is not None and 0.75 * step <= d.total_seconds() <= step for d in delays), (failed, delays)
        assert len(delays) > 1, "jittered"
    assert schedule.delay_after(6) is None


def test_default_schedule_keeps_trying_for_about_a_day() -> None:
    settings = make_settings("sqlite:///unused.db", Path("/tmp"))
    schedule = RetrySchedule(
        settings.webhook_max_attempts, settings.webhook_backoff_base_seconds, settings.webhook_backoff_max_seconds
    )
    assert 20 <= schedule.total_hours() <= 30


async def test_expired_idempotency_keys_are_purged_and_live_ones_kept(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    async with transaction(sessions) as session:
        for key, expires in [("old", now - timedelta(seconds=1)), ("live", now + timedelta(hours=1))]:
            session.add(
                IdempotencyKey(
                    key=key,
                    request_hash="h",
                    method="POST",
                    path="/batches",
                    state=IdempotencyState.COMPLETED,
                    owner="o",
                    locked_until=now,
                    expires_at=expires,
                )
            )
    assert await purge_expired_idempotency_keys(sessions) == 1
    async with sessions() as session:
        keys = (await session.exec(select(IdempotencyKey.key).order_by(col(IdempotencyKey.key)))).all()
    assert list(keys) == ["live"]
