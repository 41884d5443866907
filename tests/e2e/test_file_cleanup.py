"""PROVIDER_FILE_CLEANUP: once a chunk is done, its files on Groq (input, output, error and any stray upload
carrying its name) are deleted, and the step that deletes them leaves no lease behind, even when the worker
dies right after recording it (nobody claims a cleaned chunk again, so nobody would release that lease)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import col, select

from service.batches.chunks.cleanup import clean_up_chunk
from service.models import Chunk, ChunkState, Pass
from service.pipeline.chunk_names import chunk_key, upload_filename
from service.providers.groq import GroqBatchProvider
from service.store import leases as leases_store
from service.workers.batch_loop import run_once
from service.workers.context import WorkerContext
from tests.conftest import Service, wait_until
from tests.payloads import pr_batch
from tests.workers import real_provider, work_until_finished, worker_context


def _file_ids(chunk: Chunk) -> set[str]:
    return {file_id for file_id in (chunk.input_file_id, chunk.output_file_id, chunk.error_file_id) if file_id}


async def _chunks(ctx: WorkerContext) -> list[Chunk]:
    async with ctx.sessions() as session:
        return list((await session.exec(select(Chunk).order_by(col(Chunk.id)))).all())


async def test_finished_batches_leave_no_files_on_groq(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(database_url, max_lines_per_provider_batch=10)
    created = await service.submit(pr_batch(30), fallback=True)
    summary = await service.wait(created["id"])
    assert summary["passes"][0]["provider_batches"], "pass 1 went through Groq"

    # Deleting the files is the step after ingestion; the batch may report completed just before it is done.
    await wait_until(lambda: not service.emulator.files, what="every file deleted on the emulator")
    ctx, engine = worker_context(service, real_provider(service), "reader")
    try:
        chunks = await _chunks(ctx)
    finally:
        await engine.dispose()
    assert chunks and all(chunk.files_deleted_at is not None for chunk in chunks)
    assert [chunk.lease_owner for chunk in chunks] == [None] * len(chunks)


async def test_cleanup_deletes_a_chunks_files_and_releases_its_lease_in_the_same_write(
    start_service: Any, database_url: str, tmp_path: Path
) -> None:
    service: Service = await start_service(
        database_url, workers_enabled=False, provider_file_cleanup=False, max_lines_per_provider_batch=10
    )
    created = await service.submit(pr_batch(30), fallback=True)
    keeper, keeper_engine = worker_context(service, real_provider(service), "keeper")
    cleanup_on = service.settings.model_copy(update={"provider_file_cleanup": True})
    cleaner, cleaner_engine = worker_context(service, real_provider(service), "cleaner", cleanup_on)
    try:
        await work_until_finished(service, keeper, created["id"])
        await run_once(keeper)  # more sweeps with cleanup off delete nothing
        chunks = await _chunks(keeper)
        kept = set().union(*(_file_ids(chunk) for chunk in chunks))
        assert len(chunks) >= 3 and kept and kept <= set(service.emulator.files)

        claimed_row = await leases_store.claim_next_chunk(
            cleaner.sessions, cleaner.worker_id, cleaner.lease_seconds, (ChunkState.DONE,), files_left=True
        )
        assert claimed_row is not None
        row_id = claimed_row[0]
        [claimed] = [chunk for chunk in chunks if chunk.id == row_id]
        async with cleaner.sessions() as session:
            pass_number = (await session.get_one(Pass, claimed.pass_id)).number
        stray = tmp_path / "stray.jsonl"
        stray.write_bytes(b'{"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n')
        stray_name = upload_filename(chunk_key(claimed.batch_id, pass_number, claimed.chunk_index))
        groq = cleaner.providers.get("groq")
        assert isinstance(groq, GroqBatchProvider)
        stray_id = await groq.upload_jsonl(stray, filename=stray_name)

        # The step alone, without the loop's release afterwards: as if the worker died right after its commit.
        await clean_up_chunk(cleaner, row_id)

        [cleaned] = [chunk for chunk in await _chunks(cleaner) if chunk.id == row_id]
        assert cleaned.files_deleted_at is not None
        assert (cleaned.lease_owner, cleaned.lease_expires_at) == (None, None)
        remaining = set(service.emulator.files)
        assert not (_file_ids(claimed) | {stray_id}) & remaining, "the chunk's files and its stray upload are gone"
        assert kept - _file_ids(claimed) <= remaining, "other chunks' files are untouched"

        for _ in range(len(chunks)):
            await run_once(cleaner)
        assert service.emulator.files == {}
        finished = await _chunks(cleaner)
        assert all(chunk.files_deleted_at is not None and chunk.lease_owner is None for chunk in finished)
    finally:
        await keeper.providers.close()
        await cleaner.providers.close()
        await keeper_engine.dispose()
        await cleaner_engine.dispose()
