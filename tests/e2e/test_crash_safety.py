"""Invariant 2: one provider batch per pass chunk, even when a worker dies between `batches.create` and
its commit, and with several workers claiming work from one PostgreSQL database."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

from sqlmodel import select

from service.models import Chunk, ChunkState
from service.providers.groq import GroqBatchProvider
from service.providers.protocol import ProviderBatchInfo
from service.store import transaction
from service.workers.batch_loop import run_once, run_worker
from service.workers.batch_steps import advance_batch
from tests.conftest import Service
from tests.emulator_inspection import provider_batches
from tests.payloads import pr_batch
from tests.workers import real_provider, work_until_finished, worker_context


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after it runs, not even our except-Exception handlers."""


class DiesAfterCreate(GroqBatchProvider):
    """The real provider; the process 'dies' right after Groq created the batch, before any commit."""

    async def create_batch(self, input_file_id: str, *, metadata: Any) -> ProviderBatchInfo:
        await super().create_batch(input_file_id, metadata=metadata)
        raise WorkerKilled


async def test_worker_killed_after_create_is_adopted_not_recreated(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(database_url, workers_enabled=False)
    created = await service.submit(pr_batch(30))
    base = real_provider(service)
    dying = DiesAfterCreate(base._client)
    doomed, doomed_engine = worker_context(service, dying, "doomed-worker")

    await advance_batch(doomed, created["id"])
    with contextlib.suppress(WorkerKilled):
        await run_once(doomed)
    assert len(provider_batches(service.emulator)) == 1, "the dead worker did create the provider batch"
    async with transaction(doomed.sessions) as session:
        row = (await session.exec(select(Chunk))).one()
        assert row.state == ChunkState.UPLOADING and row.provider_batch_id is None
        # A SIGKILLed worker runs no `finally`: its lease stays until it expires.
        row.lease_owner = "doomed-worker"
        row.lease_expires_at = row.created_at
        session.add(row)
    await doomed_engine.dispose()

    survivor, survivor_engine = worker_context(service, base, "survivor")
    try:
        summary = await work_until_finished(service, survivor, created["id"])
    finally:
        await survivor_engine.dispose()

    sent = provider_batches(service.emulator)
    first_pass = [batch for batch in sent if batch.metadata["pass"] == "1"]
    assert len(first_pass) == 1, f"a second provider batch was created: {[b.id for b in first_pass]}"
    assert summary["passes"][0]["provider_batches"][0]["id"] == first_pass[0].id
    # Later passes (an item out of tokens, retried with a larger budget) have one provider batch per chunk too.
    assert max(Counter(batch.metadata["llm_batch_chunk"] for batch in sent).values()) == 1
    assert summary["counts"]["pending"] == 0
    assert summary["counts"]["succeeded"] + summary["counts"]["failed"] == 30


async def test_several_workers_never_duplicate_provider_batches(start_service: Any, postgres_url: str) -> None:
    service: Service = await start_service(postgres_url, workers_enabled=False, max_lines_per_provider_batch=25)
    batch_ids = [(await service.submit(pr_batch(100, start=1000 * n), fallback=True))["id"] for n in range(1, 4)]
    workers = [worker_context(service, real_provider(service), f"worker-{n}") for n in range(3)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_worker(ctx, stop)) for ctx, _engine in workers]
    try:
        summaries = [await service.wait(batch_id) for batch_id in batch_ids]
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for _ctx, engine in workers:
            await engine.dispose()

    keys = Counter(batch.metadata["llm_batch_chunk"] for batch in provider_batches(service.emulator))
    assert keys and max(keys.values()) == 1, f"duplicate provider batches: {keys.most_common(3)}"
    assert sum(len(s["passes"][0]["provider_batches"]) for s in summaries) == 12
    for summary, batch_id in zip(summaries, batch_ids, strict=True):
        rows = await service.results(batch_id)
        assert len({r["custom_id"] for r in rows}) == len(rows) == 100
        assert summary["counts"]["pending"] == 0
    async with workers[0][0].sessions() as session:
        held = (await session.exec(select(Chunk).where(Chunk.lease_owner.is_not(None)))).all()  # type: ignore[union-attr]
        assert held == [], "a lease was left held"
