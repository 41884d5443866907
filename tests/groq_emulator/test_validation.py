"""Upload limits and input-line validation (a bad line fails the whole batch)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from groq import BadRequestError

from groq_emulator import Emulator, create_emulator_app
from tests.groq_emulator.conftest import AsgiEmulator
from tests.groq_emulator.helpers import asgi_client, chat_line, manual_config, run_batch


def _error_of(exc: BadRequestError) -> dict[str, Any]:
    assert isinstance(exc.body, dict)
    error: dict[str, Any] = exc.body["error"]
    return error


def _line(cid: str, **changes: Any) -> bytes:
    line = chat_line(cid, model="openai/gpt-oss-120b")
    line.update(changes)
    return orjson.dumps(line)


BAD_LINES = [
    (b'{"custom_id": "x", "method": "POST",', "invalid_json_line", None),
    (_line("a"), "duplicate_custom_id", "custom_id"),  # "a" is also on line 1
    (_line("m", method="GET"), "invalid_method", "method"),
    (_line("u", url="/v1/embeddings"), "invalid_url", "url"),
    (_line("b", body={"messages": [{"role": "user", "content": "hi"}]}), "missing_model", "body.model"),
    (b'["not", "an", "object"]', "invalid_json_line", None),
    (_line("x", custom_id=7), "invalid_custom_id", "custom_id"),
]


@pytest.mark.parametrize(("bad", "code", "param"), BAD_LINES)
async def test_each_bad_line_fails_the_batch(
    asgi_emulator: AsgiEmulator, bad: bytes, code: str, param: str | None
) -> None:
    data = _line("a") + b"\n" + bad + b"\n" + _line("c") + b"\n"
    batch = await run_batch(asgi_emulator.client, asgi_emulator.emulator, data)
    assert batch.status == "failed" and batch.failed_at == batch.created_at + 2
    assert batch.in_progress_at is None and batch.output_file_id is None
    assert batch.errors.object == "list"
    [error] = batch.errors.data
    assert (error.code, error.param, error.line) == (code, param, 2)
    assert error.message
    assert batch.request_counts.total == 0


async def test_all_errors_are_reported_with_line_numbers(asgi_emulator: AsgiEmulator) -> None:
    data = b"\n".join([_line("a"), *(bad for bad, _, _ in BAD_LINES)]) + b"\n"
    batch = await run_batch(asgi_emulator.client, asgi_emulator.emulator, data)
    found = [(e.code, e.line) for e in batch.errors.data]
    assert found == [(code, number) for number, (_, code, _) in enumerate(BAD_LINES, start=2)]


@pytest.mark.parametrize("data", [b"", b"\n\n  \n"])
async def test_empty_file(asgi_emulator: AsgiEmulator, data: bytes) -> None:
    batch = await run_batch(asgi_emulator.client, asgi_emulator.emulator, data)
    assert batch.status == "failed"
    assert [(e.code, e.line) for e in batch.errors.data] == [("empty_file", None)]


async def test_blank_lines_are_skipped_but_counted(asgi_emulator: AsgiEmulator) -> None:
    data = _line("a") + b"\n\n" + _line("b", method="PUT") + b"\n"
    batch = await run_batch(asgi_emulator.client, asgi_emulator.emulator, data)
    assert [(e.code, e.line) for e in batch.errors.data] == [("invalid_method", 3)]


async def test_line_limit(asgi_emulator: AsgiEmulator) -> None:
    client = asgi_emulator.client
    line = b'{"custom_id":"r","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}\n'
    started = time.monotonic()
    accepted = await client.files.create(file=("big.jsonl", line * 50_000), purpose="batch")
    assert time.monotonic() - started < 5
    assert accepted.bytes == len(line) * 50_000
    with pytest.raises(BadRequestError) as info:
        await client.files.create(file=("big.jsonl", line * 50_001), purpose="batch")
    assert _error_of(info.value)["code"] == "too_many_lines"
    without_final_newline = (line * 50_001).rstrip(b"\n")
    with pytest.raises(BadRequestError):
        await client.files.create(file=("big.jsonl", without_final_newline), purpose="batch")
    assert len(asgi_emulator.emulator.files) == 1


async def test_byte_limit() -> None:
    emulator = Emulator(manual_config(max_bytes=1000))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        await client.files.create(file=("ok.jsonl", b"x" * 1000), purpose="batch")
        with pytest.raises(BadRequestError) as info:
            await client.files.create(file=("big.jsonl", b"x" * 1001), purpose="batch")
        assert _error_of(info.value)["code"] == "file_too_large"
        with pytest.raises(BadRequestError):  # refused from Content-Length before parsing
            await client.files.create(file=("big.jsonl", b"x" * 200_000), purpose="batch")
