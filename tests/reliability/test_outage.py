"""A provider outage of several seconds: the workers pause together instead of every due chunk retrying on
its own, nothing is lost, and the work resumes by itself when Groq answers again."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Service
from tests.payloads import pr_batch
from tests.reliability.observe import eventually

OUTAGE_SECONDS = 4.0


async def test_an_outage_pauses_every_chunk_together_and_loses_nothing(start_service: Any, database_url: str) -> None:
    # Back-off starts at 1 s (the poll interval); the SDK does not retry on its own, so each call is one request.
    service: Service = await start_service(
        database_url, max_lines_per_provider_batch=5, poll_interval_seconds=1.0, groq_max_retries=0
    )
    service.emulator.faults.server_error_next = 10**6
    created = await service.submit(pr_batch(60))  # twelve chunks, all due at once

    async def readiness() -> dict[str, Any]:
        body: dict[str, Any] = (await service.client.get("/readyz")).json()
        return body

    await eventually(
        readiness, lambda body: body["provider_backoff_until"] is not None, within=30, what="the circuit opening"
    )
    before = len(service.emulator.request_log)
    await asyncio.sleep(OUTAGE_SECONDS)
    during = len(service.emulator.request_log) - before
    # Each of the twelve chunks retrying on its own would call at least twice in these seconds (24+); paused
    # together, only a probe goes out when each pause ends (1 s, 2 s, 4 s ...).
    assert during <= 6, f"{during} requests to Groq during a {OUTAGE_SECONDS:.0f}s outage"
    assert (await service.client.get(f"/batches/{created['id']}")).json()["counts"]["pending"] == 60

    service.emulator.faults.server_error_next = 0
    summary = await service.wait(created["id"], within=60)
    assert summary["status"] == "completed"
    rows = await service.results(created["id"])
    assert len(rows) == len({r["custom_id"] for r in rows}) == 60
    assert (await readiness())["provider"] == "ok"
