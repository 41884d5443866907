"""SIGKILL at the worst moments, with real worker processes: after Groq created the batch but before the
worker recorded it, after the upload but before the worker recorded the file, and in the middle of an ingest.
The worker that takes over adopts, cleans up and re-ingests: one provider batch per chunk, no stray file,
no double-counted cost."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from service.models import AttemptStatus, ChunkState
from service.pipeline.catalogue import Catalogue
from service.pipeline.chunk_names import upload_filename
from service.pipeline.cost import Usage, usd_text
from tests.conftest import Service
from tests.payloads import AMPLE_TOKENS, pr_batch
from tests.reliability.observe import Database, EmulatorClient, eventually
from tests.reliability.processes import Processes, service_env, stop_cleanly

WAIT = 60.0


async def _setup(
    start_service: Any, processes: Processes, database_url: str, tmp_path: Path, **emulator_timings: float
) -> tuple[Service, EmulatorClient, dict[str, str]]:
    """The API in-process (workers off) for submitting and reading, the gated emulator as a process."""
    service: Service = await start_service(database_url, workers_enabled=False)
    url = await processes.emulator(gated=True, **emulator_timings)
    return service, EmulatorClient(url), service_env(database_url, url, tmp_path / "spool")


async def test_worker_killed_after_batch_create_before_commit_is_adopted_not_recreated(
    start_service: Any, processes: Processes, database_url: str, tmp_path: Path, db: Database
) -> None:
    service, emulator, env = await _setup(start_service, processes, database_url, tmp_path)
    await emulator.arm_gate("POST", "/openai/v1/batches")
    created = await service.submit(pr_batch(40, max_tokens=AMPLE_TOKENS))
    doomed = processes.worker("doomed", env)
    await eventually(emulator.held, bool, within=WAIT, what="the provider batch created and its answer held")
    doomed.kill()

    assert len(await emulator.batches()) == 1, "Groq did create the batch before the worker died"
    [chunk] = await db.chunks()
    assert chunk.state == ChunkState.UPLOADING and chunk.provider_batch_id is None, "the worker never recorded it"

    survivor = processes.worker("survivor", env)
    summary = await service.wait(created["id"], within=WAIT)
    await stop_cleanly(survivor)

    batches = await emulator.batches()
    assert len(batches) == 1, f"a second provider batch was created: {[b['id'] for b in batches]}"
    assert summary["passes"][0]["provider_batches"][0]["id"] == batches[0]["id"]
    assert "adopting provider batch" in survivor.log()
    rows = await service.results(created["id"])
    assert sorted(r["custom_id"] for r in rows) == sorted(f"pr-{n}" for n in range(1, 41))
    assert summary["counts"]["pending"] == 0
    assert await db.held_leases() == []


async def test_worker_killed_after_upload_before_commit_leaves_no_orphaned_file(
    start_service: Any, processes: Processes, database_url: str, tmp_path: Path, db: Database
) -> None:
    service, emulator, env = await _setup(start_service, processes, database_url, tmp_path)
    await emulator.arm_gate("POST", "/openai/v1/files")
    created = await service.submit(pr_batch(40, max_tokens=AMPLE_TOKENS))
    doomed = processes.worker("doomed", env)
    await eventually(emulator.held, bool, within=WAIT, what="the input file stored and the answer held")
    doomed.kill()
    [orphan] = await emulator.files()
    assert orphan["filename"] == upload_filename(f"{created['id']}/pass-1/chunk-0")
    [chunk] = await db.chunks()
    assert chunk.state == ChunkState.UPLOADING and chunk.input_file_id is None

    survivor = processes.worker("survivor", env)
    summary = await service.wait(created["id"], within=WAIT)
    await stop_cleanly(survivor)

    assert len(await emulator.batches()) == 1
    assert summary["counts"]["pending"] == 0
    remaining = await emulator.files()
    assert orphan["id"] not in {f["id"] for f in remaining}, "the dead worker's upload was left on Groq"
    assert remaining == [], "the chunk's input and result files are deleted once ingested"


@pytest.mark.postgres
async def test_worker_killed_mid_ingest_reingests_without_double_counting(
    start_service: Any, processes: Processes, postgres_url: str, tmp_path: Path
) -> None:
    db = Database(postgres_url)
    try:
        service, emulator, env = await _setup(start_service, processes, postgres_url, tmp_path, processing_seconds=1.5)
        created = await service.submit(pr_batch(60, max_tokens=AMPLE_TOKENS))
        doomed = processes.worker("doomed", env)
        await eventually(
            db.chunks, lambda chunks: [c.state for c in chunks] == [ChunkState.SUBMITTED], within=WAIT, what="submitted"
        )
        # Hold the items table: the ingest gets past its fence and the attempts, then waits on its item rows.
        blocker = await asyncpg.connect(postgres_url.replace("postgresql://", "postgres://"))
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE items IN SHARE ROW EXCLUSIVE MODE")
        await eventually(
            lambda: db.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE 'UPDATE items%'"
            ),
            lambda waiting: waiting == 1,
            within=WAIT,
            what="the ingest waiting on the items table",
        )
        doomed.kill()
        await transaction.rollback()
        await blocker.close()

        [chunk] = await db.chunks()
        assert chunk.state == ChunkState.SUBMITTED, "the dead worker's ingest was rolled back as a whole"
        assert {a.status for a in await db.attempts()} == {AttemptStatus.PENDING}

        survivor = processes.worker("survivor", env)
        summary = await service.wait(created["id"], within=WAIT)
        await stop_cleanly(survivor)

        attempts = await db.attempts()
        assert len(attempts) == 60 and len({a.item_id for a in attempts}) == 60, "one attempt per item"
        assert AttemptStatus.PENDING not in {a.status for a in attempts}
        catalogue = Catalogue.build()
        model = summary["passes"][0]["model"]
        expected = sum(catalogue.cost_pico(model, Usage(a.input_tokens, a.output_tokens)) for a in attempts)
        assert summary["cost"]["usd_exact"] == usd_text(expected)
        assert summary["cost"]["input_tokens"] == sum(a.input_tokens for a in attempts)
        rows = await service.results(created["id"])
        assert sum(Decimal(r["cost_usd_exact"]) for r in rows) == Decimal(usd_text(expected))
        assert summary["counts"]["succeeded"] + summary["counts"]["failed"] == 60
        assert len(await emulator.batches()) == 1
    finally:
        await db.close()
