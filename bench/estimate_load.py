"""GET /healthz while large estimates run, against a service already started (issue #25, finding 4). Prints
figures; asserts nothing. /healthz is polled from a process of its own, so that the client uploading the
estimates (hundreds of MB) does not slow the probe's own event loop.

    DATABASE_URL=sqlite:////tmp/b.db WORKERS_ENABLED=false MAX_REQUEST_BYTES=1073741824 \\
        .venv/bin/python -m uvicorn --factory service.app:serve_app --port 8765 &
    .venv/bin/python bench/estimate_load.py http://127.0.0.1:8765 --items 2000 --kilobytes 105 --concurrent 3
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.payloads import pr_batch

WORDS = "the reviewer reads each changed function and writes down what it does and why "


def probe(url: str, results: Connection) -> None:
    latencies: list[float] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        while not results.poll():
            started = time.perf_counter()
            client.get("/healthz").raise_for_status()
            latencies.append(time.perf_counter() - started)
            time.sleep(0.05)
    results.send(latencies)


async def estimates(url: str, body: bytes, concurrent: int) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/batches/estimate",
                    params={"fallback": "true"},
                    content=body,
                    headers={"content-type": "application/json"},
                )
                for _ in range(concurrent)
            )
        )
    return [answer.status_code for answer in answers]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--kilobytes", type=int, default=105)
    parser.add_argument("--concurrent", type=int, default=1)
    args = parser.parse_args()
    payload = pr_batch(args.items)
    text = (WORDS * (args.kilobytes * 1024 // len(WORDS) + 1))[: args.kilobytes * 1024]
    for item in payload["items"]:
        item["body"]["messages"][1]["content"] += "\n" + text
    body = orjson.dumps(payload)
    ours, theirs = multiprocessing.Pipe()
    prober = multiprocessing.Process(target=probe, args=(args.url, theirs))
    prober.start()
    time.sleep(0.5)
    started = time.perf_counter()
    statuses = asyncio.run(estimates(args.url, body, args.concurrent))
    took = time.perf_counter() - started
    ours.send("stop")
    latencies = sorted(ours.recv())
    prober.join()
    print(
        f"{args.concurrent} x {len(body) / 1e6:.0f} MB ({args.items} items): {took:.1f} s, {statuses}; /healthz "
        f"n={len(latencies)} p50 {latencies[len(latencies) // 2] * 1000:.0f} ms "
        f"p99 {latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000:.0f} ms max {latencies[-1] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
