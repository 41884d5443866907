"""What the scale benches share: the PR-analysis payload, the result lines a provider would give for it, the raw
limit of the same bytes, starting and stopping processes, reading their CPU, and PostgreSQL databases of their
own. Imported by scale.py, io_floor.py, hostile_load.py and reuse_index_growth.py (none of them imports another).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VALIDATING, PROCESSING, FINALIZING = 0.2, 1.0, 0.2  # the emulator's schedule per provider batch: 1.4 s
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STATUS_READS = 100  # status GETs after the run, for latency and CPU per read
DIFF_LINE = "+    if lock.acquire(timeout=order.lock_ttl):\n+        charge(order, idempotency_key=order.id)\n"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "risk_level", "categories", "score"],
    "properties": {
        "summary": {"type": "string", "maxLength": 400},
        "risk_level": {"type": "string", "enum": ["low", "medium", "high"]},
        "categories": {"type": "array", "items": {"type": "string", "enum": ["bugfix", "feature", "docs"]}},
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
    },
}


def payload(items: int) -> dict[str, Any]:
    """N PR analyses of ~2 KB each, best effort (no strict mode): the seed's failure profile."""
    body_text = DIFF_LINE * 21
    return {
        "strict": False,
        "params": {
            "temperature": 0,
            "response_format": {"type": "json_schema", "json_schema": {"name": "pr", "schema": SCHEMA}},
        },
        "items": [
            {
                "custom_id": f"acme/payments#{number}",
                "metadata": {"pr_id": number},
                "body": {
                    "max_completion_tokens": 2048,
                    "messages": [
                        {"role": "system", "content": "You review pull requests and answer in JSON."},
                        {"role": "user", "content": f"PR #{number}: fix the payment retry race.\n{body_text}"},
                    ],
                },
            }
            for number in range(1, items + 1)
        ],
    }


@dataclass
class ProcStat:
    cpu: float
    hwm_mb: float


def proc_stat(pid: int) -> ProcStat:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return ProcStat(cpu, hwm)


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each (SIGINT to py-spy, which then writes its samples), in order; SIGKILL what lingers."""
    for process in processes:
        process.send_signal(signal.SIGINT if process.args[0] == "py-spy" else signal.SIGTERM)  # type: ignore[index]
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)


async def wait_http(url: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                if (await client.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer")
            await asyncio.sleep(0.1)


def result_lines(items: list[dict[str, Any]], passes: int, failed_share: float) -> list[list[bytes]]:
    """Result lines shaped like Groq's, one list per pass (made before the clock starts: not the work measured)."""
    answer = orjson.dumps(
        {
            "summary": "Fixes the race in the payment retry worker.",
            "risk_level": "low",
            "categories": ["bugfix"],
            "score": 3,
        }
    ).decode()
    per_pass = []
    sent = items
    for number in range(1, passes + 1):
        per_pass.append(
            [
                orjson.dumps(
                    {
                        "id": f"batch_req_{index}",
                        "custom_id": item["custom_id"],
                        "response": {
                            "status_code": 200,
                            "request_id": f"req_{index}",
                            "body": {
                                "id": f"chatcmpl-{index}",
                                "object": "chat.completion",
                                "model": "openai/gpt-oss-20b",
                                "choices": [
                                    {
                                        "index": 0,
                                        "message": {"role": "assistant", "content": answer},
                                        "finish_reason": "stop",
                                    }
                                ],
                                "usage": {"prompt_tokens": 600, "completion_tokens": 300, "total_tokens": 900},
                            },
                        },
                        "error": None,
                    }
                )
                for index, item in enumerate(sent)
            ]
        )
        sent = sent[: int(len(sent) * failed_share)] if number == 1 else []
    return per_pass


def raw_limit(body: bytes, results: list[list[bytes]]) -> float:
    """CPU seconds for the least any implementation must do with these bytes: parse the submission, serialise
    every request line of every pass, parse every result line and its JSON content, insert it all into SQLite
    in one transaction. The best of five runs, with the garbage collector off (this process holds the whole
    workload, which would make every collection slow)."""
    gc.collect()
    gc.disable()
    try:
        return min(raw_once(body, results) for _ in range(5))
    finally:
        gc.enable()


def raw_once(body: bytes, results: list[list[bytes]], database: str = ":memory:", pragmas: Sequence[str] = ()) -> float:
    """The raw limit's work once, into `database` (a new SQLite file, or memory) set up with `pragmas`."""
    started = time.process_time()
    submission = orjson.loads(body)
    items = submission["items"]
    params = submission["params"]
    connection = sqlite3.connect(database)
    for pragma in pragmas:
        connection.execute(f"PRAGMA {pragma}")
    connection.execute("CREATE TABLE items (custom_id TEXT, body TEXT, metadata TEXT)")
    connection.execute("CREATE TABLE results (custom_id TEXT, pass INTEGER, output TEXT, tokens INTEGER)")
    rows = [(item["custom_id"], orjson.dumps(item["body"]), orjson.dumps(item["metadata"])) for item in items]
    stored = []
    for number, lines in enumerate(results, start=1):
        for item in items[: len(lines)]:
            request = {**params, **item["body"], "model": "openai/gpt-oss-20b"}
            orjson.dumps(
                {"custom_id": item["custom_id"], "method": "POST", "url": "/v1/chat/completions", "body": request}
            )
        for line in lines:
            parsed = orjson.loads(line)
            body_of = parsed["response"]["body"]
            content = orjson.loads(body_of["choices"][0]["message"]["content"])
            stored.append((parsed["custom_id"], number, orjson.dumps(content), body_of["usage"]["completion_tokens"]))
    with connection:
        connection.executemany("INSERT INTO items VALUES (?, ?, ?)", rows)
        connection.executemany("INSERT INTO results VALUES (?, ?, ?, ?)", stored)
    connection.close()
    return time.process_time() - started


async def fresh_postgres(admin_dsn: str) -> tuple[str, str]:
    name = f"llm_batch_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return f"{admin_dsn.rsplit('/', 1)[0]}/{name}", name


async def drop_postgres(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def backend_cpu(admin_dsn: str, name: str | None) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving database `name`, read from /proc (a server on this
    machine; a remote one gives nothing)."""
    if name is None:
        return {}
    admin = await asyncpg.connect(admin_dsn)
    try:
        pids = [row["pid"] for row in await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)]
    finally:
        await admin.close()
    found = {}
    for pid in pids:
        try:
            found[pid] = proc_stat(pid).cpu
        except OSError:  # the backend ended meanwhile, or the server is not ours to read
            continue
    return found
