"""The soak: one API replica and three worker processes on PostgreSQL, the emulator as its own process with
faults on (429/5xx at random, slow answers, an expiring batch), 5,000 items with fallback in chunks of 500,
and a worker SIGKILLed and restarted at seeded random moments. Afterwards: one provider batch per pass chunk,
one merged row per item, counts and cost consistent with the attempts, no lease held.

Bounded (a few minutes at most on 2 cores) and loopback only. It prints its figures."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlmodel import col, select

from service.models import Attempt, AttemptStatus, Chunk, Pass
from service.pipeline.catalogue import Catalogue
from service.pipeline.cost import Usage, usd_text
from tests.payloads import pr_batch
from tests.reliability.observe import Database, EmulatorClient, eventually
from tests.reliability.processes import Process, Processes, service_env, stop_cleanly

pytestmark = pytest.mark.postgres

SEED = 20261128
BATCHES = 5
ITEMS_PER_BATCH = 1_000
LINES_PER_CHUNK = 500
WORKERS = 3
MAX_KILLS = 10
MIN_KILLS = 3
DEADLINE_SECONDS = 240.0
FAULTS = {
    "error_rate": 0.1,  # 429 (Retry-After 0.2 s) or 500 on one API call in ten
    "rate_limit_retry_after": 0.2,
    "slow_seconds": 0.2,  # every call takes a while: kills often land while one is under way
    "expire_next_batches": 1,
    "expire_after_fraction": 0.5,
}


async def _all_finished(api: httpx.AsyncClient, batch_ids: list[str]) -> bool:
    for batch_id in batch_ids:
        if (await api.get(f"/batches/{batch_id}")).json()["status"] not in ("completed", "failed", "cancelled"):
            return False
    return True


async def _results(api: httpx.AsyncClient, batch_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/batches/{batch_id}/results", headers={"Accept": "application/x-ndjson"})
    response.raise_for_status()
    return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]


async def test_soak_kills_and_faults_lose_nothing_and_pay_nothing_twice(
    processes: Processes, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    emulator_url = await processes.emulator(validating_seconds=0.5, processing_seconds=3.0, finalizing_seconds=0.5)
    emulator = EmulatorClient(emulator_url)
    await emulator.set_faults(**FAULTS)
    env = service_env(
        postgres_url,
        emulator_url,
        tmp_path / "spool",
        max_lines_per_provider_batch=LINES_PER_CHUNK,
        worker_lease_seconds=3,
        poll_interval_seconds=0.5,
        worker_idle_seconds=0.2,
        provider_backoff_max_seconds=5,
    )
    api = httpx.AsyncClient(base_url=await processes.api("api", env), timeout=60)
    workers: list[Process] = [processes.worker(f"worker-{n}", env) for n in range(WORKERS)]

    batch_ids = []
    for n in range(BATCHES):
        response = await api.post(
            "/batches", params={"fallback": "true"}, json=pr_batch(ITEMS_PER_BATCH, start=100_000 * (n + 1))
        )
        assert response.status_code == 202, response.text
        batch_ids.append(response.json()["id"])

    kills = 0
    deadline = started + DEADLINE_SECONDS
    while not await _all_finished(api, batch_ids):
        assert time.monotonic() < deadline, f"not finished after {DEADLINE_SECONDS}s ({kills} kills)"
        if kills < MAX_KILLS:
            await asyncio.sleep(rng.uniform(0.5, 3.0))
            victim = rng.randrange(WORKERS)
            workers[victim].kill()
            kills += 1
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            workers[victim] = processes.worker(f"worker-{victim}-restart-{kills}", env)
        else:
            await asyncio.sleep(0.5)
    duration = time.monotonic() - started
    db = Database(postgres_url)
    # Deleting a chunk's files on Groq may still be under way (or waiting out a killed worker's lease) when its
    # batch has finished; the workers are stopped only once it is done.
    await eventually(
        db.chunks,
        lambda chunks: all(chunk.files_deleted_at is not None for chunk in chunks),
        within=60,
        what="every chunk's files deleted",
    )
    for worker in workers:  # a worker restarted a moment ago must be up before it can drain
        await eventually(lambda w=worker: db.worker_id(w.pid), bool, within=60, what=f"{worker.name} up")
    await stop_cleanly(*workers)

    await emulator.set_faults(error_rate=0, slow_seconds=0)  # the test's own reads go through the Files API

    # Invariant 2: one provider batch per pass chunk, and each one is the chunk's recorded batch.
    provider_batches = await emulator.batches()
    per_chunk = Counter((b.get("metadata") or {}).get("llm_batch_chunk") for b in provider_batches)
    assert max(per_chunk.values()) == 1, f"duplicate provider batches: {per_chunk.most_common(3)}"
    try:
        async with db.sessions() as session:
            recorded = set((await session.exec(select(Chunk.provider_batch_id))).all())
            attempts = list((await session.exec(select(Attempt))).all())
            passes = {p.id: p for p in (await session.exec(select(Pass).where(col(Pass.id).is_not(None)))).all()}
        assert recorded == {b["id"] for b in provider_batches}, "a provider batch the database does not know"
        assert await db.held_leases() == [], "a lease was left held"
    finally:
        await db.close()

    # Invariants 1 and 4: one merged row per item; counts and cost follow from the attempts.
    catalogue = Catalogue.build()
    assert AttemptStatus.PENDING not in {a.status for a in attempts}
    assert len({(a.item_id, a.pass_id) for a in attempts}) == len(attempts)
    cost_by_pass: dict[int, int] = defaultdict(int)
    for attempt in attempts:
        model = passes[attempt.pass_id].model
        cost_by_pass[attempt.pass_id] += catalogue.cost_pico(model, Usage(attempt.input_tokens, attempt.output_tokens))
    totals = Counter[str]()
    for batch_id in batch_ids:
        summary = (await api.get(f"/batches/{batch_id}")).json()
        rows = await _results(api, batch_id)
        assert len(rows) == len({row["custom_id"] for row in rows}) == ITEMS_PER_BATCH
        assert {row["status"] for row in rows} <= {"succeeded", "failed"}
        counts = summary["counts"]
        assert counts["pending"] == 0 and counts["succeeded"] + counts["failed"] == ITEMS_PER_BATCH
        assert counts["succeeded"] == sum(row["status"] == "succeeded" for row in rows)
        batch_cost = 0
        for pass_out in summary["passes"]:
            [pass_id] = [p.id for p in passes.values() if p.batch_id == batch_id and p.number == pass_out["number"]]
            assert pass_id is not None
            assert pass_out["cost"]["usd_exact"] == usd_text(cost_by_pass[pass_id])
            batch_cost += cost_by_pass[pass_id]
        assert summary["cost"]["usd_exact"] == usd_text(batch_cost)
        assert sum(Decimal(row["cost_usd_exact"]) for row in rows) == Decimal(usd_text(batch_cost))
        totals.update(row["status"] for row in rows)
    statuses = Counter(b["status"] for b in provider_batches)
    leftover = await emulator.files()
    calls = Counter(record["status"] for record in (await emulator.client.get("/_emulator/requests")).json()["data"])
    logs = "".join(process.log() for process in processes.started if process.name.startswith("worker"))
    await api.aclose()
    await emulator.close()
    assert kills >= MIN_KILLS, "the work finished before the soak could kill enough workers"
    assert leftover == [], "files left on Groq: inputs, results or orphaned uploads"

    with capsys.disabled():
        print(
            f"\nsoak: {BATCHES * ITEMS_PER_BATCH} items in {BATCHES} batches, {WORKERS} workers, "
            f"{kills} SIGKILLs, {len(provider_batches)} provider batches ({dict(statuses)}), "
            f"{logs.count('adopting provider batch')} adopted after a kill, "
            f"{len(attempts)} attempts, {totals['succeeded']} succeeded / {totals['failed']} failed, "
            f"{sum(calls.values())} calls to the emulator ({sum(n for s, n in calls.items() if s >= 429)} faulted), "
            f"cost ${usd_text(sum(cost_by_pass.values()))}, {len(leftover)} files left on the emulator, "
            f"{duration:.1f}s"
        )
