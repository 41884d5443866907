"""How long a dead worker's chunk waits before another worker takes it over (SIGKILL mid-step).

    .venv/bin/python bench/lease_takeover.py                       # SQLite file, WORKER_LEASE_SECONDS=30
    .venv/bin/python bench/lease_takeover.py --lease 5 --database-url postgresql://postgres@127.0.0.1/bench

Starts the emulator (every call slowed, so steps take a while), an API-only replica and two `python -m service
worker` processes, submits a batch, SIGKILLs the worker holding a chunk while its step runs and prints how long
the chunk stayed with the dead worker. Expect about the lease plus one idle sweep (WORKER_IDLE_SECONDS=1).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.payloads import pr_batch
from tests.reliability.observe import Database, EmulatorClient, eventually
from tests.reliability.processes import Processes, service_env


async def main(database_url: str, lease: float, workdir: Path) -> None:
    processes = Processes(workdir)
    db = Database(database_url)
    try:
        emulator_url = await processes.emulator(processing_seconds=5)
        emulator = EmulatorClient(emulator_url)
        await emulator.set_faults(slow_seconds=2)
        env = service_env(
            database_url,
            emulator_url,
            workdir / "spool",
            worker_lease_seconds=lease,
            worker_idle_seconds=1,
            poll_interval_seconds=1,
            max_lines_per_provider_batch=50,
        )
        api = httpx.AsyncClient(base_url=await processes.api("api", env), timeout=60)
        workers = [processes.worker(f"worker-{n}", env) for n in range(2)]
        (await api.post("/batches", json=pr_batch(100))).raise_for_status()

        chunks = await eventually(
            db.chunks, lambda rows: any(r.lease_owner for r in rows), within=120, what="a chunk being worked on"
        )
        held = next(row for row in chunks if row.lease_owner)
        [victim] = [w for w in workers if await db.worker_id(w.pid) == held.lease_owner]
        victim.kill()
        killed_at = time.monotonic()
        await eventually(
            db.chunks,
            lambda rows: next(r for r in rows if r.id == held.id).lease_owner not in (None, held.lease_owner),
            within=lease * 3 + 30,
            what="the takeover",
            poll=0.1,
        )
        waited = time.monotonic() - killed_at
        print(
            f"lease {lease:g}s: chunk {held.id} (state {held.state}) taken over {waited:.1f}s after its worker "
            f"was SIGKILLed mid-step ({waited - lease:+.1f}s beyond the lease)"
        )
        await api.aclose()
        await emulator.close()
    finally:
        await db.close()
        processes.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lease", type=float, default=30.0, help="WORKER_LEASE_SECONDS")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        asyncio.run(main(url, args.lease, Path(tmp)))
