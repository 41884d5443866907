"""OpenAIBatchProvider against the OpenAI emulator through the real ``openai`` SDK.

Most tests run twice: in process (an ``httpx`` client over ``ASGITransport``) and over a real uvicorn on 127.0.0.1
(the SDK's own ``httpx2`` client). Timeouts, streaming and broken downloads need real sockets: loopback only.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import orjson
import pytest
from openai.types import Batch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import service.providers.openai as openai_module
from openai_emulator import Emulator, EmulatorConfig, ManualClock, create_emulator_app
from service.observability.metrics import REGISTRY
from service.pipeline.chunk_names import CHUNK_METADATA_KEY, upload_filename
from service.providers.openai import (
    OpenAIBatchProvider,
    batch_info,
    batch_metadata,
    map_sdk_error,
)
from service.providers.protocol import (
    BatchEnd,
    BatchProvider,
    ChunkRequest,
    PermanentProviderError,
    ProviderBatchInfo,
    ProviderError,
    ProviderNotFound,
    RequestCounts,
    RetryableProviderError,
)
from tests.loopback import free_port
from tests.providers.emulated import CutDownload, HoldBackDownload, OpenAIEnv, chunk_request, openai_env

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
FILES = "/v1/files"
BATCHES = "/v1/batches"
MISSING_BATCH = "batch_" + "0" * 32
MISSING_FILE = "file-" + "0" * 22
RETIRED_MODEL = "gpt-4.5-preview"  # shut down in the emulator's catalogue: each line is a 404 model_not_found


@pytest.fixture(params=["asgi", "loopback"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[OpenAIEnv]:
    """The same test in process and over real HTTP."""
    async for value in openai_env(request.param, request):
        yield value


@pytest.fixture
async def asgi_env(request: pytest.FixtureRequest) -> AsyncIterator[OpenAIEnv]:
    async for value in openai_env("asgi", request):
        yield value


@pytest.fixture
async def loopback_env(request: pytest.FixtureRequest) -> AsyncIterator[OpenAIEnv]:
    """Real sockets: timeouts and streaming need them (ASGITransport buffers whole responses, ignores timeouts)."""
    async for value in openai_env("loopback", request):
        yield value


# -- helpers -------------------------------------------------------------------------------------------------
def chat_line(
    custom_id: str, model: str = "gpt-4.1-mini", content: str = "Summarise: fix the cache."
) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_completion_tokens": 64}
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": body}


def responses_line(custom_id: str, model: str = "gpt-5.4-mini") -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": RESPONSES, "body": {"model": model, "input": "Hi"}}


def chat_chunk(tmp_path: Path, key: str, n: int = 3, **metadata: str) -> ChunkRequest:
    return chunk_request(tmp_path, key, [chat_line(f"{key.replace('/', '-')}-{i}") for i in range(n)], **metadata)


async def send(provider: OpenAIBatchProvider, request: ChunkRequest) -> ProviderBatchInfo:
    return await provider.create(request, await provider.upload(request))


async def run_to_end(
    env: OpenAIEnv, provider: OpenAIBatchProvider, batch_id: str, step: float = 5
) -> ProviderBatchInfo:
    for _ in range(200):
        info = await provider.retrieve(batch_id)
        if info.is_terminal:
            return info
        env.clock.advance(step)
    raise AssertionError(f"batch {batch_id} never ended")


async def lines_of(provider: OpenAIBatchProvider, info: ProviderBatchInfo) -> list[bytes]:
    return [line async for line in provider.result_lines(info)]


def by_custom_id(lines: list[bytes]) -> dict[str, dict[str, Any]]:
    parsed = [orjson.loads(line) for line in lines]
    assert len({line["custom_id"] for line in parsed}) == len(parsed)
    return {line["custom_id"]: line for line in parsed}


def calls(provider: str, endpoint: str, status: str = "ok") -> float:
    labels = {"provider": provider, "endpoint": endpoint, "status": status}
    return REGISTRY.get_sample_value("llm_batch_provider_requests_total", labels) or 0.0


# -- the protocol ------------------------------------------------------------------------------------------
def test_the_adapter_is_a_batch_provider() -> None:
    provider: BatchProvider = OpenAIBatchProvider(openai.AsyncOpenAI(api_key="k"), name="deepinfra")
    assert provider.name == "deepinfra"


# -- sending -----------------------------------------------------------------------------------------------
async def test_upload_streams_the_chunk_under_its_key(env: OpenAIEnv, tmp_path: Path) -> None:
    provider = env.provider()
    lines = [chat_line(f"u-{i}", content="héllo ✓ 日本 " * 4) for i in range(1000)]
    request = chunk_request(tmp_path, "b1/pass-1/chunk-0", lines)
    data = request.lines().read_bytes()
    assert len(data) > 3 * 65_536  # several of the parts the file is streamed in

    file_id = await provider.upload(request)

    assert file_id is not None
    stored = env.emulator.files[file_id]
    assert (stored.content, stored.filename, stored.purpose) == (data, "b1_pass-1_chunk-0.jsonl", "batch")
    assert stored.filename == upload_filename(request.key)
    assert env.statuses("POST", FILES) == [200]


async def test_an_sdk_retry_of_an_upload_sends_the_whole_file_again(env: OpenAIEnv, tmp_path: Path) -> None:
    provider = env.provider(max_retries=2)
    request = chunk_request(tmp_path, "b1/pass-1/chunk-0", [chat_line(f"r-{i}") for i in range(2000)])
    env.emulator.faults.server_error_next = 1

    file_id = await provider.upload(request)

    assert env.statuses("POST", FILES) == [500, 200]
    assert list(env.emulator.files) == [file_id]
    assert file_id is not None and env.emulator.files[file_id].content == request.lines().read_bytes()


async def test_a_chunk_from_upload_to_results(env: OpenAIEnv, tmp_path: Path) -> None:
    provider = env.provider()
    request = chat_chunk(tmp_path, "b1/pass-1/chunk-0", n=12, model="gpt-4.1-mini")
    sent_at = env.now()

    info = await send(provider, request)

    assert re.fullmatch(r"batch_[0-9a-f]{32}", info.id)
    assert (info.status, info.ended, info.request_counts) == ("validating", None, RequestCounts(0, 0, 0))
    assert info.metadata == dict(request.metadata) == env.emulator.batches[info.id]["metadata"]
    assert info.created_at == sent_at and info.created_at.tzinfo is None
    assert info.input_file_id and (info.output_file_id, info.error_file_id, info.errors) == (None, None, [])
    assert env.emulator.batches[info.id]["endpoint"] == CHAT
    history = [info]
    while not history[-1].is_terminal:
        env.clock.advance(5)
        history.append(await provider.retrieve(info.id))
    assert list(dict.fromkeys(i.status for i in history)) == ["validating", "in_progress", "finalizing", "completed"]
    assert [i.ended for i in history] == [None] * (len(history) - 1) + [BatchEnd.COMPLETED]
    done = history[-1]
    assert done.request_counts == RequestCounts(total=12, completed=12, failed=0) and done.output_file_id

    lines = await lines_of(provider, done)

    assert all(isinstance(line, bytes) and not line.endswith((b"\n", b"\r")) for line in lines)
    assert b"".join(line + b"\n" for line in lines) == env.emulator.files[done.output_file_id].content
    assert sorted(by_custom_id(lines)) == sorted(env.emulator.custom_ids(info.id))
    assert calls("openai", "batches.create") >= 1


async def test_a_retired_models_lines_fail_one_by_one(env: OpenAIEnv, tmp_path: Path) -> None:
    provider = env.provider()
    request = chunk_request(tmp_path, "b1/pass-2/chunk-0", [chat_line(f"x-{i}", RETIRED_MODEL) for i in range(3)])

    done = await run_to_end(env, provider, (await send(provider, request)).id)

    assert (done.ended, done.output_file_id, done.request_counts) == (BatchEnd.COMPLETED, None, RequestCounts(3, 0, 3))
    lines = by_custom_id(await lines_of(provider, done))
    assert sorted(lines) == ["x-0", "x-1", "x-2"]
    for line in lines.values():
        assert line["error"] is None and line["response"]["status_code"] == 404
        assert line["response"]["body"]["error"]["code"] == "model_not_found"


async def test_the_endpoint_comes_from_the_chunk_or_the_provider(asgi_env: OpenAIEnv, tmp_path: Path) -> None:
    """ChunkRequest has no endpoint field: the service may tag the chunk with one, else the provider's default."""
    lines = [responses_line(f"r-{i}") for i in range(2)]
    tagged = chunk_request(tmp_path, "b1/pass-1/chunk-0", lines, endpoint=RESPONSES)
    untagged = chunk_request(tmp_path, "b1/pass-1/chunk-1", lines)

    by_tag = await send(asgi_env.provider(), tagged)
    by_default = await send(asgi_env.provider(endpoint=RESPONSES), untagged)

    assert asgi_env.emulator.batches[by_tag.id]["endpoint"] == RESPONSES
    assert asgi_env.emulator.batches[by_default.id]["endpoint"] == RESPONSES
    for info in (by_tag, by_default):
        done = await run_to_end(asgi_env, asgi_env.provider(), info.id)
        assert done.request_counts == RequestCounts(total=2, completed=2, failed=0)


async def test_metadata_is_cut_to_what_openai_takes(asgi_env: OpenAIEnv, tmp_path: Path) -> None:
    extra = {f"tag{i:02}": str(i) for i in range(20)}
    request = chat_chunk(tmp_path, "b1/pass-1/chunk-0", note="x" * 600, **{"k" * 65: "too long a key"}, **extra)

    info = await send(asgi_env.provider(), request)

    sent = asgi_env.emulator.batches[info.id]["metadata"]
    assert len(sent) == 16 and sent[CHUNK_METADATA_KEY] == request.key
    assert all(len(key) <= 64 and len(value) <= 512 for key, value in sent.items())
    assert sent == batch_metadata(request.metadata)
    assert batch_metadata({"note": "y" * 600, CHUNK_METADATA_KEY: "k"}) == {CHUNK_METADATA_KEY: "k", "note": "y" * 512}


@pytest.mark.parametrize("fault", ["server_error", "rate_limit"])
async def test_create_makes_exactly_one_attempt(env: OpenAIEnv, tmp_path: Path, fault: str) -> None:
    """No idempotency key: a blind retry could create a second batch, so not even the SDK retries a create."""
    provider = env.provider(max_retries=2)
    request = chat_chunk(tmp_path, "b1/pass-1/chunk-0")
    file_id = await provider.upload(request)
    setattr(env.emulator.faults, f"{fault}_next", 1)

    with pytest.raises(RetryableProviderError) as caught:
        await provider.create(request, file_id)

    assert caught.value.status_code == (500 if fault == "server_error" else 429)
    assert env.statuses("POST", BATCHES) == [caught.value.status_code]
    assert await provider.find(request, env.now()) == []
    info = await provider.create(request, file_id)
    assert [found.id for found in await provider.find(request, env.now())] == [info.id]


async def test_create_needs_an_input_file(asgi_env: OpenAIEnv, tmp_path: Path) -> None:
    with pytest.raises(PermanentProviderError, match="openai runs a batch from an uploaded input file"):
        await asgi_env.provider().create(chat_chunk(tmp_path, "b1/pass-1/chunk-0"), None)
    assert asgi_env.request_log == []


async def test_requests_openai_refuses_are_permanent(env: OpenAIEnv, tmp_path: Path) -> None:
    request = chat_chunk(tmp_path, "b1/pass-1/chunk-0")
    file_id = await env.provider().upload(request)

    with pytest.raises(PermanentProviderError) as window:
        await env.provider(completion_window="1h", max_retries=2).create(request, file_id)
    assert type(window.value) is PermanentProviderError
    assert window.value.status_code == 400 and "completion_window" in str(window.value)

    with pytest.raises(PermanentProviderError, match=r"^openai: 400: Cannot find file") as unknown_file:
        await env.provider(max_retries=2).create(request, MISSING_FILE)
    assert unknown_file.value.status_code == 400 and str(unknown_file.value).endswith("(param file_id)")

    assert env.emulator.batches == {}
    assert env.statuses("POST", BATCHES) == [400, 400]  # each tried once


# -- find --------------------------------------------------------------------------------------------------
async def test_find_recognises_a_chunks_batches_across_pages(
    env: OpenAIEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_module, "BATCH_PAGE_LIMIT", 2)
    provider = env.provider()
    mine, other = chat_chunk(tmp_path, "b1/pass-1/chunk-0"), chat_chunk(tmp_path, "b1/pass-1/chunk-1")
    first = await send(provider, mine)
    env.clock.advance(60)
    for _ in range(3):
        await send(provider, other)
    env.clock.advance(60)
    second = await send(provider, mine)  # a duplicate (only a worker paused past its lease makes one)
    await send(provider, other)

    found = await provider.find(mine, since=None)

    assert [info.id for info in found] == [first.id, second.id]  # oldest first
    assert all(info.metadata[CHUNK_METADATA_KEY] == mine.key for info in found)
    assert len(env.statuses("GET", BATCHES)) == 3  # six batches, two a page
    assert await provider.find(chat_chunk(tmp_path, "b1/pass-1/chunk-9"), since=None) == []


async def test_find_reads_back_to_since_less_ten_minutes(
    asgi_env: OpenAIEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_module, "BATCH_PAGE_LIMIT", 2)
    env, provider = asgi_env, asgi_env.provider()
    mine = chat_chunk(tmp_path, "b1/pass-1/chunk-0")
    created_at = env.now()
    target = await send(provider, mine)  # newest first: [n2, n1] [o2, o1] [target]
    for _ in range(2):
        await send(provider, chat_chunk(tmp_path, "b1/pass-1/chunk-1"))
    env.clock.advance(3 * 3600)
    for _ in range(2):
        await send(provider, chat_chunk(tmp_path, "b1/pass-1/chunk-2"))

    def list_calls() -> int:
        return len(env.statuses("GET", BATCHES))

    assert await provider.find(mine, since=created_at + timedelta(hours=3)) == []
    assert list_calls() == 2  # stopped after the page reaching before the bound
    within_slack = await provider.find(mine, since=created_at + timedelta(minutes=9))
    assert [info.id for info in within_slack] == [target.id] and list_calls() == 5
    assert [info.id for info in await provider.find(mine, since=None)] == [target.id]


class OldestFirstList:
    """An OpenAI-compatible server whose batch list comes oldest first (OpenAI's order is only observed)."""

    def __init__(self, emulator: Emulator, app: Starlette) -> None:
        self.emulator = emulator
        self.app = Starlette(routes=[Route(BATCHES, self.list_batches), Mount("/", app)])

    async def list_batches(self, request: Request) -> JSONResponse:
        batches = list(self.emulator.batches.values())  # in creation order
        after, limit = request.query_params.get("after"), int(request.query_params.get("limit", "20"))
        start = next((i + 1 for i, batch in enumerate(batches) if batch["id"] == after), 0)
        page = batches[start : start + limit]
        return JSONResponse({"object": "list", "data": page, "has_more": start + limit < len(batches)})


async def test_find_reads_an_oldest_first_list_to_its_end(
    asgi_env: OpenAIEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_module, "BATCH_PAGE_LIMIT", 2)
    provider, mine = asgi_env.provider(), chat_chunk(tmp_path, "b1/pass-1/chunk-0")
    for _ in range(3):
        await send(provider, chat_chunk(tmp_path, "b1/pass-1/chunk-1"))
        asgi_env.clock.advance(3600)
    since = asgi_env.now()
    target = await send(provider, mine)
    server = OldestFirstList(asgi_env.emulator, asgi_env.emulator_app)
    asgi_env.install(server.app)

    found = await provider.find(mine, since)

    assert [info.id for info in found] == [target.id]


# -- following ---------------------------------------------------------------------------------------------
async def test_cancel_keeps_partial_results(env: OpenAIEnv, tmp_path: Path) -> None:
    provider = env.provider()
    info = await send(provider, chat_chunk(tmp_path, "b1/pass-1/chunk-0", n=20))
    env.clock.advance(5 + 15)  # validated, and half of the 30 s of processing done

    cancelling = await provider.cancel(info.id)

    assert (cancelling.status, cancelling.ended) == ("cancelling", None)
    env.clock.advance(30)
    done = await provider.retrieve(info.id)
    assert (done.status, done.ended) == ("cancelled", BatchEnd.CANCELLED)
    assert done.request_counts == RequestCounts(total=20, completed=10, failed=10)
    lines = by_custom_id(await lines_of(provider, done))
    unrun = [line for line in lines.values() if line["error"]]
    assert len(lines) == 20 and len(unrun) == 10
    assert {line["error"]["code"] for line in unrun} == {"batch_cancelled"}

    with pytest.raises(PermanentProviderError) as finished:
        await provider.cancel(info.id)
    assert finished.value.status_code == 400 and not isinstance(finished.value, RetryableProviderError)


async def test_a_gateways_409_to_cancelling_a_finished_batch_is_permanent(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async for env in openai_env("asgi", request, cancel_terminal_status=409):
        provider = env.provider()
        info = await run_to_end(env, provider, (await send(provider, chat_chunk(tmp_path, "b/pass-1/chunk-0"))).id)
        with pytest.raises(PermanentProviderError) as caught:
            await provider.cancel(info.id)
        assert caught.value.status_code == 409 and not isinstance(caught.value, RetryableProviderError)


async def test_an_expired_batch_has_partial_results(env: OpenAIEnv, tmp_path: Path) -> None:
    provider = env.provider()
    env.emulator.faults.expire_next_batches = 1
    env.emulator.faults.expire_after_fraction = 0.25

    done = await run_to_end(env, provider, (await send(provider, chat_chunk(tmp_path, "b/pass-1/chunk-0", 8))).id)

    assert (done.status, done.ended) == ("expired", BatchEnd.EXPIRED)
    assert done.request_counts == RequestCounts(total=8, completed=2, failed=6)
    lines = by_custom_id(await lines_of(provider, done))
    assert Counter(line["error"]["code"] if line["error"] else "ok" for line in lines.values()) == {
        "batch_expired": 6,
        "ok": 2,
    }


@pytest.mark.parametrize(
    ("fault", "code"),
    [("fail_next_batches", "validation_failed"), ("token_limit_next_batches", "token_limit_exceeded")],
)
async def test_a_failed_batch_exposes_its_errors(env: OpenAIEnv, tmp_path: Path, fault: str, code: str) -> None:
    provider = env.provider()
    setattr(env.emulator.faults, fault, 1)

    done = await run_to_end(env, provider, (await send(provider, chat_chunk(tmp_path, "b/pass-1/chunk-0"))).id)

    assert (done.status, done.ended, done.output_file_id, done.error_file_id) == ("failed", BatchEnd.FAILED, None, None)
    assert [error["code"] for error in done.errors] == [code]
    assert set(done.errors[0]) >= {"code", "message", "param", "line"}
    assert await lines_of(provider, done) == []


async def test_malformed_and_missing_result_lines_pass_through(env: OpenAIEnv, tmp_path: Path) -> None:
    provider = env.provider()
    env.emulator.faults.malformed_output_lines = 2

    done = await run_to_end(env, provider, (await send(provider, chat_chunk(tmp_path, "b/pass-1/chunk-0", 10))).id)

    lines = await lines_of(provider, done)
    unreadable = []
    for line in lines:
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            unreadable.append(line)
    assert len(lines) == 10 and len(unreadable) == 2
    assert all(line + b"\n" in env.emulator.files[str(done.output_file_id)].content for line in unreadable)

    env.emulator.faults.missing_output_lines = 1
    done = await run_to_end(env, provider, (await send(provider, chat_chunk(tmp_path, "b/pass-1/chunk-1", 10))).id)
    assert len(await lines_of(provider, done)) == 9  # the ingest says which request has no result


async def test_lines_split_on_newlines_only(env: OpenAIEnv, tmp_path: Path) -> None:
    """U+2028, U+2029 and U+0085 stay inside their JSON strings; CRLF, blank lines, a line longer than a network
    read and a last line without its newline are all handled."""
    provider = env.provider()
    odd = orjson.dumps({"custom_id": "odd", "text": "a\u2028b\u2029c\u0085d"})
    long = orjson.dumps({"custom_id": "long", "text": "word " * 60_000})
    path = tmp_path / "results.jsonl"
    path.write_bytes(odd + b"\r\n\n" + long)
    file_id = await provider.upload(ChunkRequest("k", path, 2, "m", {}))
    assert file_id is not None and path.stat().st_size > 300_000

    lines = await lines_of(provider, ProviderBatchInfo("b", "completed", BatchEnd.COMPLETED, error_file_id=file_id))

    assert lines == [odd, long]
    assert orjson.loads(lines[0])["text"] == "a\u2028b\u2029c\u0085d"


async def test_result_lines_stream(loopback_env: OpenAIEnv, tmp_path: Path) -> None:
    """The first lines reach the caller while the rest of the file is still held back by the server."""
    provider = loopback_env.provider()
    lines = [chat_line(f"s-{i}", content="word " * 40) for i in range(300)]
    done = await run_to_end(loopback_env, provider, (await send(provider, chunk_request(tmp_path, "b/p/c", lines))).id)
    holder = HoldBackDownload(loopback_env.emulator_app, "/content")
    loopback_env.install(holder)

    stream = provider.result_lines(done)
    first = await anext(stream)
    holder.release.set()
    rest = [line async for line in stream]

    assert holder.released_in_time is True
    assert len(by_custom_id([first, *rest])) == 300


async def test_a_download_cut_midway_is_retryable(loopback_env: OpenAIEnv, tmp_path: Path) -> None:
    provider = loopback_env.provider()
    lines = [chat_line(f"c-{i}", content="word " * 40) for i in range(300)]
    done = await run_to_end(loopback_env, provider, (await send(provider, chunk_request(tmp_path, "b/p/c", lines))).id)
    loopback_env.install(CutDownload(loopback_env.emulator_app, "/content", head=16_384))
    received: list[bytes] = []

    with pytest.raises(RetryableProviderError, match="interrupted") as caught:
        async for line in provider.result_lines(done):
            received.append(line)

    assert 0 < len(received) < 300
    assert isinstance(caught.value.__cause__, httpx.HTTPError | httpx2.HTTPError)
    assert calls("openai", "files.content", "interrupted") >= 1


# -- errors of calls ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("retry_after", [7.0, 0.05])
async def test_a_rate_limit_says_when_to_come_back(env: OpenAIEnv, retry_after: float) -> None:
    provider = env.provider(max_retries=0)
    env.emulator.faults.rate_limit_next = 1
    env.emulator.faults.rate_limit_retry_after = retry_after

    started = time.monotonic()
    with pytest.raises(RetryableProviderError) as caught:
        await provider.retrieve(MISSING_BATCH)

    assert time.monotonic() - started < 2  # no SDK retry, no wait
    assert caught.value.status_code == 429 and caught.value.retry_after == pytest.approx(retry_after)
    assert "openai: 429 rate_limit_exceeded" in str(caught.value)
    assert isinstance(caught.value.__cause__, openai.RateLimitError)
    assert calls("openai", "batches.retrieve", "429") >= 1


async def test_short_rate_limits_are_absorbed_by_sdk_retries(env: OpenAIEnv, tmp_path: Path) -> None:
    provider = env.provider(max_retries=2)
    info = await send(provider, chat_chunk(tmp_path, "b/p/c"))
    env.emulator.faults.rate_limit_next = 2

    assert (await provider.retrieve(info.id)).id == info.id
    assert env.statuses("GET", f"{BATCHES}/{info.id}") == [429, 429, 200]


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retryable(env: OpenAIEnv, status: int) -> None:
    provider = env.provider(max_retries=0)
    env.emulator.faults.server_error_next = 1
    env.emulator.faults.server_error_status = status

    with pytest.raises(RetryableProviderError) as caught:
        await provider.list_models()

    assert caught.value.status_code == status and caught.value.retry_after is None
    assert isinstance(caught.value.__cause__, openai.InternalServerError)


async def test_a_slow_answer_times_out_as_retryable(loopback_env: OpenAIEnv) -> None:
    provider = loopback_env.provider(timeout_seconds=0.1, max_retries=0)
    loopback_env.emulator.faults.slow_seconds = 0.4

    with pytest.raises(RetryableProviderError, match="timed out waiting for openai") as caught:
        await provider.retrieve(MISSING_BATCH)

    assert caught.value.status_code is None and isinstance(caught.value.__cause__, openai.APITimeoutError)
    assert calls("openai", "batches.retrieve", "timeout") >= 1
    loopback_env.emulator.faults.slow_seconds = 0
    assert await provider.find(ChunkRequest("k", None, 1, "m", {}), since=None) == []  # still usable


async def test_connection_refused_is_retryable() -> None:
    provider = OpenAIBatchProvider.connect(
        name="sglang", api_key="k", base_url=f"http://127.0.0.1:{free_port()}/v1", timeout_seconds=2, max_retries=0
    )
    try:
        with pytest.raises(RetryableProviderError, match="could not connect to sglang") as caught:
            await provider.retrieve(MISSING_BATCH)
        assert caught.value.status_code is None
        assert calls("sglang", "batches.retrieve", "connection_error") == 1
    finally:
        await provider.close()


async def test_unknown_ids_are_not_found(env: OpenAIEnv) -> None:
    provider = env.provider(max_retries=2)  # a 404 is never retried
    missing = ProviderBatchInfo("b", "completed", BatchEnd.COMPLETED, output_file_id=MISSING_FILE)
    for call in (
        lambda: provider.retrieve(MISSING_BATCH),
        lambda: provider.cancel(MISSING_BATCH),
        lambda: anext(provider.result_lines(missing)),
    ):
        with pytest.raises(ProviderNotFound) as caught:
            await call()
        assert caught.value.status_code == 404 and not isinstance(caught.value, RetryableProviderError)
    assert [status for _, _, status in env.request_log] == [404, 404, 404]


# -- cleaning up -------------------------------------------------------------------------------------------
async def test_delete_results_deletes_each_file_quietly(env: OpenAIEnv, tmp_path: Path) -> None:
    provider = env.provider()
    info = await send(provider, chat_chunk(tmp_path, "b/p/c"))
    done = await run_to_end(env, provider, info.id)
    files = done.file_ids()
    assert len(files) == 2  # input and output: no line failed

    await provider.delete_results(done.id, [*files, files[0], MISSING_FILE])

    assert all(file_id not in env.emulator.files for file_id in files)
    assert env.statuses("DELETE", f"{FILES}/{MISSING_FILE}") == [404]
    assert (await provider.retrieve(done.id)).status == "completed"  # OpenAI keeps its batches

    env.emulator.faults.server_error_next = 1
    with pytest.raises(RetryableProviderError):
        await provider.delete_results(None, [MISSING_FILE])


async def test_delete_uploads_clears_a_chunks_strays_only(
    env: OpenAIEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_module, "FILE_PAGE_LIMIT", 2)
    provider = env.provider()
    mine, other = chat_chunk(tmp_path, "b/pass-1/chunk-0"), chat_chunk(tmp_path, "b/pass-1/chunk-1")
    kept, *strays = [await provider.upload(mine) for _ in range(3)]
    others = await provider.upload(other)
    same_name = env.emulator.upload_file(upload_filename(mine.key), "user_data", b"{}")["id"]  # not a batch file

    await provider.delete_uploads(mine.key, keep={kept, None})

    assert set(env.emulator.files) == {kept, others, same_name}
    assert all(env.statuses("DELETE", f"{FILES}/{stray}") == [200] for stray in strays)
    assert len(env.statuses("GET", FILES)) == 2  # four batch files, two a page


# -- models ------------------------------------------------------------------------------------------------
async def test_list_models_is_the_live_catalogue(env: OpenAIEnv) -> None:
    provider = env.provider()
    listed = ["gpt-4.1-mini", "gpt-4.1-nano", "gpt-5-mini", "gpt-5-nano", "gpt-5.4-mini", "gpt-5.4-nano"]
    assert await provider.list_models() == listed
    env.emulator.retire("gpt-5-nano")
    assert "gpt-5-nano" not in await provider.list_models()


# -- a named OpenAI-compatible endpoint ----------------------------------------------------------------------
async def test_a_named_compatible_endpoint_is_a_provider_of_its_own(asgi_env: OpenAIEnv, tmp_path: Path) -> None:
    """A second emulator under a path prefix (as Azure serves /openai/v1) behind a provider named "azure"."""
    compat = Emulator(EmulatorConfig(clock=ManualClock(), seed=3))
    app = Starlette(routes=[Mount("/openai", app=create_emulator_app(emulator=compat))])
    http_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    azure = OpenAIBatchProvider.connect(
        name="azure",
        api_key="azure-key",
        base_url="http://azure.test/openai/v1",
        timeout_seconds=5,
        max_retries=0,
        http_client=http_client,
    )
    openai_provider = asgi_env.provider()
    request = chat_chunk(tmp_path, "b/pass-1/chunk-0")
    try:
        on_azure = await send(azure, request)
        assert azure.name == "azure" and list(compat.batches) == [on_azure.id]
        assert asgi_env.emulator.batches == {}
        assert [info.id for info in await azure.find(request, since=None)] == [on_azure.id]
        assert await openai_provider.find(request, since=None) == []
        assert calls("azure", "batches.create") == 1
        compat.faults.rate_limit_next = 1
        with pytest.raises(RetryableProviderError, match=r"^azure: 429"):
            await azure.retrieve(on_azure.id)
        with pytest.raises(ProviderNotFound, match=r"^azure: 404"):
            await azure.cancel(MISSING_BATCH)
    finally:
        await azure.close()
        await http_client.aclose()


# -- what a batch says -------------------------------------------------------------------------------------
ERROR = {"code": "invalid_method", "message": "Invalid value: 'GET'.", "param": "method", "line": 4}
BATCH = {
    "id": "batch_abc",
    "object": "batch",
    "endpoint": CHAT,
    "input_file_id": "file-in",
    "completion_window": "24h",
    "status": "completed",
    "created_at": 1_767_225_600,
    "output_file_id": "file-out",
    "error_file_id": "file-err",
    "request_counts": {"total": 3, "completed": 2, "failed": 1},
    "metadata": {"chunk": "k-1"},
}


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        pytest.param({"object": "list", "data": [ERROR]}, [ERROR], id="openai"),
        pytest.param([ERROR], [ERROR], id="bare-array"),
        pytest.param(None, [], id="null"),
    ],
)
def test_batch_info(errors: Any, expected: list[dict[str, Any]]) -> None:
    info = batch_info(Batch.construct(**{**BATCH, "errors": errors}))
    assert [{k: e[k] for k in ERROR} for e in info.errors] == expected
    assert info.created_at == datetime(2026, 1, 1) and info.file_ids() == ["file-in", "file-out", "file-err"]
    assert (info.ended, info.request_counts, info.metadata) == (
        BatchEnd.COMPLETED,
        RequestCounts(3, 2, 1),
        {"chunk": "k-1"},
    )


@pytest.mark.parametrize(
    ("status", "ended"),
    [
        ("validating", None),
        ("in_progress", None),
        ("finalizing", None),
        ("cancelling", None),
        ("completed", BatchEnd.COMPLETED),
        ("failed", BatchEnd.FAILED),
        ("expired", BatchEnd.EXPIRED),
        ("cancelled", BatchEnd.CANCELLED),
    ],
)
def test_statuses_in_our_words(status: str, ended: BatchEnd | None) -> None:
    info = batch_info(Batch.construct(**{**BATCH, "status": status, "metadata": None, "request_counts": None}))
    assert (info.status, info.ended, info.metadata, info.request_counts) == (status, ended, {}, RequestCounts())


# -- map_sdk_error -----------------------------------------------------------------------------------------
def status_error(status: int, headers: dict[str, str] | None = None, body: object = None) -> openai.APIStatusError:
    request = httpx.Request("GET", "https://api.openai.com/v1/batches")
    response = httpx.Response(status, headers=headers or {}, request=request)
    return openai.APIStatusError(f"Error code: {status}", response=response, body=body)  # type: ignore[arg-type]


def http_date(offset_seconds: float) -> str:
    return email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=offset_seconds), usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"retry-after-ms": "1500"}, 1.5, id="retry-after-ms"),
        pytest.param({"retry-after-ms": "250", "retry-after": "9"}, 0.25, id="ms-wins"),
        pytest.param({"retry-after-ms": "soon", "retry-after": "9"}, 9.0, id="bad-ms-falls-back"),
        pytest.param({"retry-after-ms": "-200"}, 0.0, id="negative-ms"),
        pytest.param({"retry-after": "2.5"}, 2.5, id="seconds"),
        pytest.param({"retry-after": "-3"}, 0.0, id="negative-seconds"),
        pytest.param({"retry-after": "nan"}, None, id="not-finite"),
        pytest.param({"retry-after": http_date(-3600)}, 0.0, id="http-date-past"),
        pytest.param({"retry-after": "soon"}, None, id="unparseable"),
        pytest.param({}, None, id="none"),
    ],
)
def test_map_sdk_error_reads_retry_after(headers: dict[str, str], expected: float | None) -> None:
    mapped = map_sdk_error(status_error(429, headers))
    assert isinstance(mapped, RetryableProviderError) and mapped.status_code == 429
    assert mapped.retry_after == (pytest.approx(expected) if expected is not None else None)


def test_map_sdk_error_reads_an_http_date_retry_after() -> None:
    mapped = map_sdk_error(status_error(429, {"retry-after": http_date(30)}))
    assert isinstance(mapped, RetryableProviderError) and mapped.retry_after == pytest.approx(30, abs=1.5)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        *[(status, RetryableProviderError) for status in (408, 409, 429, 500, 502, 503, 504)],
        *[(status, PermanentProviderError) for status in (400, 401, 403, 413, 422)],
        (404, ProviderNotFound),
    ],
)
def test_map_sdk_error_by_status(status: int, kind: type[ProviderError]) -> None:
    mapped = map_sdk_error(status_error(status), "deepinfra")
    assert type(mapped) is kind and mapped.status_code == status
    assert str(mapped).startswith(f"deepinfra: {status}")


def test_map_sdk_error_of_transport_and_other_errors() -> None:
    request = httpx.Request("GET", "https://api.openai.com/v1/batches")
    timeout = map_sdk_error(openai.APITimeoutError(request=request), "azure")  # type: ignore[arg-type]
    connection = map_sdk_error(openai.APIConnectionError(request=request), "azure")  # type: ignore[arg-type]
    assert type(timeout) is RetryableProviderError and str(timeout) == "timed out waiting for azure"
    assert type(connection) is RetryableProviderError and "could not connect to azure" in str(connection)
    assert type(map_sdk_error(ValueError("odd"))) is ProviderError


def test_map_sdk_error_message_comes_from_the_error_body() -> None:
    body = {"message": "Invalid value: '1h'", "type": "invalid_request_error", "code": "bad"}  # unwrapped by the SDK
    assert str(map_sdk_error(status_error(400, body=body))) == "openai: 400 bad: Invalid value: '1h'"
    assert str(map_sdk_error(status_error(400, body={"error": {"message": "wrapped"}}))) == "openai: 400: wrapped"
    assert str(map_sdk_error(status_error(400))) == "openai: 400: Error code: 400"
