"""One submission as large as the 21,000-PR backfill: how long it takes and how much memory the server needs.

Prints numbers, asserts nothing. Usage:
    .venv/bin/python bench/large_submission.py [--items 21000] [--item-kb 20]

Starts the service with uvicorn in a subprocess (SQLite in a temporary directory, workers off, default input
limits), POSTs one batch of N items whose user message is ~item-kb KB each, and reports the status, the time
to the 202, the body size, and the server's peak resident memory (VmHWM).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.loopback import free_port, service_command  # noqa: E402


def payload(items: int, item_kb: int) -> bytes:
    text = ("diff --git a/payments/retry.py b/payments/retry.py\n+    with lock(order_id):\n" * 400)[: item_kb * 1024]
    head = b'{"params":{"temperature":0,"response_format":{"type":"json_object"}},"items":['
    parts = [
        orjson.dumps(
            {
                "custom_id": f"pr-{n}",
                "body": {
                    "messages": [
                        {"role": "system", "content": "You review pull requests and answer in JSON."},
                        {"role": "user", "content": f"PR #{n}\n{text}"},
                    ],
                    "max_completion_tokens": 2048,
                },
            }
        )
        for n in range(items)
    ]
    return head + b",".join(parts) + b"]}"


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=21_000)
    parser.add_argument("--item-kb", type=int, default=20)
    args = parser.parse_args()
    body = payload(args.items, args.item_kb)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "SPOOL_DIR": f"{tmp}/spool",
            "WORKERS_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
        }
        server = subprocess.Popen(
            service_command(port),
            cwd=ROOT,
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            idle_rss = peak_rss_mib(server.pid)
            started = time.perf_counter()
            response = httpx.post(
                f"{base}/batches", content=body, headers={"content-type": "application/json"}, timeout=1800
            )
            elapsed = time.perf_counter() - started
            print(f"items            {args.items}")
            print(f"body             {len(body) / 2**20:.0f} MiB")
            print(
                f"status           {response.status_code} {response.text[:120] if response.status_code != 202 else ''}"
            )
            print(f"time to answer   {elapsed:.1f} s")
            print(f"server peak RSS  {peak_rss_mib(server.pid):.0f} MiB (idle {idle_rss:.0f} MiB)")
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
