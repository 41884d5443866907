"""Signals to real worker processes: SIGTERM drains (no new claims, the current step finishes or is released,
exit 0, no lease left), and a worker paused past its lease (SIGSTOP … SIGCONT) changes nothing when it wakes."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from service.models import ChunkState
from tests.conftest import Service
from tests.payloads import pr_batch
from tests.reliability.observe import Database, EmulatorClient, eventually
from tests.reliability.processes import Processes, service_env

WAIT = 60.0


async def _held_by(db: Database, worker_id: str) -> list[tuple[str, str, str]]:
    return [lease for lease in await db.held_leases() if lease[2] == worker_id]


@pytest.mark.parametrize(
    ("grace_seconds", "slow_seconds"),
    [pytest.param(25, 0.5, id="step-finishes"), pytest.param(0.5, 20, id="step-outlasts-grace")],
)
async def test_sigterm_stops_claiming_and_exits_zero_holding_no_lease(
    start_service: Any,
    processes: Processes,
    database_url: str,
    tmp_path: Path,
    db: Database,
    grace_seconds: float,
    slow_seconds: float,
) -> None:
    service: Service = await start_service(database_url, workers_enabled=False)
    url = await processes.emulator()
    emulator = EmulatorClient(url)
    await emulator.set_faults(slow_seconds=slow_seconds)  # every call to Groq takes this long
    await service.submit(pr_batch(50))
    env = service_env(
        database_url,
        url,
        tmp_path / "spool",
        worker_stop_grace_seconds=grace_seconds,
        max_lines_per_provider_batch=10,
    )
    worker = processes.worker("worker", env)
    worker_id = await eventually(lambda: db.worker_id(worker.pid), bool, within=WAIT, what="worker registered")
    assert worker_id is not None
    await eventually(
        lambda: _held_by(db, worker_id),
        lambda held: any(table == "provider_batches" for table, _id, _owner in held),
        within=WAIT,
        what="the worker working on a chunk",
    )

    worker.send(signal.SIGTERM)
    assert await worker.wait(grace_seconds + 15) == 0, worker.log()[-3000:]

    assert await db.held_leases() == []
    assert await db.worker_id(worker.pid) is None, "a stopped worker no longer counts as live"
    log = worker.log()
    assert "stop requested; no new claims" in log
    chunks = await db.chunks()
    assert any(chunk.state == ChunkState.PENDING for chunk in chunks), "it stopped claiming: work is left"
    if grace_seconds < slow_seconds:
        assert "cancelling them" in log
    await emulator.close()


async def test_worker_paused_past_its_lease_changes_nothing_when_it_wakes(
    start_service: Any, processes: Processes, database_url: str, tmp_path: Path, db: Database
) -> None:
    service: Service = await start_service(database_url, workers_enabled=False)
    url = await processes.emulator()
    emulator = EmulatorClient(url)
    await emulator.set_faults(slow_seconds=1.0)
    created = await service.submit(pr_batch(40))
    env = service_env(database_url, url, tmp_path / "spool", worker_lease_seconds=1.5)
    sleeper = processes.worker("sleeper", env)
    sleeper_id = await eventually(lambda: db.worker_id(sleeper.pid), bool, within=WAIT, what="worker registered")
    await eventually(
        db.chunks,
        lambda chunks: [(c.state, c.lease_owner) for c in chunks] == [(ChunkState.UPLOADING, sleeper_id)],
        within=WAIT,
        what="the sleeper in the middle of sending the chunk",
    )
    sleeper.send(signal.SIGSTOP)
    await emulator.set_faults(slow_seconds=0)

    survivor = processes.worker("survivor", env)
    await service.wait(created["id"], within=WAIT)
    survivor.send(signal.SIGTERM)
    assert await survivor.wait(30) == 0
    before = await db.snapshot()
    provider_batches = await emulator.batches()

    sleeper.send(signal.SIGCONT)
    await eventually(
        lambda: _log_of(sleeper), lambda log: "lost the lease" in log, within=WAIT, what="the sleeper noticing"
    )
    sleeper.send(signal.SIGTERM)
    assert await sleeper.wait(30) == 0, sleeper.log()[-3000:]

    assert await db.snapshot() == before, "the woken worker changed the database"
    assert await emulator.batches() == provider_batches, "the woken worker created or changed a provider batch"
    assert await emulator.files() == [], "the woken worker left an upload behind"
    assert await db.held_leases() == []
    await emulator.close()


async def _log_of(process: Any) -> str:
    log: str = process.log()
    return log
