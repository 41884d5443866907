"""At most one billed provider batch per chunk on every provider, with real worker processes: SIGKILL right
after a provider's first create (its answer held back, so the batch exists and the worker never recorded it),
and several workers racing on PostgreSQL. Groq and OpenAI find the batch again by the chunk's key in its metadata;
Anthropic keeps no metadata, so the batch is found by its creation window and request count, one unresolved
create at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.models import ChunkState
from tests.conftest import Service
from tests.payloads import AMPLE_TOKENS, pr_batch
from tests.reliability.gated_emulator import ANTHROPIC_PREFIX, OPENAI_PREFIX
from tests.reliability.observe import Database, EmulatorClient, eventually
from tests.reliability.processes import Processes, service_env, stop_cleanly

WAIT = 90.0
# provider -> (the tier's model, the create request to hold back, where its emulator is mounted)
PROVIDERS = {
    "groq": ("openai/gpt-oss-20b", "/openai/v1/batches", ""),
    "openai": ("openai:gpt-5-mini", f"{OPENAI_PREFIX}/v1/batches", OPENAI_PREFIX),
    "anthropic": ("anthropic:claude-haiku-4-5", f"{ANTHROPIC_PREFIX}/v1/messages/batches", ANTHROPIC_PREFIX),
}


def provider_env(database_url: str, url: str, spool: Path, **overrides: Any) -> dict[str, str]:
    """A service process with a key for every provider, each pointed at its emulator in the gated process."""
    return service_env(
        database_url,
        url,
        spool,
        OPENAI_API_KEY="any",
        OPENAI_BASE_URL=f"{url}{OPENAI_PREFIX}/v1",
        ANTHROPIC_API_KEY="any",
        ANTHROPIC_BASE_URL=f"{url}{ANTHROPIC_PREFIX}",
        **overrides,
    )


def requests_of(batch: dict[str, Any]) -> int:
    """A batch's requests, as OpenAI's (and Groq's) or Anthropic's counts say."""
    counts = batch["request_counts"]
    return int(counts["total"]) if "total" in counts else sum(int(n) for n in counts.values())


def one_tier(model: str, count: int, start: int = 1) -> dict[str, Any]:
    return pr_batch(count, start=start, max_tokens=AMPLE_TOKENS, cascade=[{"model": model}])


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_worker_killed_right_after_a_providers_create_leaves_one_batch(
    start_service: Any, processes: Processes, database_url: str, tmp_path: Path, provider: str
) -> None:
    model, create_path, prefix = PROVIDERS[provider]
    service: Service = await start_service(database_url, workers_enabled=False)
    url = await processes.emulator(gated=True)
    env = provider_env(database_url, url, tmp_path / "spool")
    gate, emulator, db = EmulatorClient(url), EmulatorClient(url, prefix), Database(database_url)
    try:
        await gate.arm_gate("POST", create_path)
        created = await service.submit(one_tier(model, 30))
        doomed = processes.worker("doomed", env)
        await eventually(gate.held, bool, within=WAIT, what=f"{provider} created the batch and its answer held")
        doomed.kill()
        assert len(await emulator.batches()) == 1, f"{provider} did create the batch before the worker died"
        [chunk] = await db.chunks()
        assert chunk.state == ChunkState.UPLOADING and chunk.provider_batch_id is None
        assert chunk.create_sent_at is not None, "the intent was recorded before the create"

        survivor = processes.worker("survivor", env)
        summary = await service.wait(created["id"], within=WAIT)
        await stop_cleanly(survivor)

        batches = await emulator.batches()
        first_pass = [batch for batch in batches if requests_of(batch) == 30]
        assert len(first_pass) == 1, f"a second {provider} batch was created: {[b['id'] for b in first_pass]}"
        assert summary["passes"][0]["provider_batches"][0]["id"] == first_pass[0]["id"]
        recorded = {chunk.provider_batch_id for chunk in await db.chunks()}
        assert {batch["id"] for batch in batches} == recorded, "every batch the provider has is a chunk's"
        assert "adopting provider batch" in survivor.log()
        rows = await service.results(created["id"])
        assert sorted(r["custom_id"] for r in rows) == sorted(f"pr-{n}" for n in range(1, 31))
        assert {r["provider"] for r in rows if r["status"] == "succeeded"} == {provider}
        assert summary["counts"]["pending"] == 0 and summary["counts"]["retrying"] == 0
        assert await db.held_leases() == []
    finally:
        for client in (gate, emulator):
            await client.close()
        await db.close()


@pytest.mark.postgres
async def test_three_workers_racing_on_postgresql_create_one_batch_per_chunk_on_every_provider(
    start_service: Any, processes: Processes, postgres_url: str, tmp_path: Path
) -> None:
    service: Service = await start_service(postgres_url, workers_enabled=False)
    url = await processes.emulator(gated=True)
    env = provider_env(
        postgres_url,
        url,
        tmp_path / "spool",
        MAX_LINES_PER_PROVIDER_BATCH=10,
        OPENAI_MAX_LINES_PER_BATCH=10,
        ANTHROPIC_MAX_REQUESTS_PER_BATCH=10,
    )
    batches = {
        provider: (await service.submit(one_tier(model, 40, start=1000 * n)))["id"]
        for n, (provider, (model, _path, _prefix)) in enumerate(PROVIDERS.items(), start=1)
    }
    workers = [processes.worker(f"worker-{n}", env) for n in range(3)]
    db = Database(postgres_url)
    try:
        for batch_id in batches.values():
            summary = await service.wait(batch_id, within=WAIT)
            assert summary["counts"]["succeeded"] + summary["counts"]["failed"] == 40
        await stop_cleanly(*workers)
        chunks = await db.chunks()
        for provider, (_model, _path, prefix) in PROVIDERS.items():
            emulator = EmulatorClient(url, prefix)
            created = await emulator.batches()
            await emulator.close()
            recorded = [chunk.provider_batch_id for chunk in chunks if chunk.provider == provider]
            assert len(recorded) == len(set(recorded)) >= 4, f"{provider}: {recorded}"
            assert {batch["id"] for batch in created} == set(recorded), f"{provider}: a batch no chunk recorded"
        logs = "".join(worker.log() for worker in workers)
        assert "Traceback" not in logs
    finally:
        await db.close()
