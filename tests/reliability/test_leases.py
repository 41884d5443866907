"""Leases on both backends: a due row goes to exactly one claimer, a long step keeps its lease by renewing it,
a step whose lease was taken over is stopped (except the lines it protects), and the shared provider circuit
opens after failures in a row and closes on a success."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col

from service.app import build_providers
from service.kit.clock import utcnow
from service.kit.fencing import LeaseLost, protected
from service.models import Batch, Chunk, ChunkState, Pass, PassKind
from service.providers.protocol import RetryableProviderError
from service.store import leases as leases_store
from service.store import transaction
from service.store.database import create_engine, migrate, session_factory
from service.workers.circuit import CIRCUIT_THRESHOLD, read_circuit, record_failure, record_success
from service.workers.context import WorkerContext
from service.workers.leasing import run_with_lease
from tests.conftest import test_settings as make_settings


@pytest.fixture
async def contexts(database_url: str, tmp_path: Path) -> AsyncIterator[list[WorkerContext]]:
    """Four workers (lease 0.3 s) on one migrated database, with one batch and one pass in it."""
    settings = make_settings(database_url, tmp_path, worker_lease_seconds=0.3, poll_interval_seconds=1.0)
    engine = create_engine(database_url)
    await migrate(engine)
    sessions = session_factory(engine)
    providers, _label = build_providers(settings)
    async with transaction(sessions) as session:
        session.add(Batch(id="lb_test", model="m", fallback_model="f"))
        await session.flush()
        session.add(Pass(batch_id="lb_test", number=1, kind=PassKind.PRIMARY, model="m"))
    workers = []
    for n in range(4):
        workers.append(WorkerContext.build(settings, sessions, providers, worker_id=f"worker-{n}"))
    yield workers
    await providers.close()
    await engine.dispose()


async def _add_chunks(ctx: WorkerContext, count: int) -> None:
    async with transaction(ctx.sessions) as session:
        pass_id = (await session.get_one(Pass, 1)).id
        assert pass_id is not None
        session.add_all(Chunk(batch_id="lb_test", pass_id=pass_id, chunk_index=i) for i in range(count))


async def _claim(ctx: WorkerContext) -> bool:
    return await leases_store.claim(ctx.sessions, Batch, "lb_test", ctx.worker_id, ctx.lease_seconds)


async def claim_next_chunk(ctx: WorkerContext, states: tuple[str, ...]) -> int | None:
    claimed = await leases_store.claim_next_chunk(ctx.sessions, ctx.worker_id, ctx.lease_seconds, states)
    return None if claimed is None else claimed[0]


async def _steal(ctx: WorkerContext, thief: str) -> None:
    async with transaction(ctx.sessions) as session:
        await session.execute(update(Batch).where(col(Batch.id) == "lb_test").values(lease_owner=thief))


async def test_concurrent_claimers_never_take_the_same_chunk(contexts: list[WorkerContext]) -> None:
    for ctx in contexts:
        # Leases that outlast the whole drain: a lease that runs out mid-drain may rightly be claimed again.
        ctx.lease_seconds = 60.0
    await _add_chunks(contexts[0], 40)

    async def drain(ctx: WorkerContext) -> list[int]:
        taken = []
        while (row_id := await claim_next_chunk(ctx, (ChunkState.PENDING,))) is not None:
            taken.append(row_id)
        return taken

    claimed = await asyncio.gather(*(drain(ctx) for ctx in contexts))
    counts = Counter(row_id for taken in claimed for row_id in taken)
    assert sorted(counts) == list(range(1, 41)) and set(counts.values()) == {1}


async def test_a_claimed_chunk_is_taken_over_once_its_lease_expires(contexts: list[WorkerContext]) -> None:
    first, second = contexts[:2]
    await _add_chunks(first, 1)
    assert await claim_next_chunk(first, (ChunkState.PENDING,)) == 1
    assert await claim_next_chunk(second, (ChunkState.PENDING,)) is None
    await asyncio.sleep(first.lease_seconds + 0.1)
    assert await claim_next_chunk(second, (ChunkState.PENDING,)) == 1


async def test_a_step_longer_than_its_lease_keeps_it_by_renewing(contexts: list[WorkerContext]) -> None:
    owner, rival = contexts[:2]
    assert await _claim(owner)
    rival_claims = 0

    async def step() -> str:
        nonlocal rival_claims
        for _ in range(10):  # 1 s: more than three leases
            await asyncio.sleep(0.1)
            rival_claims += await _claim(rival)
        return "done"

    assert await run_with_lease(owner, Batch, "lb_test", step) == "done"
    assert rival_claims == 0


async def test_a_step_whose_lease_was_taken_over_is_stopped(contexts: list[WorkerContext]) -> None:
    owner = contexts[0]
    assert await _claim(owner)
    finished = False

    async def step() -> None:
        nonlocal finished
        await _steal(owner, "another-worker")  # as if this worker had been paused past its lease
        await asyncio.sleep(5)
        finished = True

    with pytest.raises(LeaseLost):
        await run_with_lease(owner, Batch, "lb_test", step)
    assert not finished


async def test_a_protected_section_runs_to_its_end_after_the_lease_is_lost(contexts: list[WorkerContext]) -> None:
    owner = contexts[0]
    assert await _claim(owner)
    events: list[str] = []

    async def step() -> None:
        async with protected():
            await _steal(owner, "another-worker")
            await asyncio.sleep(0.5)  # longer than a renewal interval: the loss is seen meanwhile
            events.append("recorded")
        await asyncio.sleep(5)
        events.append("went on")

    with pytest.raises(LeaseLost):
        await run_with_lease(owner, Batch, "lb_test", step)
    assert events == ["recorded"]


async def test_the_provider_circuit_opens_after_failures_in_a_row_and_closes_on_success(
    contexts: list[WorkerContext],
) -> None:
    first, second = contexts[:2]
    outage = RetryableProviderError("503: Service Unavailable", status_code=503)
    for _ in range(CIRCUIT_THRESHOLD - 1):
        assert await record_failure(first, outage) is None, "isolated failures only delay their own chunk"
    until = await record_failure(second, outage)  # any worker's failures count
    assert until is not None and until > utcnow()
    state = await read_circuit(first)
    assert state.consecutive_failures == CIRCUIT_THRESHOLD and state.backoff_until == until

    assert await record_success(second)
    assert await read_circuit(first) == type(state)()
    assert not await record_success(first), "nothing to close"


async def test_one_chunk_failing_again_and_again_keeps_the_pause_at_its_first_step(
    contexts: list[WorkerContext],
) -> None:
    """A request the provider chokes on (one chunk, every poll) must not pause everyone's work longer and longer:
    it backs off by itself, and other tenants' chunks get their turn within a pause's first step. Failures of
    different chunks in a row are an outage, and the pause doubles."""
    first, second = contexts[:2]
    outage = RetryableProviderError("could not connect to Groq", status_code=None)
    for _ in range(5 * CIRCUIT_THRESHOLD):
        until = await record_failure(first, outage, "chunk 1")
        assert until is None or (until - utcnow()).total_seconds() <= 1.25, "the pause grew on one chunk alone"
    assert (await read_circuit(second)).consecutive_failures == 5 * CIRCUIT_THRESHOLD
    for n in range(2, 6):
        until = await record_failure(second, outage, f"chunk {n}")
    assert until is not None and (until - utcnow()).total_seconds() > 6, "an outage of many chunks doubles"


async def test_a_rate_limit_with_retry_after_pauses_every_worker_at_once(contexts: list[WorkerContext]) -> None:
    limited = RetryableProviderError("429: rate limited", status_code=429, retry_after=20.0)
    until = await record_failure(contexts[0], limited)
    assert until is not None
    assert (until - utcnow()).total_seconds() > 15
    assert (await read_circuit(contexts[3])).backoff_until == until
