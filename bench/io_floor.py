"""The floor under bench/scale.py's raw limit: what the same bytes cost once they also travel the way the
service must move them. Prints figures; asserts nothing.

    .venv/bin/python bench/io_floor.py [--items 21000,100000]

scale.py's raw limit parses, serialises and stores the workload in one process, into SQLite in memory. The
service cannot do less than that, and it also has to:

- store into a durable file: the raw limit again, into a WAL file with the service's settings (16 KB pages,
  synchronous=NORMAL);
- receive the submission over HTTP: the CPU uvicorn (with httptools, as the service runs it) spends taking in
  the POST body, measured on a server that reads it and does nothing else;
- send every request line to Groq and fetch every result: the groq SDK uploading both passes' JSONL files and
  downloading their output files, against the emulator, timed in this process.

The sum is the least any implementation of the service spends. Printed next to the raw limit, it shows what
is left, under a ratio to the raw limit, for everything else the service does (leases, chunk state, routing,
counters, validation, the status reads). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import groq
import httpx
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from harness import payload, proc_stat, raw_limit, raw_once, result_lines, start, stop_all, wait_http  # noqa: E402

from service.settings import Settings  # noqa: E402
from tests.loopback import free_port  # noqa: E402

FAILED_SHARE = 0.2  # of pass 1, sent again in pass 2: the emulator's seeded failure rate in scale.py's runs
MODEL = "openai/gpt-oss-20b"


async def sink(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that reads a request body and answers with its length: HTTP's cost and nothing else."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    received = 0
    while True:
        message = await receive()
        received += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(received).encode()})


def durable_raw(body: bytes, results: list[list[bytes]], path: Path) -> float:
    """scale.py's raw limit, into a new WAL file with the service's SQLite settings; CPU seconds."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return raw_once(body, results, str(path), ("page_size=16384", "journal_mode=WAL", "synchronous=NORMAL"))


def request_files(body: bytes, failed_share: float = FAILED_SHARE) -> list[bytes]:
    """The JSONL input files of both passes (every item, then the share that failed), split as the service
    splits a pass into provider batches (MAX_LINES_PER_PROVIDER_BATCH, MAX_BYTES_PER_PROVIDER_BATCH)."""
    submission = orjson.loads(body)
    items, params = submission["items"], submission["params"]
    max_lines, max_bytes = (
        Settings.model_fields["max_lines_per_provider_batch"].default,
        Settings.model_fields["max_bytes_per_provider_batch"].default,
    )
    files = []
    for count in (len(items), int(len(items) * failed_share)):
        current: list[bytes] = []
        size = 0
        for item in items[:count]:
            line = (
                orjson.dumps(
                    {
                        "custom_id": item["custom_id"],
                        "method": "POST",
                        "url": "/v1/chat/completions",
                        "body": {**params, **item["body"], "model": MODEL},
                    }
                )
                + b"\n"
            )
            if current and (len(current) == max_lines or size + len(line) > max_bytes):
                files.append(b"".join(current))
                current, size = [], 0
            current.append(line)
            size += len(line)
        files.append(b"".join(current))
    return files


async def receiving(body: bytes, work: Path) -> float:
    """CPU seconds uvicorn spends taking in `body` as one POST (the least of three)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "io_floor:sink", "--app-dir", str(REPO / "bench"), "--port", str(port)]
    server = start([*command, "--log-level", "warning", "--no-access-log"], dict(os.environ), work / "sink.log")
    try:
        await wait_http(f"http://127.0.0.1:{port}/")
        spent = []
        async with httpx.AsyncClient(timeout=120) as client:
            for _ in range(3):
                before = proc_stat(server.pid).cpu
                answer = await client.post(f"http://127.0.0.1:{port}/", content=body)
                assert answer.text == str(len(body))
                spent.append(proc_stat(server.pid).cpu - before)
        return min(spent)
    finally:
        stop_all([server])


async def transferring(body: bytes, work: Path, failed_share: float = FAILED_SHARE) -> tuple[float, float, int]:
    """CPU seconds of this process uploading each input file and downloading its output and error files with
    the groq SDK (the emulator runs the batches in between, untimed), and the result lines downloaded."""
    port = free_port()
    emulator = start(
        [sys.executable, "-m", "groq_emulator", "--port", str(port), "--time-scale", "0.01", "--log-level", "warning"],
        dict(os.environ),
        work / "emulator.log",
    )
    upload = download = 0.0
    lines = 0
    try:
        await wait_http(f"http://127.0.0.1:{port}/_emulator/faults")
        client = groq.AsyncGroq(api_key="floor", base_url=f"http://127.0.0.1:{port}")
        for number, content in enumerate(request_files(body, failed_share), start=1):
            path = work / f"input-{number}.jsonl"
            path.write_bytes(content)
            gc.collect()
            started = time.process_time()
            with path.open("rb") as handle:
                created = await client.files.create(file=(path.name, handle, "application/jsonl"), purpose="batch")
            upload += time.process_time() - started
            assert created.id is not None
            batch_id = (
                await client.batches.create(
                    input_file_id=created.id, endpoint="/v1/chat/completions", completion_window="24h"
                )
            ).id
            batch = await client.batches.retrieve(batch_id)
            while batch.status not in ("completed", "failed", "expired", "cancelled"):
                await asyncio.sleep(0.2)
                batch = await client.batches.retrieve(batch_id)
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id is None:
                    continue
                started = time.process_time()
                async with client.files.with_streaming_response.content(file_id) as response:
                    pending = b""
                    async for chunk in response.iter_bytes():
                        pending += chunk
                        *complete, pending = pending.split(b"\n")
                        lines += len(complete)
                download += time.process_time() - started
        await client.close()
    finally:
        stop_all([emulator])
    return upload, download, lines


@dataclass(frozen=True)
class Floor:
    """CPU seconds of each part of the floor, and the result lines downloaded."""

    durable: float
    received: float
    upload: float
    download: float
    lines: int

    @property
    def total(self) -> float:
        return self.durable + self.received + self.upload + self.download


async def floor_of(body: bytes, results: list[list[bytes]], work: Path, failed_share: float = FAILED_SHARE) -> Floor:
    """The floor for these bytes: the servers' parts first, then the durable raw limit once they have stopped
    (on a 2-core machine their work would slow it down)."""
    received = await receiving(body, work)
    upload, download, lines = await transferring(body, work, failed_share)
    gc.disable()
    try:
        durable = min(durable_raw(body, results, work / "raw.db") for _ in range(3))
    finally:
        gc.enable()
    return Floor(durable, received, upload, download, lines)


async def measure(items: int, work: Path) -> None:
    body = orjson.dumps(payload(items))
    results = result_lines(orjson.loads(body)["items"], 2, FAILED_SHARE)
    floor = await floor_of(body, results, work)
    raw = raw_limit(body, results)
    print(f"{items} items, a {len(body) / 1e6:.1f} MB submission, {floor.lines} result lines downloaded")
    print(f"  raw limit (scale.py's: SQLite in memory)   {raw:7.3f} s")
    print(f"  the same into a WAL file                   {floor.durable:7.3f} s")
    print(f"  + uvicorn receiving the POST               {floor.received:7.3f} s")
    print(f"  + groq SDK upload, both passes             {floor.upload:7.3f} s")
    print(f"  + groq SDK download, both passes           {floor.download:7.3f} s")
    print(f"  = floor                                    {floor.total:7.3f} s = {floor.total / raw:.2f}x the raw limit")
    print(f"  3x the raw limit leaves {3 * raw - floor.total:.3f} s for everything else the service does")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="21000,100000")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llm-batch-floor-") as tmp:
        for items in (int(n) for n in args.items.split(",")):
            asyncio.run(measure(items, Path(tmp)))


if __name__ == "__main__":
    main()
