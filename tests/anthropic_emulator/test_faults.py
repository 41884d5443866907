"""Injected faults as the SDK sees them, errored and corrupted results, and the /_emulator control routes."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from anthropic import Anthropic, APITimeoutError, InternalServerError, OverloadedError, RateLimitError

from anthropic_emulator import Emulator
from tests.anthropic_emulator.conftest import AsgiAnthropic, LiveAnthropic
from tests.anthropic_emulator.helpers import manual_config, request, results, run_batch
from tests.emulator_inspection import SentBatch, anthropic_batches

BATCHES = "/v1/messages/batches"


async def test_429_and_529_are_retried_after_retry_after(anthropic_emulator: AsgiAnthropic) -> None:
    emulator = anthropic_emulator.emulator
    emulator.faults.rate_limit_next = 1
    emulator.faults.overloaded_next = 1
    started = time.monotonic()
    assert (await anthropic_emulator.client.messages.batches.list()).data == []
    assert time.monotonic() - started < 1.5
    assert [status for _, _, status in emulator.request_log] == [429, 529, 200]
    assert [h["x-stainless-retry-count"] for h in emulator.request_headers] == ["0", "1", "2"]


async def test_fault_shapes_without_retries(anthropic_emulator: AsgiAnthropic) -> None:
    emulator, client = anthropic_emulator.emulator, anthropic_emulator.client.with_options(max_retries=0)
    emulator.faults.rate_limit_next = 1
    with pytest.raises(RateLimitError) as limited:
        await client.messages.batches.list()
    assert limited.value.response.headers["retry-after"] == "0.05"
    assert isinstance(limited.value.body, dict) and limited.value.body["error"]["type"] == "rate_limit_error"
    emulator.faults.overloaded_next = 1
    emulator.faults.overloaded_retry_after = 2
    with pytest.raises(OverloadedError) as overloaded:
        await client.messages.batches.list()
    assert overloaded.value.status_code == 529 and overloaded.value.response.headers["retry-after"] == "2"
    assert overloaded.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": overloaded.value.response.headers["request-id"],
    }
    emulator.faults.server_error_next = 1
    with pytest.raises(InternalServerError) as broken:
        await client.messages.batches.list()
    assert isinstance(broken.value.body, dict) and broken.value.body["error"]["type"] == "api_error"


async def test_error_rate_is_seeded_and_mixed(anthropic_emulator: AsgiAnthropic) -> None:
    anthropic_emulator.emulator.faults.error_rate = 0.6
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    transport = httpx.ASGITransport(app=anthropic_emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://e", headers=headers) as raw:
        statuses = [(await raw.get(BATCHES)).status_code for _ in range(60)]
    assert {200, 429, 529, 500} <= set(statuses)


def test_a_slow_answer_times_the_client_out(live_anthropic: LiveAnthropic) -> None:
    emulator = Emulator(manual_config())
    live_anthropic.app.state.emulator = emulator
    emulator.faults.slow_seconds = 0.5
    with Anthropic(base_url=live_anthropic.base_url, api_key="k", timeout=0.1, max_retries=0) as client:
        with pytest.raises(APITimeoutError):
            client.messages.batches.list()
        emulator.faults.slow_seconds = 0
        assert client.messages.batches.list().data == []


async def test_forced_expiry_and_errored_results(anthropic_emulator: AsgiAnthropic) -> None:
    client, emulator = anthropic_emulator.client, anthropic_emulator.emulator
    emulator.faults.expire_next_batches = 1
    emulator.faults.expire_after_fraction = 0.5
    emulator.faults.errored_results_next = 1
    emulator.faults.overloaded_results_next = 1
    batch = await run_batch(client, emulator, [request(f"r{i}") for i in range(8)])
    counts = batch.request_counts
    assert (counts.succeeded, counts.errored, counts.expired) == (2, 2, 4)
    found = await results(client, batch.id)
    kinds = sorted(r.error.error.type for r in found.values() if r.type == "errored")
    assert kinds == ["api_error", "overloaded_error"]
    assert (await run_batch(client, emulator, [request("next")])).request_counts.succeeded == 1


async def test_malformed_and_missing_result_lines(anthropic_emulator: AsgiAnthropic) -> None:
    client, emulator = anthropic_emulator.client, anthropic_emulator.emulator
    emulator.faults.malformed_result_lines = 2
    emulator.faults.missing_result_lines = 3
    batch = await run_batch(client, emulator, [request(f"r{i}") for i in range(20)])
    assert batch.request_counts.succeeded == 20
    raw = httpx.ASGITransport(app=anthropic_emulator.app)
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient(transport=raw, base_url="http://e", headers=headers) as http:
        lines = (await http.get(f"{BATCHES}/{batch.id}/results")).content.splitlines()
    broken = 0
    for line in lines:
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            broken += 1
    assert (len(lines), broken) == (17, 2)
    with pytest.raises(ValueError):  # the SDK's JSONL decoder stops at a broken line
        await results(client, batch.id)


async def test_control_routes(anthropic_emulator: AsgiAnthropic) -> None:
    emulator, client = anthropic_emulator.emulator, anthropic_emulator.client
    transport = httpx.ASGITransport(app=anthropic_emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://e") as raw:
        assert (await raw.post("/_emulator/faults", json={"overloaded_next": 2})).json()["overloaded_next"] == 2
        assert (await raw.post("/_emulator/faults", json={"server_error_status": 404})).status_code == 400
        assert (await raw.post("/_emulator/reset")).json() == {"ok": True} and emulator.faults.overloaded_next == 0
        batch = await client.messages.batches.create(requests=[request("a"), request("b")])  # type: ignore[list-item]
        assert anthropic_batches(emulator) == [SentBatch(batch.id, "in_progress", {}, ["a", "b"])]
        listed = (await raw.get("/_emulator/batches")).json()["data"]
        assert [b["processing_status"] for b in listed] == ["in_progress"]
        await raw.post("/_emulator/clock/advance", json={"seconds": 60})
        assert (await client.messages.batches.retrieve(batch.id)).processing_status == "ended"
        retired = (await raw.post("/_emulator/models/retire", json={"model": "claude-sonnet-4-5"})).json()["retired"]
        assert "claude-sonnet-4-5-20250929" in retired
        assert [m.id for m in (await client.models.list()).data] == ["claude-haiku-4-5-20251001"]
        logged = (await raw.get("/_emulator/requests")).json()["data"]
        assert [entry["path"] for entry in logged][:2] == [BATCHES, f"{BATCHES}/{batch.id}"]


async def test_a_retired_model_errors_in_later_batches(anthropic_emulator: AsgiAnthropic) -> None:
    client, emulator = anthropic_emulator.client, anthropic_emulator.emulator
    emulator.retire("claude-haiku-4-5")
    batch = await run_batch(client, emulator, [request("a")])
    result = (await results(client, batch.id))["a"]
    assert result.type == "errored" and result.error.error.type == "not_found_error"
