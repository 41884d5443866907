"""The SDK's Message Batches and Models calls against the emulator: wire shapes, lifecycle, custom_id rules."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from anthropic import (
    AnthropicError,
    AsyncAnthropic,
    AuthenticationError,
    BadRequestError,
    ContentTooLargeError,
    NotFoundError,
)

from anthropic_emulator import Emulator, create_emulator_app
from tests.anthropic_emulator.conftest import AsgiAnthropic
from tests.anthropic_emulator.helpers import asgi_client, manual_config, request, results

BATCH_KEYS = {
    "id", "type", "processing_status", "request_counts", "ended_at", "created_at", "expires_at", "archived_at",
    "cancel_initiated_at", "results_url",
}  # fmt: skip
RFC3339_MICROS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


async def test_a_batch_from_create_to_results(anthropic_emulator: AsgiAnthropic) -> None:
    client, clock = anthropic_emulator.client, anthropic_emulator.clock
    batch = await client.messages.batches.create(requests=[request(f"req-{i}") for i in range(6)])  # type: ignore[list-item]
    assert re.fullmatch(r"msgbatch_01[1-9A-HJ-NP-Za-km-z]{22}", batch.id)
    assert batch.processing_status == "in_progress" and batch.results_url is None and batch.ended_at is None
    assert batch.expires_at - batch.created_at == timedelta(hours=24) and batch.archived_at is None
    assert batch.request_counts.processing == 6 and batch.request_counts.succeeded == 0
    with pytest.raises(AnthropicError, match="No `results_url`"):
        await client.messages.batches.results(batch.id)
    clock.advance(45)  # 4 of 6 have run: counts still say processing
    mid = await client.messages.batches.retrieve(batch.id)
    assert mid.processing_status == "in_progress" and mid.request_counts.processing == 6
    clock.advance(15)
    done = await client.messages.batches.retrieve(batch.id)
    assert done.processing_status == "ended" and done.ended_at == done.created_at + timedelta(seconds=60)
    assert done.request_counts.succeeded == 6 and done.request_counts.processing == 0
    assert done.results_url == f"http://emulator/v1/messages/batches/{batch.id}/results"
    found = await results(client, batch.id)
    assert sorted(found) == [f"req-{i}" for i in range(6)]
    message = found["req-0"].message
    assert message.type == "message" and message.role == "assistant" and message.model == "claude-haiku-4-5-20251001"
    assert message.stop_reason == "end_turn" and message.stop_details is None and message.content[0].type == "text"
    assert re.fullmatch(r"msg_01\w{22}", message.id)
    usage = message.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0 and usage.service_tier == "batch"
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)


async def test_raw_wire_shapes(anthropic_emulator: AsgiAnthropic) -> None:
    """The app serves httpx's own ASGI transport too (what the service's other providers use)."""
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    transport = httpx.ASGITransport(app=anthropic_emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://e", headers=headers) as raw:
        created = await raw.post("/v1/messages/batches", json={"requests": [request("a")]})
        assert created.status_code == 200 and set(created.json()) == BATCH_KEYS
        assert re.fullmatch(r"req_01\w{22}", created.headers["request-id"])
        assert re.fullmatch(RFC3339_MICROS, created.json()["created_at"])
        anthropic_emulator.clock.advance(60)
        results_url = (await raw.get(f"/v1/messages/batches/{created.json()['id']}")).json()["results_url"]
        lines = (await raw.get(results_url)).text.splitlines()
        assert len(lines) == 1 and '"custom_id":"a"' in lines[0]
        missing = await raw.get("/v1/messages/batches/msgbatch_nope")
        assert missing.status_code == 404
        assert missing.json()["type"] == "error" and missing.json()["error"]["type"] == "not_found_error"
        assert missing.json()["request_id"] == missing.headers["request-id"]


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "x-api-key header is required"),
        ({"x-api-key": "k"}, 400, "anthropic-version: header is required"),
        ({"x-api-key": "k", "anthropic-version": "2020-01-01"}, 400, "anthropic-version: invalid version '2020-01-01'"),
        ({"authorization": "Bearer k", "anthropic-version": "2026-10-21"}, 200, None),
        ({"x-api-key": "k", "anthropic-version": "2023-06-01"}, 200, None),
    ],
)
async def test_keys_and_versions(
    anthropic_emulator: AsgiAnthropic, headers: dict[str, str], status: int, message: str | None
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=anthropic_emulator.app), base_url="http://e") as raw:
        response = await raw.get("/v1/messages/batches", headers=headers)
    assert response.status_code == status
    if message is not None:
        assert response.json()["error"]["message"] == message


async def test_a_configured_key_is_checked() -> None:
    app = create_emulator_app(manual_config(api_key="sk-ant-right"))
    async with asgi_client(app, max_retries=0) as wrong:
        with pytest.raises(AuthenticationError):
            await wrong.messages.batches.list()
    async with asgi_client(app) as right:
        assert (await right.with_options(api_key="sk-ant-right").messages.batches.list()).data == []


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([request("x" * 65)], "requests.0.custom_id: String should have at most 64 characters"),
        ([request("ok"), request("a b")], "requests.1.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"),
        ([request("")], "requests.0.custom_id: String should have at least 1 character"),
        ([request("a"), request("b"), request("a")], "requests.2.custom_id: Duplicate custom_id 'a'"),
        ([{"custom_id": "a"}], "requests.0.params: Field required"),
        ([], "requests: List should have at least 1 item after validation, not 0"),
    ],
)  # fmt: skip
async def test_custom_id_rules_are_a_synchronous_400(
    anthropic_emulator: AsgiAnthropic, requests: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(BadRequestError) as refused:
        await anthropic_emulator.client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["error"] == {
        "type": "invalid_request_error",
        "message": refused.value.body["error"]["message"],
    }
    assert refused.value.body["error"]["message"].startswith(message)
    assert anthropic_emulator.emulator.batch_records == {}


async def test_size_limits_are_413() -> None:
    emulator = Emulator(manual_config(max_requests=3, max_bytes=2_000))
    async with asgi_client(create_emulator_app(emulator=emulator), max_retries=0) as client:
        with pytest.raises(ContentTooLargeError) as many:
            await client.messages.batches.create(requests=[request(f"r{i}") for i in range(4)])  # type: ignore[misc]
        assert isinstance(many.value.body, dict) and many.value.body["error"]["type"] == "request_too_large"
        with pytest.raises(ContentTooLargeError, match="maximum allowed number of bytes"):
            await client.messages.batches.create(requests=[request("r", content="x" * 3_000)])  # type: ignore[list-item]


async def test_list_pages_newest_first(anthropic_emulator: AsgiAnthropic) -> None:
    client, clock = anthropic_emulator.client, anthropic_emulator.clock
    ids = []
    for i in range(5):
        ids.append((await client.messages.batches.create(requests=[request(f"r{i}")])).id)  # type: ignore[list-item]
        clock.advance(1)
    page = await client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == [ids[4], ids[3]] and page.has_more is True
    assert (page.first_id, page.last_id) == (ids[4], ids[3])
    assert [b.id async for b in client.messages.batches.list(limit=2)] == list(reversed(ids))
    older = await client.messages.batches.list(after_id=ids[2], limit=5)
    assert [b.id for b in older.data] == [ids[1], ids[0]] and older.has_more is False
    newer = await client.messages.batches.list(before_id=ids[1], limit=2)
    assert [b.id for b in newer.data] == [ids[3], ids[2]] and newer.has_more is True


async def test_cancel_then_delete(anthropic_emulator: AsgiAnthropic) -> None:
    client, clock = anthropic_emulator.client, anthropic_emulator.clock
    batch = await client.messages.batches.create(requests=[request(f"r{i}") for i in range(10)])  # type: ignore[misc]
    clock.advance(30)
    with pytest.raises(BadRequestError, match="cannot be deleted while it is in progress"):
        await client.messages.batches.delete(batch.id)
    canceling = await client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    assert canceling.request_counts.processing == 10
    clock.advance(30)
    ended = await client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.ended_at == ended.cancel_initiated_at + timedelta(seconds=30)
    counts = ended.request_counts
    assert (counts.succeeded, counts.canceled, counts.processing) == (5, 5, 0)
    found = await results(client, batch.id)
    assert sorted(k for k, v in found.items() if v.type == "canceled") == [f"r{i}" for i in range(5, 10)]
    with pytest.raises(BadRequestError, match="already ended"):
        await client.messages.batches.cancel(batch.id)
    deleted = await client.messages.batches.delete(batch.id)
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(NotFoundError):
        await client.messages.batches.retrieve(batch.id)
    assert [b.id async for b in client.messages.batches.list()] == []


async def test_expiry_and_archive() -> None:
    emulator = Emulator(manual_config(processing_seconds=2 * 86_400))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        batch = await client.messages.batches.create(requests=[request(f"r{i}") for i in range(4)])  # type: ignore[misc]
        assert hasattr(emulator.clock, "advance")
        emulator.clock.advance(86_400)
        ended = await client.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended" and ended.ended_at == ended.expires_at
        assert (ended.request_counts.succeeded, ended.request_counts.expired) == (2, 2)
        assert {r.type for r in (await results(client, batch.id)).values()} == {"succeeded", "expired"}
        emulator.clock.advance(28 * 86_400)
        archived = await client.messages.batches.retrieve(batch.id)
        assert archived.archived_at == archived.created_at + timedelta(days=29)
        with pytest.raises(NotFoundError):
            await client.messages.batches.results(batch.id)


async def test_models_list_and_retrieve(anthropic_emulator: AsgiAnthropic) -> None:
    client = anthropic_emulator.client
    listed = (await client.models.list()).data
    assert [m.id for m in listed] == ["claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929"]
    haiku = listed[0]
    assert haiku.display_name == "Claude Haiku 4.5" and haiku.lifecycle == "active" and haiku.max_tokens == 64_000
    assert haiku.capabilities is not None and haiku.capabilities.structured_outputs.supported is True
    page = await client.models.list(limit=1)
    assert page.has_more is True and [m.id async for m in client.models.list(limit=1)] == [m.id for m in listed]
    retired = (await client.models.list(lifecycle=["retired"])).data
    assert [m.id for m in retired] == ["claude-3-5-haiku-20241022"] and retired[0].lifecycle == "retired"
    assert (await client.models.retrieve("claude-sonnet-4-5")).id == "claude-sonnet-4-5-20250929"
    with pytest.raises(NotFoundError):
        await client.models.retrieve("claude-nope")


async def test_over_a_socket_the_sdk_sends_bearer_and_the_new_version(live_anthropic: Any) -> None:
    live_anthropic.app.state.emulator = Emulator(manual_config())
    async with AsyncAnthropic(base_url=live_anthropic.base_url, api_key="k") as client:
        batch = await client.messages.batches.create(requests=[request("a")])  # type: ignore[list-item]
        assert batch.processing_status == "in_progress"
        headers = live_anthropic.app.state.emulator.request_headers[0]
        assert headers["anthropic-version"] == "2026-10-21" and headers["authorization"] == "Bearer k"
