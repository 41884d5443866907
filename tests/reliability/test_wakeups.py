"""A worker in another process sweeps as soon as a submission commits (LISTEN/NOTIFY on PostgreSQL), not at
its next idle tick."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from service.workers.batch_loop import run_worker
from service.workers.wakeups import run_wake_listener
from tests.conftest import Service
from tests.payloads import pr_batch
from tests.workers import real_provider, worker_context

pytestmark = pytest.mark.postgres
IDLE_SECONDS = 60.0  # the worker's own tick: far longer than the test waits


async def test_a_submission_wakes_an_idle_worker_elsewhere(start_service: Any, postgres_url: str) -> None:
    api: Service = await start_service(postgres_url, workers_enabled=False)
    worker_settings = api.settings.model_copy(update={"worker_idle_seconds": IDLE_SECONDS})
    ctx, engine = worker_context(api, real_provider(api), "listener", worker_settings)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_worker(ctx, stop)), asyncio.create_task(run_wake_listener(ctx, stop))]
    try:
        await asyncio.sleep(1.0)  # the worker's first sweep found nothing; it now idles for a minute
        created = await api.submit(pr_batch(5))
        summary = await api.wait(created["id"], within=IDLE_SECONDS / 3)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await engine.dispose()
    assert summary["status"] == "completed", "woken by the notice, the worker ran the whole batch"
