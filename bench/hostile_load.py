"""The service under hostile input and load, as its own process on loopback, against the independent provider
stand-in (tests/standin_provider.py). Prints figures; asserts nothing. Bounded: a few minutes at most.

    .venv/bin/python bench/hostile_load.py [--items 21000] [--database-url sqlite:///...|postgresql://...]

- GET /healthz p50/p99/max while the service ingests an answer built to make `(a+)+$` backtrack, and while it
  takes, lays out and ingests a 21,000-item batch (all in the same process as the API);
- outcomes of 20 NDJSON downloads + 20 status GETs at once, on a finished and on a running batch;
- time, and the service's RSS, to refuse 10^6 junk items (`{"items":[0,0,...]}`, 2 MB) and 10^6 invalid item
  objects (~30 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from harness import payload, proc_stat, start, stop_all, wait_http  # noqa: E402

from tests.loopback import free_port, service_command  # noqa: E402
from tests.reliability.test_hostile_load import EVIL_ID, evil_batch  # noqa: E402


def _probe(url: str, stop: Any, ready: Any, results: Connection) -> None:
    """GET /healthz every 20 ms until `stop` is set, then send back (latencies in ms, errors). Runs in a process
    of its own, so that what it measures is the service, not this script's own event loop (which is busy
    sending a 47 MB body at the same time)."""
    latencies: list[float] = []
    errors = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                client.get("/healthz").raise_for_status()
            except httpx.HTTPError:
                errors += 1
            latencies.append((time.monotonic() - started) * 1000)
            ready.set()
            time.sleep(0.02)
    results.send((latencies, errors))


@dataclass
class Probes:
    latencies: list[float]
    errors: int

    def report(self, what: str) -> str:
        ordered = sorted(self.latencies) or [0.0]
        p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
        return (
            f"{what}: /healthz p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms "
            f"over {len(ordered)} probes, {self.errors} unanswered"
        )


async def probing(url: str, work: Any) -> tuple[Any, Probes]:
    """Await `work` while another process probes /healthz."""
    context = multiprocessing.get_context("spawn")
    stop, ready = context.Event(), context.Event()
    receiver, sender = context.Pipe(duplex=False)
    prober = context.Process(target=_probe, args=(url, stop, ready, sender), daemon=True)
    prober.start()
    try:
        await asyncio.to_thread(ready.wait, 30)
        result = await work
    finally:
        stop.set()
        latencies, errors = await asyncio.to_thread(receiver.recv)
        prober.join(10)
    return result, Probes(latencies, errors)


async def finished(client: httpx.AsyncClient, batch_id: str, within: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        summary: dict[str, Any] = (await client.get(f"/batches/{batch_id}")).json()
        if summary["status"] in ("completed", "failed", "cancelled"):
            return summary
        if time.monotonic() > deadline:
            raise RuntimeError(f"{batch_id} still {summary['status']}")
        await asyncio.sleep(0.1)


async def submit_and_finish(client: httpx.AsyncClient, body: bytes) -> dict[str, Any]:
    response = await client.post("/batches", content=body, headers={"content-type": "application/json"})
    response.raise_for_status()
    return await finished(client, response.json()["id"])


async def outcome(client: httpx.AsyncClient, path: str, *, export: bool) -> str:
    try:
        if not export:
            response = await client.get(path)
            return "200" if response.status_code == 200 else f"{response.status_code}"
        async with client.stream("GET", path, headers={"Accept": "application/x-ndjson"}) as response:
            if response.status_code != 200:
                return f"{response.status_code}"
            async for _chunk in response.aiter_bytes():
                pass
            return "200 complete"
    except httpx.HTTPError as error:
        return type(error).__name__


async def crowd(client: httpx.AsyncClient, batch_id: str) -> Counter[str]:
    export, status = f"/batches/{batch_id}/results", f"/batches/{batch_id}"
    results = await asyncio.gather(
        *(outcome(client, export, export=True) for _ in range(20)),
        *(outcome(client, status, export=False) for _ in range(20)),
    )
    return Counter(results)


async def refuse(client: httpx.AsyncClient, pid: int, body: bytes, what: str) -> str:
    before = proc_stat(pid)
    rss_before = _rss_mb(pid)
    started = time.monotonic()
    response = await client.post("/batches", content=body, headers={"content-type": "application/json"})
    elapsed = time.monotonic() - started
    after = proc_stat(pid)
    return (
        f"{what} ({len(body) / 1e6:.1f} MB): {response.status_code} in {elapsed:.2f} s "
        f"({after.cpu - before.cpu:.2f} s CPU), RSS {rss_before:.0f} -> {_rss_mb(pid):.0f} MB, "
        f"peak so far {after.hwm_mb:.0f} MB; field {response.json().get('field')!r}"
    )


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main_async(args: argparse.Namespace, work: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "GROQ_"))}
    provider_port, service_port = free_port(), free_port()
    processes = [
        start(
            [
                sys.executable,
                "-m",
                "tests.standin_provider",
                "--port",
                str(provider_port),
                "--echo-custom-id",
                "--delay",
                "1.0",
            ],
            env,
            work / "standin.log",
        )
    ]
    provider = f"http://127.0.0.1:{provider_port}"
    try:
        await wait_http(f"{provider}/openai/v1/models")
        service_env = {
            **env,
            "DATABASE_URL": args.database_url or f"sqlite:///{work}/hostile.db",
            "GROQ_BASE_URL": provider,
            "GROQ_API_KEY": "bench",
            "POLL_INTERVAL_SECONDS": "0.2",
            "LOG_LEVEL": "WARNING",
            "SPOOL_DIR": str(work / "spool"),
        }
        service = start(
            service_command(service_port, quiet=True),
            service_env,
            work / "service.log",
        )
        processes.insert(0, service)
        url = f"http://127.0.0.1:{service_port}"
        await wait_http(f"{url}/healthz")
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            summary, prober = await probing(url, submit_and_finish(client, orjson.dumps(evil_batch())))
            rows = (await client.get(f"/batches/{summary['id']}/results")).json()["data"]
            print(prober.report(f"answer {EVIL_ID!r} against (a+)+$ -> {rows[0]['error']['code']}"))

            body = orjson.dumps(payload(args.items))
            summary, prober = await probing(url, submit_and_finish(client, body))
            print(
                prober.report(f"{args.items:,}-item batch, submit to completed ({summary['counts']['succeeded']:,} ok)")
            )

            print(f"finished batch, 20 downloads + 20 GETs: {dict(await crowd(client, summary['id']))}")
            running = await client.post(
                "/batches", content=orjson.dumps(payload(args.items)), headers={"content-type": "application/json"}
            )
            running_id = running.json()["id"]
            counts = await crowd(client, summary["id"])
            state = (await client.get(f"/batches/{running_id}")).json()["status"]
            print(f"while another batch runs ({state} when the crowd ended), 20 downloads + 20 GETs: {dict(counts)}")
            done = await finished(client, running_id)
            print(f"  ... and the running batch then ended {done['status']} with {done['counts']['succeeded']:,} ok")

            print(await refuse(client, service.pid, b'{"items":[' + b"0," * 999_999 + b"0]}", "10^6 junk items"))
            objects = b'{"items":[' + b'{"custom":"x","b":1},' * 999_999 + b'{"custom":"x","b":1}]}'
            print(await refuse(client, service.pid, objects, "10^6 invalid item objects"))
    finally:
        stop_all(processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=21_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llm-batch-hostile-") as tmp:
        asyncio.run(main_async(args, Path(tmp)))


if __name__ == "__main__":
    main()
