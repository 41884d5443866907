"""The SDK quickstart flow end to end, over real HTTP (sync Groq) and in process (AsyncGroq)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest
from groq import AuthenticationError, BadRequestError, Groq, NotFoundError

from tests.groq_emulator.conftest import AsgiEmulator, LiveEmulator
from tests.groq_emulator.helpers import CHAT_URL, chat_line, read_lines, to_jsonl

ULID = "[0-9a-hjkmnp-tv-z]{26}"
DOCS_BATCH_KEYS = {
    "id", "object", "endpoint", "errors", "input_file_id", "completion_window", "status", "output_file_id",
    "error_file_id", "finalizing_at", "failed_at", "expired_at", "cancelled_at", "request_counts", "metadata",
    "created_at", "expires_at", "cancelling_at", "completed_at", "in_progress_at",
}  # fmt: skip


def test_quickstart_over_http(live_emulator: LiveEmulator) -> None:
    client, clock = live_emulator.client, live_emulator.clock
    lines = [chat_line(f"req-{i}", response_format={"type": "json_object"}) for i in range(40)]
    uploaded = client.files.create(file=("batch_file.jsonl", to_jsonl(lines)), purpose="batch")
    assert uploaded.id and re.fullmatch(f"file_{ULID}", uploaded.id)
    assert (uploaded.object, uploaded.purpose, uploaded.filename) == ("file", "batch", "batch_file.jsonl")
    assert uploaded.bytes == len(to_jsonl(lines))

    batch: Any = client.batches.create(
        input_file_id=uploaded.id, endpoint=CHAT_URL, completion_window="24h", metadata={"chunk": "7"}
    )
    assert re.fullmatch(f"batch_{ULID}", batch.id)
    assert batch.status == "validating" and batch.metadata == {"chunk": "7"}
    assert batch.expires_at == batch.created_at + 86400
    seen = []
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        clock.advance(3)
        batch = client.batches.retrieve(batch.id)
        seen.append(batch.status)
    assert batch.status == "completed"
    assert {"in_progress", "finalizing"} <= set(seen)
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    assert batch.request_counts is not None and batch.request_counts.total == 40

    output = client.files.content(batch.output_file_id or "")
    assert output.headers["content-type"] == "application/octet-stream"
    ok = [orjson.loads(x) for x in output.text().splitlines()]
    errors = []
    if batch.error_file_id:
        errors = [orjson.loads(x) for x in client.files.content(batch.error_file_id).read().splitlines()]
    ids = Counter(line["custom_id"] for line in ok + errors)
    assert ids == Counter(f"req-{i}" for i in range(40))
    assert len(ok) == batch.request_counts.completed and len(errors) == batch.request_counts.failed
    info = client.files.info(batch.output_file_id or "")
    assert info.purpose == "batch_output"


def test_batch_object_has_every_key(live_emulator: LiveEmulator) -> None:
    client = live_emulator.client
    uploaded = client.files.create(file=("in.jsonl", to_jsonl([chat_line("a")])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id or "", endpoint=CHAT_URL, completion_window="24h")
    raw = httpx.get(
        f"{live_emulator.base_url}/openai/v1/batches/{batch.id}", headers={"Authorization": "Bearer x"}
    ).json()
    assert set(raw) == DOCS_BATCH_KEYS
    assert raw["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert raw["metadata"] is None and raw["errors"] is None and raw["output_file_id"] is None


async def test_quickstart_in_process(asgi_emulator: AsgiEmulator) -> None:
    client, clock = asgi_emulator.client, asgi_emulator.clock
    lines = [chat_line(f"c{i}", model="openai/gpt-oss-120b") for i in range(25)]
    uploaded = await client.files.create(file=("x.jsonl", to_jsonl(lines)), purpose="batch")
    batch: Any = await client.batches.create(input_file_id=uploaded.id or "", endpoint=CHAT_URL, completion_window="7d")
    assert batch.expires_at == batch.created_at + 7 * 86400
    clock.advance(2 + 10 + 2)
    batch = await client.batches.retrieve(batch.id)
    assert batch.status == "completed"
    out = await read_lines(client, batch.output_file_id)
    err = await read_lines(client, batch.error_file_id)
    assert sorted(x["custom_id"] for x in out + err) == sorted(f"c{i}" for i in range(25))
    first = out[0]
    assert re.fullmatch(f"batch_req_out_{ULID}", first["id"]) and first["error"] is None
    response = first["response"]
    assert response["status_code"] == 200 and re.fullmatch(f"req_{ULID}", response["request_id"])
    body = response["body"]
    assert body["x_groq"]["id"] == response["request_id"]
    uuid4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    assert re.fullmatch(f"chatcmpl-{uuid4}", body["id"])
    assert body["object"] == "chat.completion" and body["model"] == "openai/gpt-oss-120b"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    for key in ("queue_time", "prompt_time", "completion_time", "total_time"):
        assert isinstance(usage[key], float)
    assert body["system_fingerprint"].startswith("fp_")


async def test_files_list_info_delete(asgi_emulator: AsgiEmulator) -> None:
    client = asgi_emulator.client
    uploaded = await client.files.create(file=("a.jsonl", to_jsonl([chat_line("a")])), purpose="batch")
    assert uploaded.id is not None
    listed = await client.files.list()
    assert [f.id for f in listed.data] == [uploaded.id]
    assert (await client.files.info(uploaded.id)).bytes == uploaded.bytes
    content = await client.files.content(uploaded.id)
    assert await content.read() == to_jsonl([chat_line("a")])
    deleted = await client.files.delete(uploaded.id)
    assert deleted.deleted is True and deleted.id == uploaded.id
    with pytest.raises(NotFoundError):
        await client.files.info(uploaded.id)
    with pytest.raises(NotFoundError):
        await client.batches.create(input_file_id=uploaded.id, endpoint=CHAT_URL, completion_window="24h")


async def test_upload_rejects_non_jsonl_and_bad_purpose(asgi_emulator: AsgiEmulator) -> None:
    client = asgi_emulator.client
    with pytest.raises(BadRequestError) as info:
        await client.files.create(file=b'{"a":1}\n', purpose="batch")  # SDK names bare bytes "upload"
    body = info.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"
    assert "jsonl" in body["error"]["message"]
    with pytest.raises(BadRequestError):
        await client.files.create(file=("in.txt", b"{}\n"), purpose="batch")
    with pytest.raises(BadRequestError):
        await client.files.create(file=("in.jsonl", b"{}\n"), purpose="fine-tune")  # type: ignore[arg-type]


def test_missing_or_empty_key_is_401(live_emulator: LiveEmulator) -> None:
    url = f"{live_emulator.base_url}/openai/v1/batches"
    error = {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}
    expected = {"error": error}
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401 and response.json() == expected
    headers = {"Authorization": "Basic abc"}
    bad = Groq(base_url=live_emulator.base_url, api_key="x", max_retries=0, default_headers=headers)
    with bad, pytest.raises(AuthenticationError):
        bad.batches.list()
