"""End-to-end throughput of the service on the emulator: a 21,000-PR backfill, two passes.

Prints numbers, asserts nothing. Usage:
    .venv/bin/python bench/service_throughput.py [--items 21000] [--database-url sqlite:///...|postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from demo.data import demo_payload
from groq_emulator import Emulator, EmulatorConfig, create_emulator_app
from service.app import create_app
from service.settings import Settings


async def run(items: int, database_url: str, spool: Path) -> None:
    emulator = Emulator(EmulatorConfig(seed=1, validating_seconds=0.1, processing_seconds=1.0, finalizing_seconds=0.1))
    settings = Settings(
        database_url=database_url,
        groq_api_key=None,
        poll_interval_seconds=0.2,
        worker_idle_seconds=0.05,
        spool_dir=str(spool),
    )
    app = create_app(settings, emulator=create_emulator_app(emulator=emulator))
    payload = demo_payload(items)
    body_bytes = len(httpx.Request("POST", "http://x", json=payload).content)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            started = time.perf_counter()
            response = await client.post("/batches", params={"fallback": "true"}, json=payload)
            submitted = time.perf_counter()
            response.raise_for_status()
            batch_id = response.json()["id"]
            while True:
                summary = (await client.get(f"/batches/{batch_id}")).json()
                if summary["status"] in ("completed", "failed", "cancelled"):
                    break
                await asyncio.sleep(0.25)
            finished = time.perf_counter()
            rows = 0
            async with client.stream(
                "GET", f"/batches/{batch_id}/results", headers={"Accept": "application/x-ndjson"}
            ) as stream:
                async for line in stream.aiter_lines():
                    rows += bool(line)
            streamed = time.perf_counter()
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    passes: list[dict[str, Any]] = summary["passes"]
    print(f"database           {database_url.split('@')[-1]}")
    print(f"items              {items:,} ({body_bytes / 1e6:.1f} MB request body)")
    print(f"POST /batches      {submitted - started:.2f} s ({items / (submitted - started):,.0f} items/s stored)")
    print(f"until {summary['status']:<12} {finished - submitted:.2f} s (emulator schedule ~1.2 s per provider batch)")
    for pass_ in passes:
        print(
            f"  pass {pass_['number']} {pass_['model']:<26} {pass_['items']:>6,} items "
            f"{pass_['failed']:>5,} failed  {len(pass_['provider_batches'])} provider batches  "
            f"${pass_['cost']['usd']:.4f}"
        )
    print(
        f"results NDJSON     {rows:,} rows in {streamed - finished:.2f} s ({rows / (streamed - finished):,.0f} rows/s)"
    )
    print(f"total cost         ${summary['cost']['usd']:.4f}  succeeded {summary['counts']['succeeded']:,}")
    print(f"peak RSS           {peak_rss_mb:,.0f} MB (whole process, emulator included)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=21_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        asyncio.run(run(args.items, url, Path(tmp) / "spool"))


if __name__ == "__main__":
    main()
