"""Hostile input and load against real processes: a pattern built to backtrack cannot freeze the service or its
restart, and concurrent NDJSON downloads never starve the workers, never end in a 500 and never end in a
truncated 200 (over the export bound: 503 with Retry-After)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from service.models import ChunkState
from tests.conftest import IN_CI
from tests.payloads import pr_batch
from tests.reliability.observe import Database, eventually
from tests.reliability.processes import Processes, service_env

WAIT = 60.0
EVIL_ID = "r0-" + "a" * 36 + "#"
EVIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"summary": {"type": "string", "pattern": "(a+)+$"}},
    "required": ["summary"],
}


def evil_batch() -> dict[str, Any]:
    return {
        "items": [{"custom_id": EVIL_ID, "body": {"messages": [{"role": "user", "content": "x"}]}}],
        "output_schema": EVIL_SCHEMA,
    }


class Prober:
    """GET /healthz every 50 ms while something runs: how long each took, and whether any went unanswered."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = await client.get("/healthz")
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code}")
                except httpx.HTTPError as error:
                    self.failures.append(type(error).__name__)
                self.latencies.append(time.monotonic() - started)
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()


async def finished(client: httpx.AsyncClient, batch_id: str, within: float = WAIT) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        body: dict[str, Any] = (await client.get(f"/batches/{batch_id}")).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        assert time.monotonic() < deadline, f"batch {batch_id} still {body['status']}"
        await asyncio.sleep(0.1)


async def test_a_backtracking_pattern_cannot_freeze_the_service_nor_its_restart(
    processes: Processes, sqlite_url: str, tmp_path: Path
) -> None:
    """The provider answers with the id, which the caller made to backtrack `(a+)+$` for ever in a backtracking
    engine. The service is killed while the batch is at the provider; its restart ingests the answer."""
    standin = await processes.standin(echo_custom_id=True, delay=1.0)
    env = service_env(sqlite_url, standin, tmp_path / "spool")
    url = await processes.api("service", env, workers=True)
    db = Database(sqlite_url)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            lookaround = {**evil_batch(), "output_schema": {"properties": {"s": {"pattern": "(?=a)a"}}}}
            refused = await client.post("/batches", json=lookaround)
            assert refused.status_code == 422 and "output_schema" in refused.json()["detail"]
            created = await client.post("/batches", json=evil_batch())
            assert created.status_code == 202, created.text
            batch_id = created.json()["id"]
            await eventually(
                db.chunks,
                lambda chunks: [chunk.state for chunk in chunks] == [ChunkState.SUBMITTED],
                within=WAIT,
                what="the chunk at the provider",
            )
        processes.started[-1].kill()

        url = await processes.api("service-restarted", env, workers=True)
        prober = Prober(url)
        probing = asyncio.create_task(prober.run())
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            summary = await finished(client, batch_id)
            rows = (await client.get(f"/batches/{batch_id}/results")).json()["data"]
        prober.stop()
        await probing
        restarted = processes.started[-1]
        restarted.send(signal.SIGTERM)
        await restarted.wait(30)  # uvicorn re-raises the signal once it has shut down: the code says SIGTERM
        assert "Application shutdown complete" in restarted.log(), "SIGTERM was not honoured"
    finally:
        await db.close()
    assert summary["status"] == "failed" and rows[0]["error"]["code"] == "schema_mismatch"
    assert not prober.failures, prober.failures
    assert prober.latencies and max(prober.latencies) < 2.0, max(prober.latencies)


async def download(client: httpx.AsyncClient, path: str) -> tuple[str, int]:
    """('ok', rows) for a complete export, ('busy', 0) for a 503 with Retry-After, or what went wrong."""
    try:
        async with client.stream("GET", path, headers={"Accept": "application/x-ndjson"}) as response:
            if response.status_code == 503:
                assert response.headers["retry-after"] and response.headers["content-type"].startswith(
                    "application/problem+json"
                )
                return "busy", 0
            if response.status_code != 200:
                return f"status {response.status_code}", 0
            body = b"".join([chunk async for chunk in response.aiter_bytes()])
    except httpx.HTTPError as error:
        return type(error).__name__, 0
    rows = [orjson.loads(line) for line in body.splitlines() if line.strip()]
    return "ok", len(rows)


async def status(client: httpx.AsyncClient, path: str) -> tuple[str, int]:
    try:
        response = await client.get(path)
    except httpx.HTTPError as error:
        return type(error).__name__, 0
    if response.status_code == 503:
        return "busy", 0
    return ("ok" if response.status_code == 200 else f"status {response.status_code}"), 0


async def test_concurrent_downloads_never_starve_the_workers_nor_fail_unseen(
    processes: Processes, database_url: str, tmp_path: Path
) -> None:
    items = 4_000 if IN_CI else 2_000
    standin = await processes.standin(delay=0.5)
    env = service_env(database_url, standin, tmp_path / "spool", EXPORT_MAX_CONCURRENT=4)
    url = await processes.api("service", env, workers=True)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        done_id = (await client.post("/batches", json=pr_batch(items))).json()["id"]
        await finished(client, done_id)
        export = f"/batches/{done_id}/results"

        outcomes = await asyncio.gather(*(download(client, export) for _ in range(16)))
        assert {kind for kind, _rows in outcomes} <= {"ok", "busy"}, outcomes
        assert all(rows == items for kind, rows in outcomes if kind == "ok"), "a 200 export was cut short"
        assert sum(kind == "ok" for kind, _ in outcomes) >= 4

        mixed = await asyncio.gather(
            *(download(client, export) for _ in range(20)),
            *(status(client, f"/batches/{done_id}") for _ in range(20)),
        )
        assert {kind for kind, _rows in mixed} <= {"ok", "busy"}, mixed
        assert all(kind == "ok" for kind, _ in mixed[20:]), "status reads are not refused by the export bound"

        running_id = (await client.post("/batches", json=pr_batch(500, start=100_000))).json()["id"]
        load = [download(client, export) for _ in range(20)] + [status(client, export) for _ in range(20)]
        under_load = await asyncio.gather(finished(client, running_id, within=WAIT), *load)
    assert under_load[0]["status"] == "completed", "the worker finished the batch while the exports ran"
    assert {kind for kind, _rows in under_load[1:]} <= {"ok", "busy"}, under_load[1:]
