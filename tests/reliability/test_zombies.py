"""What a zombie (a worker paused past its lease) may have left on Groq is cleared up: a provider batch it
created after another worker had taken the chunk over is cancelled by the zombie itself when it wakes, and a
second provider batch found for a chunk is cancelled by the worker that adopts the first one. The pauses are
placed exactly, in-process, by a provider that runs the takeover right before Groq gets the request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col

from service.kit.clock import utcnow
from service.models import Chunk, ChunkState
from service.pipeline.chunk_names import CHUNK_METADATA_KEY, chunk_key, upload_filename
from service.providers.groq import GroqBatchProvider
from service.providers.protocol import ProviderBatchInfo, Providers
from service.store import transaction
from service.store.database import create_engine, session_factory
from service.workers.batch_loop import run_once
from service.workers.batch_steps import advance_batch
from service.workers.context import WorkerContext
from tests.conftest import Service, fast_emulator_config
from tests.payloads import pr_batch
from tests.reliability.observe import Database
from tests.workers import real_provider, work_until_finished


class PausedBeforeCreate(GroqBatchProvider):
    """The real provider; right before the create request leaves, `pause()` runs: the world moves on."""

    def __init__(self, base: GroqBatchProvider, pause: Callable[[], Awaitable[None]]) -> None:
        super().__init__(base._client, completion_window=base.completion_window)
        self.pause = pause

    async def create_batch(self, input_file_id: str, *, metadata: Any) -> ProviderBatchInfo:
        pause, self.pause = self.pause, _nothing
        await pause()
        return await super().create_batch(input_file_id, metadata=metadata)


ZOMBIE_LINE = (
    b'{"custom_id": "pr-1", "method": "POST", "url": "/v1/chat/completions", '
    b'"body": {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "hi"}]}}\n'
)


async def _nothing() -> None:
    return None


@pytest.fixture
async def engine_sessions(database_url: str) -> AsyncIterator[Any]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


def _context(service: Service, sessions: Any, provider: GroqBatchProvider, worker_id: str) -> WorkerContext:
    return WorkerContext.build(service.settings, sessions, Providers({provider.name: provider}), worker_id=worker_id)


async def _time_passes(sessions: Any) -> None:
    """As if the lease holder had been paused past its lease: every lease has run out, every chunk is due."""
    async with transaction(sessions) as session:
        await session.execute(
            update(Chunk)
            .where(col(Chunk.lease_owner).is_not(None))
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.execute(update(Chunk).values(next_action_at=utcnow() - timedelta(seconds=1)))


async def test_a_zombie_cancels_the_batch_it_created_after_losing_the_chunk(
    start_service: Any, database_url: str, engine_sessions: Any, tmp_path: Path
) -> None:
    service: Service = await start_service(
        database_url, workers_enabled=False, emulator_config=fast_emulator_config(processing_seconds=2)
    )
    created = await service.submit(pr_batch(20))
    base = real_provider(service)
    rival = _context(service, engine_sessions, base, "rival")

    async def rival_takes_over() -> None:
        await _time_passes(engine_sessions)
        await run_once(rival)  # claims the chunk, creates its own batch from the same file

    zombie = _context(service, engine_sessions, PausedBeforeCreate(base, rival_takes_over), "zombie")
    await advance_batch(zombie, created["id"])
    await run_once(zombie)

    batches = service.emulator.batches
    assert len(batches) == 2, "the zombie's create did reach Groq"
    [chunk] = await Database(database_url).chunks()
    kept = chunk.provider_batch_id
    [duplicate] = [b for b in batches.values() if b["id"] != kept]
    assert duplicate["status"] in ("cancelling", "cancelled"), "the zombie cancelled its own duplicate"
    assert batches[kept]["status"] not in ("cancelling", "cancelled")

    summary = await work_until_finished(service, rival, created["id"])
    assert summary["counts"]["pending"] == 0
    assert [p["id"] for p in summary["passes"][0]["provider_batches"]] == [kept]


async def test_a_second_batch_found_for_a_chunk_is_cancelled_when_the_first_is_adopted(
    start_service: Any, database_url: str, engine_sessions: Any, tmp_path: Path
) -> None:
    service: Service = await start_service(
        database_url, workers_enabled=False, emulator_config=fast_emulator_config(processing_seconds=2)
    )
    created = await service.submit(pr_batch(20))
    base = real_provider(service)
    key = chunk_key(created["id"], 1, 0)
    first: list[ProviderBatchInfo] = []

    async def two_zombies_created_batches() -> None:
        for _ in range(2):
            spool = tmp_path / "zombie.jsonl"
            spool.write_bytes(ZOMBIE_LINE)
            file_id = await base.upload_jsonl(spool, filename=upload_filename(key))
            first.append(await base.create_batch(file_id, metadata={CHUNK_METADATA_KEY: key}))
        raise RuntimeError("this worker dies before creating anything itself")

    doomed = _context(service, engine_sessions, PausedBeforeCreate(base, two_zombies_created_batches), "doomed")
    await advance_batch(doomed, created["id"])
    await run_once(doomed)
    [chunk] = await Database(database_url).chunks()
    assert chunk.state == ChunkState.UPLOADING and chunk.provider_batch_id is None
    await _time_passes(engine_sessions)

    survivor = _context(service, engine_sessions, base, "survivor")
    await run_once(survivor)
    [chunk] = await Database(database_url).chunks()
    assert chunk.provider_batch_id == first[0].id, "the oldest provider batch of the chunk is adopted"
    assert service.emulator.batches[first[1].id]["status"] in ("cancelling", "cancelled")
