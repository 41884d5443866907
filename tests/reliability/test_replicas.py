"""Several processes on one database: worker processes share the work through leases, on SQLite too (WAL,
busy timeout, BEGIN IMMEDIATE claims); /readyz of an API-only replica sees the workers and the provider's
state through the database."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Service
from tests.payloads import pr_batch
from tests.reliability.observe import Database, EmulatorClient, eventually
from tests.reliability.processes import Processes, service_env, stop_cleanly

WAIT = 120.0


async def test_two_worker_processes_share_one_sqlite_file_safely(
    start_service: Any, processes: Processes, sqlite_url: str, tmp_path: Path
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    url = await processes.emulator()
    env = service_env(sqlite_url, url, tmp_path / "spool", max_lines_per_provider_batch=20)
    workers = [processes.worker(f"worker-{n}", env) for n in range(2)]
    batch_ids = [(await service.submit(pr_batch(80, start=1000 * n), fallback=True))["id"] for n in range(1, 4)]
    summaries = [await service.wait(batch_id, within=WAIT) for batch_id in batch_ids]
    await stop_cleanly(*workers)

    emulator = EmulatorClient(url)
    per_chunk = await emulator.batches_per_chunk()
    assert max(per_chunk.values()) == 1, f"duplicate provider batches: {per_chunk.most_common(3)}"
    for summary, batch_id in zip(summaries, batch_ids, strict=True):
        rows = await service.results(batch_id)
        assert len(rows) == len({r["custom_id"] for r in rows}) == 80
        assert summary["counts"]["pending"] == 0
    logs = "".join(worker.log() for worker in workers)
    assert "database is locked" not in logs
    assert "Traceback" not in logs
    db = Database(sqlite_url)
    assert await db.held_leases() == []
    await db.close()
    await emulator.close()


async def test_api_replica_reports_live_workers_and_a_provider_outage_from_the_database(
    processes: Processes, database_url: str, tmp_path: Path
) -> None:
    url = await processes.emulator()
    emulator = EmulatorClient(url)
    env = service_env(database_url, url, tmp_path / "spool", groq_max_retries=0, poll_interval_seconds=1)
    api = httpx.AsyncClient(base_url=await processes.api("api", env), timeout=10)
    ready = (await api.get("/readyz")).json()
    assert ready["workers"] == 0 and ready["provider"] == "ok"

    worker = processes.worker("worker", env)
    await eventually(lambda: _ready(api), lambda body: body["workers"] == 1, within=WAIT, what="worker seen")

    await emulator.set_faults(server_error_next=10**6)  # Groq answers 500 to everything
    response = await api.post("/batches", json=pr_batch(30))
    assert response.status_code == 202
    batch_id = response.json()["id"]
    degraded = await eventually(
        lambda: _ready(api),
        lambda body: body["provider"] == "degraded" and body["provider_backoff_until"] is not None,
        within=WAIT,
        what="the outage reported",
    )
    assert "500" in (degraded["provider_last_error"] or "")
    assert degraded["status"] == "ok", "the API itself stays ready during a provider outage"

    await emulator.set_faults(server_error_next=0)
    await eventually(lambda: _status(api, batch_id), lambda s: s == "completed", within=WAIT, what="work resumed")
    assert (await _ready(api))["provider"] == "ok"
    rows = (await api.get(f"/batches/{batch_id}/results", params={"limit": 100})).json()["data"]
    assert len(rows) == 30 and {r["status"] for r in rows} <= {"succeeded", "failed"}

    await stop_cleanly(worker)
    assert (await _ready(api))["workers"] == 0
    await api.aclose()
    await emulator.close()


async def _ready(api: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await api.get("/readyz")).json()
    return body


async def _status(api: httpx.AsyncClient, batch_id: str) -> str:
    status: str = (await api.get(f"/batches/{batch_id}")).json()["status"]
    return status


async def test_processes_starting_together_on_a_fresh_database_all_migrate_it(
    processes: Processes, database_url: str, tmp_path: Path
) -> None:
    env = service_env(database_url, "http://127.0.0.1:9", tmp_path / "spool")
    starting = [processes.start(f"migrate-{n}", [sys.executable, "-m", "service", "migrate"], env) for n in range(3)]
    for process in starting:
        assert await process.wait(60) == 0, process.log()[-3000:]
