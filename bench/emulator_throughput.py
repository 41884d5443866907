"""Throughput of the Groq emulator through the real SDK (a script, not a test).

    .venv/bin/python bench/emulator_throughput.py [--lines 50000] [--format json_schema|json_object|text]

Starts the emulator with uvicorn on 127.0.0.1 (random port) and a fast clock, then measures with the
sync ``groq`` SDK: upload of an N-line JSONL file, batch creation (which validates every line), time
until the batch is ``completed`` (simulating every request happens on the polls), and the download of
the output and error files.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from groq import Groq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from groq_emulator import EmulatorConfig, create_emulator_app

PR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "risk_level", "categories", "files_of_concern", "score", "note"],
    "properties": {
        "summary": {"type": "string"},
        "risk_level": {"type": "string", "enum": ["low", "medium", "high"]},
        "categories": {"type": "array", "items": {"enum": ["bugfix", "feature", "refactor", "docs"]}},
        "files_of_concern": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["path", "reason"],
                "properties": {"path": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
        "note": {"type": ["string", "null"]},
    },
}
DIFF = (
    "diff --git a/service/cache.py b/service/cache.py\n"
    "-    return self.store.get(key)\n+    value = self.store.get(key)\n+    if value is None:\n"
    "+        metrics.increment('cache.miss')\n+    return value\n"
) * 4


def make_input(lines: int, fmt: str, model: str) -> bytes:
    out = bytearray()
    for i in range(lines):
        body: dict[str, Any] = {
            "model": model,
            "messages": [
                {"role": "system", "content": "You review pull requests for risk."},
                {"role": "user", "content": f"PR #{i}: tighten cache metrics.\n{DIFF}"},
            ],
            "max_completion_tokens": 2048,
            "temperature": 0,
        }
        if fmt == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "pr", "strict": False, "schema": PR_SCHEMA},
            }
        elif fmt == "json_object":
            body["response_format"] = {"type": "json_object"}
            body["messages"][0]["content"] += (
                " Respond with only a JSON object that validates against this JSON Schema:\n" + json.dumps(PR_SCHEMA)
            )
        line = {"custom_id": f"pr-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        out += orjson.dumps(line) + b"\n"
    return bytes(out)


def start_server(config: EmulatorConfig) -> tuple[uvicorn.Server, threading.Thread, str]:
    server = uvicorn.Server(
        uvicorn.Config(create_emulator_app(config), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--format", choices=["json_schema", "json_object", "text"], default="json_schema")
    parser.add_argument("--model", default="openai/gpt-oss-20b")
    parser.add_argument("--time-scale", type=float, default=0.001, help="real s per emulated s")
    args = parser.parse_args()

    config = EmulatorConfig(time_scale=args.time_scale)
    server, thread, base_url = start_server(config)
    client = Groq(base_url=base_url, api_key="bench", timeout=600, max_retries=0)
    try:
        started = time.perf_counter()
        data = make_input(args.lines, args.format, args.model)
        generate_s = time.perf_counter() - started

        started = time.perf_counter()
        uploaded = client.files.create(file=("bench.jsonl", data), purpose="batch")
        upload_s = time.perf_counter() - started

        started = time.perf_counter()
        batch: Any = client.batches.create(
            input_file_id=uploaded.id or "", endpoint="/v1/chat/completions", completion_window="24h"
        )
        create_s = time.perf_counter() - started

        started = time.perf_counter()
        polls = 0
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            time.sleep(0.01)
            batch = client.batches.retrieve(batch.id)
            polls += 1
        complete_s = time.perf_counter() - started
        emulated_s = config.validating_seconds + config.processing_seconds + config.finalizing_seconds

        started = time.perf_counter()
        output = client.files.content(batch.output_file_id or "").read() if batch.output_file_id else b""
        errors = client.files.content(batch.error_file_id or "").read() if batch.error_file_id else b""
        download_s = time.perf_counter() - started
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=10)

    counts = batch.request_counts
    mib = 1024 * 1024
    print(f"lines                {args.lines:,} ({args.format}, {args.model})")
    print(f"status               {batch.status}  counts={counts.model_dump() if counts else None}")
    print(f"generate input       {generate_s:8.2f} s (client side, not the emulator)")
    print(f"upload               {upload_s:8.2f} s  {len(data) / mib:7.1f} MiB input")
    print(f"create batch         {create_s:8.2f} s  (validates every line)")
    print(
        f"until completed      {complete_s:8.2f} s  ({polls} polls; schedule {emulated_s:g} emulated s "
        f"= {emulated_s * args.time_scale:.3f} real s)"
    )
    sizes = f"{len(output) / mib:7.1f} MiB output, {len(errors) / mib:.1f} MiB errors"
    print(f"download out+err     {download_s:8.2f} s  {sizes}")
    total = upload_s + create_s + complete_s + download_s
    print(f"end to end           {total:8.2f} s  {args.lines / total:,.0f} lines/s")
    print(f"simulation           {args.lines / complete_s:,.0f} lines/s (create -> completed)")


if __name__ == "__main__":
    main()
