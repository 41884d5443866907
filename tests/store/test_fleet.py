"""store.fleet on SQLite and PostgreSQL: a worker's heartbeat row is inserted once and renewed, rows of workers
long dead are pruned, /readyz counts the recent ones; the provider's shared health counts failures in a row (any
worker's, also one racing the first row's insert), keeps the later pause, shows only a pause still ahead, and a
success closes it."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col

from service.kit.clock import utcnow
from service.models import ProviderHealthRecord, WorkerHeartbeat
from service.store import Database, transaction
from service.store import fleet as fleet_store
from service.store.fleet import PROVIDER, ProviderHealth
from tests.store.rows import all_rows, one_row, still_waiting

STALE = timedelta(minutes=5)


async def heartbeats(db: Database) -> dict[str, WorkerHeartbeat]:
    return {row.worker_id: row for row in await all_rows(db.api, WorkerHeartbeat)}


async def live(db: Database, within: timedelta) -> int:
    async with db.api() as session:
        return await fleet_store.live_workers(session, within)


async def health(db: Database) -> ProviderHealth:
    async with db.api() as session:
        return await fleet_store.provider_health(session)


async def test_announce_worker_inserts_its_row_once_and_then_renews_it(db: Database) -> None:
    await fleet_store.announce_worker(db.workers, "worker-1", ["batches", "chunks"], stale_after=STALE)
    first = (await heartbeats(db))["worker-1"]
    assert (first.hostname, first.pid, first.loops) == (socket.gethostname(), os.getpid(), "batches,chunks")
    await asyncio.sleep(0.01)
    await fleet_store.announce_worker(db.workers, "worker-1", ["ignored"], stale_after=STALE)
    rows = await heartbeats(db)
    assert list(rows) == ["worker-1"]
    assert (rows["worker-1"].started_at, rows["worker-1"].loops) == (first.started_at, "batches,chunks")
    assert rows["worker-1"].last_seen_at > first.last_seen_at


async def test_announce_worker_prunes_the_rows_of_workers_long_dead(db: Database) -> None:
    for worker_id in ("dead", "quiet", "alive"):
        await fleet_store.announce_worker(db.workers, worker_id, [], stale_after=STALE)
    async with transaction(db.workers) as session:
        for worker_id, ago in (("dead", STALE + timedelta(seconds=1)), ("quiet", timedelta(minutes=1))):
            await session.execute(
                update(WorkerHeartbeat)
                .where(col(WorkerHeartbeat.worker_id) == worker_id)
                .values(last_seen_at=utcnow() - ago)
            )
    assert await live(db, timedelta(seconds=30)) == 1
    assert await live(db, timedelta(minutes=2)) == 2
    await fleet_store.announce_worker(db.workers, "alive", [], stale_after=STALE)
    assert sorted(await heartbeats(db)) == ["alive", "quiet"]
    await fleet_store.retire_worker(db.workers, "alive")
    assert sorted(await heartbeats(db)) == ["quiet"]


async def test_provider_health_counts_failures_in_a_row_and_a_success_closes_it(db: Database) -> None:
    assert await health(db) == ProviderHealth() and not (await health(db)).degraded
    assert not await fleet_store.count_success(db.workers), "nothing to close"
    counted = [await fleet_store.count_failure(db.workers, f"503 number {n}") for n in (1, 2, 3)]
    assert counted == [(1, False), (2, False), (3, False)]
    assert await health(db) == ProviderHealth(3, "503 number 3", None)
    assert (await one_row(db.api, ProviderHealthRecord, PROVIDER)).last_error_at is not None
    assert await fleet_store.count_success(db.workers)
    assert await health(db) == ProviderHealth()
    assert not await fleet_store.count_success(db.workers)
    record = await one_row(db.api, ProviderHealthRecord, PROVIDER)
    assert (record.consecutive_failures, record.backoff_until, record.last_success_at is not None) == (0, None, True)


async def test_a_failure_keeps_only_the_start_of_a_long_error(db: Database) -> None:
    await fleet_store.count_failure(db.workers, "x" * 5000)
    await fleet_store.count_failure(db.workers, "y" * 5000)
    assert (await health(db)).last_error == "y" * fleet_store.ERROR_TEXT_LIMIT


async def test_pause_until_keeps_the_later_pause_and_health_shows_only_one_ahead(db: Database) -> None:
    await fleet_store.count_failure(db.workers, "429")
    later = utcnow() + timedelta(minutes=2)
    await fleet_store.pause_until(db.workers, later)
    await fleet_store.pause_until(db.workers, later - timedelta(minutes=1))
    assert await health(db) == ProviderHealth(1, "429", later)
    async with transaction(db.workers) as session:
        await session.execute(
            update(ProviderHealthRecord).values(backoff_until=utcnow() - timedelta(seconds=1), consecutive_failures=0)
        )
    assert await health(db) == ProviderHealth(0, None, None), "a pause that is over is not shown"
    assert await fleet_store.count_success(db.workers) is False


async def test_concurrent_failures_from_every_worker_all_count(db: Database) -> None:
    counted = await asyncio.gather(*(fleet_store.count_failure(db.workers, f"worker {n}") for n in range(6)))
    assert sorted(count for count, _repeated in counted) == [1, 2, 3, 4, 5, 6]
    assert (await health(db)).consecutive_failures == 6


async def test_a_failure_counted_while_another_worker_inserts_the_first_row_adds_to_it(db: Database) -> None:
    other = db.workers()
    async with other:
        await other.begin()
        other.add(ProviderHealthRecord(provider=PROVIDER, consecutive_failures=1, last_error="first"))
        await other.flush()
        racing = asyncio.ensure_future(fleet_store.count_failure(db.workers, "second"))
        assert await still_waiting(racing), "the insert of the same row waits for the other worker's transaction"
        await other.commit()
    assert await racing == (2, False)
    assert await health(db) == ProviderHealth(2, "second", None)


async def test_a_failure_says_whether_the_failure_before_it_came_from_the_same_row(db: Database) -> None:
    sources = ["chunk 1", "chunk 1", "chunk 2", None, None, "chunk 2", "chunk 2"]
    counted = [await fleet_store.count_failure(db.workers, "503", source) for source in sources]
    assert counted == [(1, False), (2, True), (3, False), (4, False), (5, False), (6, False), (7, True)]


async def test_ping_answers(db: Database) -> None:
    async with db.api() as session:
        await fleet_store.ping(session)
        assert await fleet_store.live_workers(session, timedelta(hours=1)) == 0
