"""An idle worker sweeps without taking the database's write lock for each kind of chunk step: chunks are
claimed only once one is due, and batches are swept when the process is woken or every WORKER_IDLE_SECONDS,
not at every tick of the provider's poll interval."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from sqlalchemy import event

from service.workers.batch_loop import run_worker
from tests.conftest import Service
from tests.payloads import pr_batch
from tests.workers import real_provider, worker_context

POLL_SECONDS = 0.02  # the pace the worker used to sweep at: min(WORKER_IDLE_SECONDS, POLL_INTERVAL_SECONDS)
IDLE_SECONDS = 0.25
WATCHED_SECONDS = 1.5


async def test_an_idle_worker_claims_nothing_until_work_is_due(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(database_url, workers_enabled=False)
    settings = service.settings.model_copy(
        update={"worker_idle_seconds": IDLE_SECONDS, "poll_interval_seconds": POLL_SECONDS}
    )
    ctx, engine = worker_context(service, real_provider(service), "idler", settings)
    claims: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count_claims(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE") and "lease_owner=" in statement.replace(" ", ""):
            claims.append(statement.split()[1])

    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(ctx, stop))
    try:
        await asyncio.sleep(WATCHED_SECONDS)
        idle_claims = list(claims)
        created = await service.submit(pr_batch(3))
        ctx.wake()  # as the service's own workers are woken by a submission
        summary = await service.wait(created["id"], within=30)
    finally:
        stop.set()
        await task
        await engine.dispose()
    assert "provider_batches" not in idle_claims, f"no chunk was due, yet claims were made: {Counter(idle_claims)}"
    batch_sweeps = idle_claims.count("batches")
    assert 1 <= batch_sweeps <= WATCHED_SECONDS / IDLE_SECONDS + 2, (
        f"{batch_sweeps} batch sweeps in {WATCHED_SECONDS}s: one per WORKER_IDLE_SECONDS, not one per poll tick "
        f"(that would be about {WATCHED_SECONDS / POLL_SECONDS:.0f})"
    )
    assert summary["status"] == "completed", "once woken, the same worker ran the batch through"
