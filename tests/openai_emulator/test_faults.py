"""Injected faults as the SDK sees them, corrupted result files, and the /_emulator control routes."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from openai import APITimeoutError, AsyncOpenAI, InternalServerError, OpenAI, RateLimitError

from openai_emulator import Emulator
from tests.emulator_inspection import SentBatch, openai_batches
from tests.openai_emulator.conftest import AsgiOpenAI, LiveOpenAI
from tests.openai_emulator.helpers import CHAT, chat_line, manual_config, read_lines, run_batch, to_jsonl

FILES = "/v1/files"


def _lines(n: int) -> bytes:
    return to_jsonl(chat_line(f"item-{i}", model="gpt-4.1-mini") for i in range(n))


async def test_429_is_retried_after_retry_after_ms(openai_emulator: AsgiOpenAI) -> None:
    emulator = openai_emulator.emulator
    emulator.faults.rate_limit_next = 2
    emulator.faults.rate_limit_retry_after = 0.02
    started = time.monotonic()
    assert (await openai_emulator.client.files.list()).data == []
    assert time.monotonic() - started < 1.5
    assert emulator.request_log == [("GET", FILES, 429), ("GET", FILES, 429), ("GET", FILES, 200)]
    assert [h["x-stainless-retry-count"] for h in emulator.request_headers] == ["0", "1", "2"]


async def test_429_shape_and_a_retry_after_the_sdk_will_not_wait_for(openai_emulator: AsgiOpenAI) -> None:
    emulator, client = openai_emulator.emulator, openai_emulator.client
    emulator.faults.rate_limit_next = 1
    with pytest.raises(RateLimitError) as limited:
        await client.with_options(max_retries=0).batches.list()
    headers = limited.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("0.05", "50")
    assert isinstance(limited.value.body, dict)
    assert (limited.value.body["type"], limited.value.body["code"]) == ("requests", "rate_limit_exceeded")
    emulator.faults.rate_limit_next = 1
    emulator.faults.rate_limit_retry_after = 121  # over the SDK's 120 s: it gives up at once
    emulator.request_log.clear()
    with pytest.raises(RateLimitError):
        await client.batches.list()
    assert len(emulator.request_log) == 1


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retried_and_surface_without_retries(openai_emulator: AsgiOpenAI, status: int) -> None:
    emulator, client = openai_emulator.emulator, openai_emulator.client
    emulator.faults.server_error_next = 1
    emulator.faults.server_error_status = status
    uploaded = await client.files.create(file=("a.jsonl", _lines(1)), purpose="batch")
    assert uploaded.id and [s for _, _, s in emulator.request_log] == [status, 200]
    emulator.faults.server_error_next = 1
    with pytest.raises(InternalServerError) as broken:
        await client.with_options(max_retries=0).batches.list()
    assert broken.value.status_code == status
    assert isinstance(broken.value.body, dict) and broken.value.body["type"] == "server_error"


async def test_error_rate_is_seeded_and_mixed(openai_emulator: AsgiOpenAI) -> None:
    emulator = openai_emulator.emulator
    emulator.faults.error_rate = 0.5
    transport = httpx.ASGITransport(app=openai_emulator.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://e", headers={"Authorization": "Bearer k"}
    ) as raw:
        statuses = [(await raw.get(FILES)).status_code for _ in range(60)]
    assert 15 <= statuses.count(200) <= 45 and 429 in statuses and 500 in statuses


def test_a_slow_answer_times_the_client_out(live_openai: LiveOpenAI) -> None:
    emulator = Emulator(manual_config())
    live_openai.app.state.emulator = emulator
    emulator.faults.slow_seconds = 0.5
    with OpenAI(base_url=live_openai.base_url, api_key="k", timeout=0.1, max_retries=0) as client:
        with pytest.raises(APITimeoutError):
            client.batches.list()
        emulator.faults.slow_seconds = 0
        assert client.batches.list().data == []


async def test_malformed_and_missing_result_lines(openai_emulator: AsgiOpenAI) -> None:
    client, emulator = openai_emulator.client, openai_emulator.emulator
    emulator.faults.malformed_output_lines = 3
    batch = await run_batch(client, emulator, _lines(30))
    content = (await client.files.content(batch.output_file_id or "")).text.splitlines()
    broken = 0
    for line in content:
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            broken += 1
    assert broken == 3 and emulator.faults.malformed_output_lines == 0

    emulator.faults.missing_output_lines = 4
    short = await run_batch(client, emulator, _lines(30))
    found = await read_lines(client, short.output_file_id) + await read_lines(client, short.error_file_id)
    assert short.request_counts.total == 30 and len(found) == 26
    assert (await run_batch(client, emulator, _lines(5))).request_counts.completed == 5


async def test_control_routes(openai_emulator: AsgiOpenAI) -> None:
    emulator, client = openai_emulator.emulator, openai_emulator.client
    transport = httpx.ASGITransport(app=openai_emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://e") as raw:
        changed = await raw.post("/_emulator/faults", json={"rate_limit_next": 3, "missing_output_lines": 2})
        assert changed.status_code == 200 and emulator.faults.rate_limit_next == 3
        assert (await raw.post("/_emulator/faults", json={"nope": 1})).status_code == 400
        assert (await raw.post("/_emulator/faults", json={"error_rate": 2})).status_code == 400
        assert (await raw.post("/_emulator/reset")).json() == {"ok": True}
        assert emulator.faults.rate_limit_next == 0 and emulator.faults.missing_output_lines == 0
        uploaded = await client.files.create(file=("a.jsonl", _lines(2)), purpose="batch")
        batch = await client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
        assert [b["status"] for b in (await raw.get("/_emulator/batches")).json()["data"]] == ["validating"]
        assert (await raw.post("/_emulator/clock/advance", json={"seconds": 100})).status_code == 200
        assert (await client.batches.retrieve(batch.id)).status == "completed"
        assert emulator.custom_ids(batch.id) == ["item-0", "item-1"]
        assert openai_batches(emulator) == [SentBatch(batch.id, "completed", {}, ["item-0", "item-1"])]
        retired = await raw.post("/_emulator/models/retire", json={"model": "gpt-5-nano"})
        assert "gpt-5-nano" in retired.json()["retired"]
        logged = (await raw.get("/_emulator/requests")).json()["data"]
        assert [entry["path"] for entry in logged] == [FILES, "/v1/batches", f"/v1/batches/{batch.id}"]


async def test_the_async_sdk_over_a_socket(live_openai: LiveOpenAI) -> None:
    live_openai.app.state.emulator = Emulator(manual_config())
    async with AsyncOpenAI(base_url=live_openai.base_url, api_key="k") as client:
        assert (await client.models.retrieve("gpt-5-mini")).id == "gpt-5-mini"
