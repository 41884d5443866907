"""The SDK's Files, Batches and Models calls end to end against the emulator, in process."""

from __future__ import annotations

import re
from typing import Any

import httpx
import httpx2
import pytest
from openai import AsyncOpenAI, AuthenticationError, BadRequestError, NotFoundError

from openai_emulator import Emulator, ModelSpec, create_emulator_app, default_models
from tests.openai_emulator.conftest import AsgiOpenAI
from tests.openai_emulator.helpers import (
    CHAT,
    RESPONSES,
    asgi_client,
    body,
    chat_line,
    create,
    manual_config,
    read_lines,
    responses_line,
    results,
    run_batch,
    to_jsonl,
)

BATCH_KEYS = {
    "id", "object", "endpoint", "model", "errors", "input_file_id", "completion_window", "status", "output_file_id",
    "error_file_id", "created_at", "in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at",
    "expired_at", "cancelling_at", "cancelled_at", "request_counts", "usage", "metadata",
}  # fmt: skip
DAY = 86_400


async def test_quickstart_walks_every_status_and_writes_the_output(openai_emulator: AsgiOpenAI) -> None:
    client, clock = openai_emulator.client, openai_emulator.clock
    data = to_jsonl(chat_line(f"req-{i}", max_completion_tokens=4000) for i in range(20))
    uploaded = await client.files.create(file=("batch.jsonl", data), purpose="batch")
    assert re.fullmatch(r"file-[A-Za-z0-9]{22}", uploaded.id)
    assert (uploaded.purpose, uploaded.status, uploaded.bytes) == ("batch", "processed", len(data))
    assert uploaded.expires_at == uploaded.created_at + 30 * DAY

    batch = await client.batches.create(
        input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h", metadata={"chunk": "b1/pass-1/chunk-0"}
    )
    assert re.fullmatch(r"batch_[0-9a-f]{32}", batch.id) and batch.id[6:14] == f"{batch.created_at:08x}"
    assert batch.status == "validating" and batch.model is None and batch.metadata == {"chunk": "b1/pass-1/chunk-0"}
    assert batch.request_counts is not None and batch.request_counts.total == 0
    assert batch.expires_at == batch.created_at + DAY
    seen = []
    while batch.status != "completed":
        clock.advance(5)
        batch = await client.batches.retrieve(batch.id)
        seen.append(batch.status)
    assert seen.index("in_progress") < seen.index("finalizing") < seen.index("completed")
    assert batch.model == "gpt-5-mini-2025-08-07"
    assert batch.request_counts is not None and batch.request_counts.completed == 20
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at and batch.error_file_id is None

    out = await read_lines(client, batch.output_file_id)
    assert sorted(line["custom_id"] for line in out) == sorted(f"req-{i}" for i in range(20))
    first = out[0]
    assert re.fullmatch(r"batch_req_[0-9a-f]{32}", first["id"]) and first["error"] is None
    assert re.fullmatch(r"[0-9a-f-]{36}", first["response"]["request_id"]) and first["response"]["status_code"] == 200
    completion = body(first)
    assert completion["object"] == "chat.completion" and completion["model"] == "gpt-5-mini-2025-08-07"
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["choices"][0]["message"]["refusal"] is None
    usage = completion["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] > 0
    assert usage["completion_tokens"] > usage["completion_tokens_details"]["reasoning_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    assert batch.usage is not None
    assert batch.usage.input_tokens == sum(body(line)["usage"]["prompt_tokens"] for line in out)
    assert batch.usage.output_tokens == sum(body(line)["usage"]["completion_tokens"] for line in out)
    reasoning = sum(body(line)["usage"]["completion_tokens_details"]["reasoning_tokens"] for line in out)
    assert batch.usage.output_tokens_details.reasoning_tokens == reasoning
    info = await client.files.retrieve(batch.output_file_id or "")
    assert info.purpose == "batch_output" and info.filename == f"{batch.id}_output.jsonl"
    assert info.expires_at == batch.completed_at + 30 * DAY


async def test_batch_object_has_every_key(openai_emulator: AsgiOpenAI) -> None:
    batch = await create(openai_emulator.client, to_jsonl([chat_line("a")]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=openai_emulator.app), base_url="http://e") as raw:
        response = await raw.get(f"/v1/batches/{batch.id}", headers={"Authorization": "Bearer k"})
    assert set(response.json()) == BATCH_KEYS
    assert response.headers["x-request-id"].startswith("req_")
    assert response.json()["usage"]["input_tokens_details"] == {"cached_tokens": 0}


async def test_responses_endpoint_and_the_model_that_fails_chat_in_batch(openai_emulator: AsgiOpenAI) -> None:
    client, emulator = openai_emulator.client, openai_emulator.emulator
    done = await run_batch(client, emulator, to_jsonl(responses_line(f"r{i}") for i in range(4)), RESPONSES)
    assert done.status == "completed" and done.request_counts.completed == 4
    response = body((await read_lines(client, done.output_file_id))[0])
    assert response["object"] == "response" and response["status"] == "completed"
    assert response["model"] == "gpt-5.4-mini-2026-03-17" and response["incomplete_details"] is None
    message = response["output"][-1]
    assert message["type"] == "message" and message["content"][0]["type"] == "output_text"
    assert set(response["usage"]["input_tokens_details"]) == {"cached_tokens", "cache_write_tokens"}

    failed = await run_batch(client, emulator, to_jsonl(chat_line(f"c{i}", model="gpt-5.4-mini") for i in range(3)))
    assert failed.status == "completed" and failed.output_file_id is None
    assert failed.request_counts.completed == 0 and failed.request_counts.failed == 3
    line = (await read_lines(client, failed.error_file_id))[0]
    assert line["error"] is None and line["response"]["status_code"] == 404
    assert line["response"]["body"]["error"] == {
        "message": "The model `gpt-5.4-mini-2026-03-17-batch` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }


async def test_the_chat_failure_is_a_flag() -> None:
    models = default_models()
    models["gpt-5.4-mini"] = ModelSpec(**{**vars(models["gpt-5.4-mini"]), "chat_completions_in_batch": True})
    emulator = Emulator(manual_config(models=models))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        done = await run_batch(client, emulator, to_jsonl([chat_line("c", model="gpt-5.4-mini")]))
        assert done.request_counts.completed == 1 and done.error_file_id is None


async def test_files_list_pages_filters_and_deletes(openai_emulator: AsgiOpenAI) -> None:
    client, clock = openai_emulator.client, openai_emulator.clock
    ids = []
    for i in range(5):
        purpose: Any = "batch" if i % 2 == 0 else "user_data"
        ids.append((await client.files.create(file=(f"f{i}.jsonl", b"{}\n"), purpose=purpose)).id)
        clock.advance(1)
    page = await client.files.list(limit=2)
    assert [f.id for f in page.data] == [ids[4], ids[3]] and page.has_more is True
    every = [f.id async for f in client.files.list(limit=2)]
    assert every == list(reversed(ids))
    ascending = await client.files.list(order="asc", purpose="batch")
    assert [f.id for f in ascending.data] == [ids[0], ids[2], ids[4]] and ascending.has_more is False
    content = await client.files.content(ids[0])
    assert content.content == b"{}\n"
    deleted = await client.files.delete(ids[0])
    assert deleted.deleted is True and deleted.id == ids[0]
    with pytest.raises(NotFoundError) as gone:
        await client.files.retrieve(ids[0])
    assert gone.value.body == {
        "message": f"No such File object: {ids[0]}",
        "type": "invalid_request_error",
        "param": "id",
        "code": None,
    }


async def test_uploads_that_openai_refuses() -> None:
    emulator = Emulator(manual_config(max_batch_file_bytes=100, max_file_bytes=200))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        with pytest.raises(BadRequestError, match=r"Invalid file format for Batch API\. Must be \.jsonl"):
            await client.files.create(file=("notes.txt", b"{}\n"), purpose="batch")
        with pytest.raises(BadRequestError, match="File is too large"):
            await client.files.create(file=("big.jsonl", b"x" * 101), purpose="batch")
        with pytest.raises(BadRequestError, match="File is too large"):
            await client.files.create(file=("big.txt", b"x" * 201), purpose="user_data")
        accepted = await client.files.create(file=("lines.jsonl", b"not json\n{}\n"), purpose="batch")
        assert accepted.status == "processed"  # lines are not read at upload
        kept = await client.files.create(
            file=("short.jsonl", b"{}\n"), purpose="batch", expires_after={"anchor": "created_at", "seconds": 3600}
        )
        assert kept.expires_at == kept.created_at + 3600
        with pytest.raises(BadRequestError, match="integer below minimum value"):
            await client.files.create(
                file=("x.jsonl", b"{}\n"), purpose="batch", expires_after={"anchor": "created_at", "seconds": 60}
            )
        advance_to = emulator.clock
        assert hasattr(advance_to, "advance")
        advance_to.advance(3600)
        with pytest.raises(NotFoundError):
            await client.files.content(kept.id)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"completion_window": "48h"}, "Invalid value: '48h'. Supported values are: '24h'."),
        ({"endpoint": "/v1/embeddings"}, "Invalid value: '/v1/embeddings'."),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "too many properties"),
        ({"metadata": {"k": "v" * 513}}, "string too long. Expected a string with maximum length 512"),
        ({"metadata": {"k" * 65: "v"}}, "maximum length 64"),
        ({"output_expires_after": {"anchor": "created_at", "seconds": 60}}, "Expected a value >= 3600"),
        ({"input_file_id": "file-nope"}, "Cannot find file file-nope"),
    ],
)
async def test_create_refusals(openai_emulator: AsgiOpenAI, change: dict[str, Any], message: str) -> None:
    client = openai_emulator.client
    uploaded = await client.files.create(file=("in.jsonl", to_jsonl([chat_line("a")])), purpose="batch")
    arguments: dict[str, Any] = {"input_file_id": uploaded.id, "endpoint": CHAT, "completion_window": "24h", **change}
    with pytest.raises(BadRequestError) as refused:
        await client.batches.create(**arguments)
    assert message in refused.value.message
    assert openai_emulator.emulator.batch_records == {}


async def test_a_file_of_another_purpose_is_no_batch_input(openai_emulator: AsgiOpenAI) -> None:
    client = openai_emulator.client
    other = await client.files.create(file=("in.jsonl", to_jsonl([chat_line("a")])), purpose="user_data")
    with pytest.raises(BadRequestError, match="purpose 'user_data'"):
        await client.batches.create(input_file_id=other.id, endpoint=CHAT, completion_window="24h")


async def test_batches_list_newest_first_with_cursor(openai_emulator: AsgiOpenAI) -> None:
    client, clock = openai_emulator.client, openai_emulator.clock
    ids = []
    for i in range(5):
        ids.append((await create(client, to_jsonl([chat_line(f"a{i}")]), metadata={"n": str(i)})).id)
        clock.advance(1)
    page = await client.batches.list(limit=2)
    assert [b.id for b in page.data] == [ids[4], ids[3]] and page.has_more is True
    raw: Any = page
    assert raw.first_id == ids[4] and raw.last_id == ids[3]
    assert [b.id async for b in client.batches.list(limit=2)] == list(reversed(ids))
    last = await client.batches.list(after=ids[1])
    assert [b.id for b in last.data] == [ids[0]] and last.has_more is False
    with pytest.raises(BadRequestError):
        await client.batches.list(limit=101)


async def test_models_list_what_the_account_has(openai_emulator: AsgiOpenAI) -> None:
    client, emulator = openai_emulator.client, openai_emulator.emulator
    listed = {m.id: m for m in (await client.models.list()).data}
    assert set(listed) == {"gpt-5-mini", "gpt-5-nano", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-4.1-mini", "gpt-4.1-nano"}
    assert listed["gpt-5-mini"].owned_by == "system" and listed["gpt-5-mini"].shutdown_date is None
    assert (await client.models.retrieve("gpt-4.1-mini")).created == 1_744_318_173
    with pytest.raises(NotFoundError) as retired:
        await client.models.retrieve("gpt-4.5-preview")
    assert isinstance(retired.value.body, dict) and retired.value.body["code"] == "model_not_found"
    emulator.retire("gpt-5-nano")
    assert "gpt-5-nano" not in {m.id for m in (await client.models.list()).data}


async def test_a_shutdown_date_is_listed() -> None:
    models = default_models()
    models["gpt-4.1-mini"] = ModelSpec(**{**vars(models["gpt-4.1-mini"]), "shutdown_date": "2027-04-14"})
    async with asgi_client(create_emulator_app(manual_config(models=models))) as client:
        assert (await client.models.retrieve("gpt-4.1-mini")).shutdown_date == "2027-04-14"


async def test_keys(openai_emulator: AsgiOpenAI) -> None:
    app = openai_emulator.app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as raw:
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}):
            response = await raw.get("/v1/batches", headers=headers)
            assert (
                response.status_code == 401 and "You didn't provide an API key" in response.json()["error"]["message"]
            )
    guarded = create_emulator_app(manual_config(api_key="sk-right-key"))
    async with asgi_client(guarded, max_retries=0) as wrong:
        with pytest.raises(AuthenticationError) as refused:
            await wrong.batches.list()
        assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "invalid_api_key"
    http_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=guarded))
    right = AsyncOpenAI(base_url="http://e/v1", api_key="sk-right-key", http_client=http_client)  # type: ignore[arg-type]
    async with right:
        assert (await right.batches.list()).data == []


async def test_the_sdks_own_transport_works_too(openai_emulator: AsgiOpenAI) -> None:
    """openai 3.x speaks httpx2; the emulator serves either package's ASGI transport."""
    http_client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=openai_emulator.app))
    async with AsyncOpenAI(base_url="http://e/v1", api_key="k", http_client=http_client) as client:
        done = await run_batch(client, openai_emulator.emulator, to_jsonl([chat_line("a", model="gpt-4.1-mini")]))
        assert list(await results(client, done)) == ["a"]
