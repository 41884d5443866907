"""AnthropicBatchProvider against the Anthropic emulator through the real ``anthropic`` SDK.

Most tests run twice: in process (an ``httpx2`` client over ``ASGITransport``: the SDK 2.x takes no other) and over
a real uvicorn on 127.0.0.1. Timeouts, streaming and broken downloads need real sockets: loopback only.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from anthropic.types.messages import MessageBatch

import service.providers.anthropic as anthropic_module
from service.observability.metrics import REGISTRY
from service.providers.anthropic import AnthropicBatchProvider, batch_info, map_sdk_error, naive_utc
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
from tests.providers.emulated import (
    AnthropicEnv,
    CutDownload,
    HoldBackDownload,
    ReplaceDownload,
    anthropic_env,
    chunk_request,
)

BATCHES = "/v1/messages/batches"
MISSING_BATCH = "msgbatch_01" + "A" * 22
RETIRED_MODEL = "claude-3-5-haiku-latest"  # retired in the emulator's catalogue: each request errors not_found_error
PROCESSING = 60  # the emulator runs a batch's requests evenly over 60 s
CANCEL = 30  # canceling lasts 30 s


@pytest.fixture(params=["asgi", "loopback"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[AnthropicEnv]:
    """The same test in process and over real HTTP."""
    async for value in anthropic_env(request.param, request):
        yield value


@pytest.fixture
async def asgi_env(request: pytest.FixtureRequest) -> AsyncIterator[AnthropicEnv]:
    async for value in anthropic_env("asgi", request):
        yield value


@pytest.fixture
async def loopback_env(request: pytest.FixtureRequest) -> AsyncIterator[AnthropicEnv]:
    """Real sockets: timeouts and streaming need them (ASGITransport buffers whole responses, ignores timeouts)."""
    async for value in anthropic_env("loopback", request):
        yield value


# -- helpers -------------------------------------------------------------------------------------------------
def message_request(custom_id: str, model: str = "claude-haiku-4-5", content: str = "Summarise.") -> dict[str, Any]:
    """One line of an Anthropic chunk, as the service builds it."""
    params = {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": content}]}
    return {"custom_id": custom_id, "params": params}


def requests_chunk(tmp_path: Path, key: str, n: int, model: str = "claude-haiku-4-5") -> ChunkRequest:
    return chunk_request(tmp_path, key, [message_request(f"i{i}", model) for i in range(n)])


async def send(provider: AnthropicBatchProvider, request: ChunkRequest) -> ProviderBatchInfo:
    input_file_id = await provider.upload(request)
    return await provider.create(request, input_file_id)


async def run_to_end(env: AnthropicEnv, provider: AnthropicBatchProvider, batch_id: str) -> ProviderBatchInfo:
    for _ in range(100):
        info = await provider.retrieve(batch_id)
        if info.is_terminal:
            return info
        env.clock.advance(15)
    raise AssertionError(f"batch {batch_id} never ended")


async def lines_of(provider: AnthropicBatchProvider, info: ProviderBatchInfo) -> list[bytes]:
    return [line async for line in provider.result_lines(info)]


def results(lines: list[bytes]) -> dict[str, dict[str, Any]]:
    parsed = [orjson.loads(line) for line in lines]
    assert len({line["custom_id"] for line in parsed}) == len(parsed)
    return {line["custom_id"]: line["result"] for line in parsed}


def calls(endpoint: str, status: str = "ok") -> float:
    labels = {"provider": "anthropic", "endpoint": endpoint, "status": status}
    return REGISTRY.get_sample_value("llm_batch_provider_requests_total", labels) or 0.0


# -- sending -----------------------------------------------------------------------------------------------
def test_the_adapter_is_a_batch_provider() -> None:
    provider: BatchProvider = AnthropicBatchProvider(anthropic.AsyncAnthropic(api_key="k"))
    assert provider.name == "anthropic"


async def test_a_chunk_from_create_to_results(env: AnthropicEnv, tmp_path: Path) -> None:
    provider = env.provider()
    request = requests_chunk(tmp_path, "b1/pass-1/chunk-0", 6)
    sent_at = env.now()

    assert await provider.upload(request) is None and env.request_log == []  # nothing is uploaded
    info = await provider.create(request, None)

    assert (info.status, info.ended, info.request_counts) == ("in_progress", None, RequestCounts(6, 0, 0))
    assert info.created_at == sent_at and info.created_at.tzinfo is None
    assert (info.file_ids(), info.metadata, info.errors) == ([], {}, [])
    assert env.emulator.custom_ids(info.id) == [f"i{i}" for i in range(6)]
    env.clock.advance(PROCESSING / 2)
    assert (await provider.retrieve(info.id)).ended is None
    env.clock.advance(PROCESSING / 2)
    done = await provider.retrieve(info.id)
    assert (done.status, done.ended, done.request_counts) == ("ended", BatchEnd.COMPLETED, RequestCounts(6, 6, 0))

    lines = await lines_of(provider, done)

    assert all(isinstance(line, bytes) and not line.endswith((b"\n", b"\r")) for line in lines)
    assert b"".join(line + b"\n" for line in lines) == env.emulator.batch_records[info.id].results
    assert {custom_id: result["type"] for custom_id, result in results(lines).items()} == {
        f"i{i}": "succeeded" for i in range(6)
    }
    assert calls("batches.create") >= 1 and calls("batches.results") >= 1


async def test_a_retired_models_requests_error_one_by_one(env: AnthropicEnv, tmp_path: Path) -> None:
    provider = env.provider()

    info = await send(provider, requests_chunk(tmp_path, "b/p/c", 3, RETIRED_MODEL))

    done = await run_to_end(env, provider, info.id)

    assert (done.ended, done.request_counts) == (BatchEnd.COMPLETED, RequestCounts(3, 0, 3))
    for result in results(await lines_of(provider, done)).values():
        assert result["type"] == "errored"
        assert result["error"]["error"] == {"type": "not_found_error", "message": f"model: {RETIRED_MODEL}"}


async def test_what_create_refuses_before_sending(asgi_env: AnthropicEnv, tmp_path: Path) -> None:
    provider = asgi_env.provider()
    request = requests_chunk(tmp_path, "b/p/c", 3)
    path = request.lines()

    with pytest.raises(PermanentProviderError, match="takes requests inline"):
        await provider.create(request, "file-1")
    with pytest.raises(PermanentProviderError, match="holds 3 requests, not the chunk's 4"):
        await provider.create(ChunkRequest(request.key, path, 4, "m", {}), None)
    path.write_bytes(path.read_bytes() + b"\n\n{not json\n")
    with pytest.raises(PermanentProviderError, match=r"line 6 of .* is not JSON"):
        await provider.create(request, None)
    path.write_bytes(b'["a list"]\n')
    with pytest.raises(PermanentProviderError, match=r"line 1 of .* is not a request object"):
        await provider.create(ChunkRequest(request.key, path, 1, "m", {}), None)
    with pytest.raises(PermanentProviderError, match="were not spooled"):
        await provider.create(request.unlink(), None)
    assert asgi_env.request_log == []


async def test_blank_lines_and_crlf_do_not_count(asgi_env: AnthropicEnv, tmp_path: Path) -> None:
    request = requests_chunk(tmp_path, "b/p/c", 2)
    lines = request.lines().read_bytes().split(b"\n")
    request.lines().write_bytes(lines[0] + b"\r\n\n" + lines[1])  # no final newline either

    info = await asgi_env.provider().create(request, None)

    assert asgi_env.emulator.custom_ids(info.id) == ["i0", "i1"]


@pytest.mark.parametrize("fault", ["rate_limit_next", "overloaded_next", "server_error_next"])
async def test_create_makes_exactly_one_attempt(env: AnthropicEnv, tmp_path: Path, fault: str) -> None:
    """No idempotency key: a blind retry could create a second batch, so not even the SDK retries a create."""
    provider = env.provider(max_retries=2)
    request = requests_chunk(tmp_path, "b/p/c", 2)
    setattr(env.emulator.faults, fault, 1)

    with pytest.raises(RetryableProviderError) as caught:
        await provider.create(request, None)

    assert env.statuses("POST", BATCHES) == [caught.value.status_code]
    assert env.emulator.batch_records == {}
    info = await provider.create(request, None)
    assert [found.id for found in await provider.find(request, env.now())] == [info.id]


@pytest.mark.parametrize(
    ("config", "request_line", "status"),
    [
        pytest.param({"max_bytes": 2_000}, message_request("i0", content="x" * 3_000), 413, id="too-large"),
        pytest.param({}, message_request("not an id"), 400, id="bad-custom-id"),
    ],
)
async def test_batches_anthropic_refuses_are_permanent(
    request: pytest.FixtureRequest, tmp_path: Path, config: dict[str, Any], request_line: dict[str, Any], status: int
) -> None:
    async for env in anthropic_env("asgi", request, **config):
        provider = env.provider(max_retries=2)
        with pytest.raises(PermanentProviderError) as caught:
            await provider.create(chunk_request(tmp_path, "b/p/c", [request_line]), None)
        assert type(caught.value) is PermanentProviderError and caught.value.status_code == status
        assert env.statuses("POST", BATCHES) == [status]


# -- find --------------------------------------------------------------------------------------------------
async def test_find_matches_by_window_and_count(
    env: AnthropicEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(anthropic_module, "BATCH_PAGE_LIMIT", 2)
    provider = env.provider()
    mine = requests_chunk(tmp_path, "b/pass-1/chunk-0", 3)
    too_old = [(await send(provider, mine)).id for _ in range(3)]
    env.clock.advance(3600)
    since = env.now()
    first = await send(provider, mine)  # created with the chunk
    env.clock.advance(5)
    await send(provider, requests_chunk(tmp_path, "b/pass-1/chunk-1", 4))  # another size
    env.clock.advance(5)
    second = await send(provider, requests_chunk(tmp_path, "b/pass-1/chunk-2", 3))  # same size: a candidate too

    found = await provider.find(mine, since)

    assert [info.id for info in found] == [first.id, second.id]  # oldest first; the lifecycle decides
    assert not set(too_old) & {info.id for info in found}
    assert len(env.statuses("GET", BATCHES)) == 2  # [second, other] [first, old] [old, old]: stopped at the first old
    assert await provider.find(requests_chunk(tmp_path, "b/pass-1/chunk-3", 5), since) == []


async def test_find_allows_ten_minutes_of_clock_skew(asgi_env: AnthropicEnv, tmp_path: Path) -> None:
    provider = asgi_env.provider()
    mine = requests_chunk(tmp_path, "b/p/c", 2)
    at = asgi_env.now()
    info = await send(provider, mine)

    assert [found.id for found in await provider.find(mine, at + timedelta(minutes=9, seconds=59))] == [info.id]
    assert await provider.find(mine, at + timedelta(minutes=10, seconds=1)) == []


async def test_find_without_since_matches_nothing(asgi_env: AnthropicEnv, tmp_path: Path) -> None:
    provider = asgi_env.provider()
    mine = requests_chunk(tmp_path, "b/p/c", 2)
    await send(provider, mine)
    before = len(asgi_env.request_log)

    assert await provider.find(mine, since=None) == []
    assert len(asgi_env.request_log) == before  # not even asked


# -- following ---------------------------------------------------------------------------------------------
async def test_cancel_keeps_partial_results(env: AnthropicEnv, tmp_path: Path) -> None:
    provider = env.provider()
    info = await send(provider, requests_chunk(tmp_path, "b/p/c", 10))
    env.clock.advance(PROCESSING / 2)

    canceling = await provider.cancel(info.id)

    assert (canceling.status, canceling.ended, canceling.request_counts) == ("canceling", None, RequestCounts(10, 0, 0))
    env.clock.advance(CANCEL)
    done = await provider.retrieve(info.id)
    assert (done.status, done.ended, done.request_counts) == ("ended", BatchEnd.CANCELLED, RequestCounts(10, 5, 5))
    assert Counter(result["type"] for result in results(await lines_of(provider, done)).values()) == {
        "succeeded": 5,
        "canceled": 5,
    }

    with pytest.raises(PermanentProviderError) as ended:
        await provider.cancel(info.id)
    assert ended.value.status_code == 400 and "already ended" in str(ended.value)


@pytest.mark.parametrize(("fraction", "ended", "succeeded"), [(0.0, BatchEnd.EXPIRED, 0), (0.5, BatchEnd.COMPLETED, 2)])
async def test_expired_requests(
    env: AnthropicEnv, tmp_path: Path, fraction: float, ended: BatchEnd, succeeded: int
) -> None:
    """A batch whose every request expired has expired; one with some results has completed (its expired
    requests say so one by one)."""
    provider = env.provider()
    env.emulator.faults.expire_next_batches = 1
    env.emulator.faults.expire_after_fraction = fraction

    done = await run_to_end(env, provider, (await send(provider, requests_chunk(tmp_path, "b/p/c", 4))).id)

    assert (done.ended, done.request_counts) == (ended, RequestCounts(4, succeeded, 4 - succeeded))
    kinds = Counter(result["type"] for result in results(await lines_of(provider, done)).values())
    assert kinds == Counter({"succeeded": succeeded, "expired": 4 - succeeded})


async def test_errored_malformed_and_missing_results_pass_through(env: AnthropicEnv, tmp_path: Path) -> None:
    provider = env.provider()
    faults = env.emulator.faults
    faults.errored_results_next, faults.overloaded_results_next, faults.malformed_result_lines = 2, 1, 2

    done = await run_to_end(env, provider, (await send(provider, requests_chunk(tmp_path, "b/p/c", 8))).id)

    assert done.request_counts == RequestCounts(total=8, completed=5, failed=3)
    lines = await lines_of(provider, done)
    readable, unreadable = [], []
    for line in lines:
        try:
            readable.append(orjson.loads(line)["result"])
        except orjson.JSONDecodeError:
            unreadable.append(line)
    assert len(lines) == 8 and len(unreadable) == 2
    assert all(line + b"\n" in env.emulator.batch_records[done.id].results for line in unreadable)
    error_types = {result["error"]["error"]["type"] for result in readable if result["type"] == "errored"}
    assert error_types <= {"api_error", "overloaded_error"}

    faults.missing_result_lines = 1
    done = await run_to_end(env, provider, (await send(provider, requests_chunk(tmp_path, "b/p/c", 8))).id)
    assert len(await lines_of(provider, done)) == 7  # the ingest says which request has no result


async def test_results_before_the_end_are_not_ready(asgi_env: AnthropicEnv, tmp_path: Path) -> None:
    provider = asgi_env.provider()
    info = await send(provider, requests_chunk(tmp_path, "b/p/c", 2))

    with pytest.raises(RetryableProviderError, match="not ready"):
        await lines_of(provider, info)
    assert calls("batches.results", "not_ready") >= 1


async def test_archived_results_are_gone(asgi_env: AnthropicEnv, tmp_path: Path) -> None:
    provider = asgi_env.provider()
    done = await run_to_end(asgi_env, provider, (await send(provider, requests_chunk(tmp_path, "b/p/c", 2))).id)
    asgi_env.clock.advance(29 * 86_400)

    with pytest.raises(ProviderNotFound):
        await lines_of(provider, done)


async def test_lines_split_on_newlines_only(env: AnthropicEnv, tmp_path: Path) -> None:
    """U+2028, U+2029 and U+0085 stay inside their JSON strings; CRLF, blank lines, a line longer than a network
    read and a last line without its newline are all handled."""
    provider = env.provider()
    done = await run_to_end(env, provider, (await send(provider, requests_chunk(tmp_path, "b/p/c", 2))).id)
    odd = orjson.dumps({"custom_id": "i0", "result": {"type": "succeeded", "text": "a\u2028b\u2029c\u0085d"}})
    long = orjson.dumps({"custom_id": "i1", "result": {"type": "succeeded", "text": "word " * 60_000}})
    env.install(ReplaceDownload(env.emulator_app, "/results", odd + b"\r\n\n" + long))
    content_length = len(odd) + 3 + len(long)
    assert content_length > 300_000

    lines = await lines_of(provider, done)

    assert lines == [odd, long]
    assert results(lines)["i0"]["text"] == "a\u2028b\u2029c\u0085d"


async def test_result_lines_stream(loopback_env: AnthropicEnv, tmp_path: Path) -> None:
    """The first lines reach the caller while the rest of the results is still held back by the server."""
    provider = loopback_env.provider()
    done = await run_to_end(loopback_env, provider, (await send(provider, requests_chunk(tmp_path, "b/p/c", 200))).id)
    holder = HoldBackDownload(loopback_env.emulator_app, "/results")
    loopback_env.install(holder)

    stream = provider.result_lines(done)
    first = await anext(stream)
    holder.release.set()
    rest = [line async for line in stream]

    assert holder.released_in_time is True
    assert len(results([first, *rest])) == 200


async def test_a_download_cut_midway_is_retryable(loopback_env: AnthropicEnv, tmp_path: Path) -> None:
    provider = loopback_env.provider()
    done = await run_to_end(loopback_env, provider, (await send(provider, requests_chunk(tmp_path, "b/p/c", 200))).id)
    loopback_env.install(CutDownload(loopback_env.emulator_app, "/results", head=16_384))
    received: list[bytes] = []

    with pytest.raises(RetryableProviderError, match="interrupted") as caught:
        async for line in provider.result_lines(done):
            received.append(line)

    assert 0 < len(received) < 200 and isinstance(caught.value.__cause__, httpx2.HTTPError)
    assert calls("batches.results", "interrupted") >= 1


# -- errors of calls ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "status", "kind"), [("rate_limit", 429, "rate_limit_error"), ("overloaded", 529, "overloaded_error")]
)
@pytest.mark.parametrize("retry_after", [7.0, 0.05])
async def test_rate_limits_and_overload_say_when_to_come_back(
    env: AnthropicEnv, fault: str, status: int, kind: str, retry_after: float
) -> None:
    provider = env.provider(max_retries=0)
    setattr(env.emulator.faults, f"{fault}_next", 1)
    setattr(env.emulator.faults, f"{fault}_retry_after", retry_after)

    started = time.monotonic()
    with pytest.raises(RetryableProviderError) as caught:
        await provider.retrieve(MISSING_BATCH)

    assert time.monotonic() - started < 2  # no SDK retry, no wait
    assert caught.value.status_code == status and caught.value.retry_after == pytest.approx(retry_after)
    assert str(caught.value).startswith(f"anthropic: {status} {kind}: ")
    assert calls("batches.retrieve", str(status)) >= 1


async def test_short_overloads_are_absorbed_by_sdk_retries(env: AnthropicEnv, tmp_path: Path) -> None:
    provider = env.provider(max_retries=2)
    info = await send(provider, requests_chunk(tmp_path, "b/p/c", 2))
    env.emulator.faults.overloaded_next = 1
    env.emulator.faults.rate_limit_next = 1

    assert (await provider.retrieve(info.id)).id == info.id
    assert env.statuses("GET", f"{BATCHES}/{info.id}") == [429, 529, 200]


@pytest.mark.parametrize("status", [500, 504])
async def test_server_errors_are_retryable(env: AnthropicEnv, status: int) -> None:
    provider = env.provider(max_retries=0)
    env.emulator.faults.server_error_next = 1
    env.emulator.faults.server_error_status = status

    with pytest.raises(RetryableProviderError) as caught:
        await provider.list_models()

    assert caught.value.status_code == status and caught.value.retry_after is None
    assert isinstance(caught.value.__cause__, anthropic.InternalServerError)


async def test_a_slow_answer_times_out_as_retryable(loopback_env: AnthropicEnv, tmp_path: Path) -> None:
    provider = loopback_env.provider(timeout_seconds=0.1, max_retries=0)
    loopback_env.emulator.faults.slow_seconds = 0.4

    with pytest.raises(RetryableProviderError, match="timed out waiting for anthropic") as caught:
        await provider.retrieve(MISSING_BATCH)

    assert caught.value.status_code is None and isinstance(caught.value.__cause__, anthropic.APITimeoutError)
    assert calls("batches.retrieve", "timeout") >= 1
    loopback_env.emulator.faults.slow_seconds = 0
    assert await provider.find(requests_chunk(tmp_path, "b/p/c", 1), loopback_env.now()) == []  # still usable


async def test_connection_refused_is_retryable() -> None:
    provider = AnthropicBatchProvider.connect(
        api_key="k", base_url=f"http://127.0.0.1:{free_port()}", timeout_seconds=2, max_retries=0
    )
    try:
        with pytest.raises(RetryableProviderError, match="could not connect to anthropic") as caught:
            await provider.retrieve(MISSING_BATCH)
        assert caught.value.status_code is None
    finally:
        await provider.close()


async def test_unknown_ids_are_not_found(env: AnthropicEnv) -> None:
    provider = env.provider(max_retries=2)  # a 404 is never retried
    missing = ProviderBatchInfo(MISSING_BATCH, "ended", BatchEnd.COMPLETED)
    for call in (
        lambda: provider.retrieve(MISSING_BATCH),
        lambda: provider.cancel(MISSING_BATCH),
        lambda: lines_of(provider, missing),
    ):
        with pytest.raises(ProviderNotFound) as caught:
            await call()
        assert caught.value.status_code == 404 and "not_found_error" in str(caught.value)
    assert [status for _, _, status in env.request_log] == [404, 404, 404]


async def test_credentials_from_the_sdks_own_variables(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async for env in anthropic_env("loopback", request, api_key="sk-ant-from-env"):
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", env.base_url)
        provider = AnthropicBatchProvider.connect(api_key=None, base_url=None, timeout_seconds=5, max_retries=0)
        try:
            assert await provider.list_models()
            headers = env.emulator.request_headers[-1]
            assert "anthropic-version" in headers  # chosen by the SDK
        finally:
            await provider.close()
        wrong = AnthropicBatchProvider.connect(api_key="sk-ant-other", base_url=None, timeout_seconds=5, max_retries=0)
        try:
            with pytest.raises(PermanentProviderError) as refused:
                await wrong.list_models()
            assert refused.value.status_code == 401
        finally:
            await wrong.close()


# -- cleaning up -------------------------------------------------------------------------------------------
async def test_delete_results_deletes_an_ended_batch_quietly(env: AnthropicEnv, tmp_path: Path) -> None:
    provider = env.provider()
    done = await run_to_end(env, provider, (await send(provider, requests_chunk(tmp_path, "b/p/c", 2))).id)

    await provider.delete_results(done.id, done.file_ids())

    with pytest.raises(ProviderNotFound):
        await provider.retrieve(done.id)
    await provider.delete_results(done.id, [])  # gone already: fine
    assert env.statuses("DELETE", f"{BATCHES}/{done.id}") == [200, 404]
    env.emulator.faults.server_error_next = 1
    with pytest.raises(RetryableProviderError):
        await provider.delete_results(done.id, [])


async def test_a_batch_still_processing_is_not_deleted(
    asgi_env: AnthropicEnv, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider = asgi_env.provider()
    info = await send(provider, requests_chunk(tmp_path, "b/p/c", 2))

    with caplog.at_level(logging.WARNING, logger=anthropic_module.__name__):
        await provider.delete_results(info.id, [])

    assert (await provider.retrieve(info.id)).status == "in_progress"
    assert "cannot be deleted while it is in progress" in caplog.text


async def test_nothing_to_delete_without_a_batch_or_uploads(asgi_env: AnthropicEnv) -> None:
    provider = asgi_env.provider()
    await provider.delete_results(None, ["file-x"])
    await provider.delete_uploads("b/p/c", keep=[None])
    assert asgi_env.request_log == []


# -- models ------------------------------------------------------------------------------------------------
async def test_list_models_reads_every_page(env: AnthropicEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anthropic_module, "MODEL_PAGE_LIMIT", 1)
    provider = env.provider()

    assert await provider.list_models() == ["claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929"]
    assert len(env.statuses("GET", "/v1/models")) == 2  # the retired model is not listed


# -- what a batch says -------------------------------------------------------------------------------------
COUNTS = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}


def message_batch(status: str = "ended", cancel: str | None = None, **counts: int) -> MessageBatch:
    return MessageBatch.model_validate(
        {
            "id": "msgbatch_1",
            "type": "message_batch",
            "processing_status": status,
            "request_counts": {**COUNTS, **counts},
            "created_at": "2026-01-01T00:00:00.250000Z",
            "expires_at": "2026-01-02T00:00:00.250000Z",
            "cancel_initiated_at": cancel,
        }
    )


@pytest.mark.parametrize(
    ("batch", "ended", "counts"),
    [
        (message_batch("in_progress", processing=4), None, RequestCounts(4, 0, 0)),
        (message_batch("canceling", "2026-01-01T00:01:00Z", processing=4), None, RequestCounts(4, 0, 0)),
        (message_batch(succeeded=3, errored=1), BatchEnd.COMPLETED, RequestCounts(4, 3, 1)),
        (message_batch(errored=4), BatchEnd.COMPLETED, RequestCounts(4, 0, 4)),
        (message_batch(succeeded=1, expired=3), BatchEnd.COMPLETED, RequestCounts(4, 1, 3)),
        (message_batch(expired=4), BatchEnd.EXPIRED, RequestCounts(4, 0, 4)),
        (message_batch(cancel="2026-01-01T00:01:00Z", canceled=4), BatchEnd.CANCELLED, RequestCounts(4, 0, 4)),
        (message_batch(cancel="2026-01-01T00:01:00Z", succeeded=4), BatchEnd.CANCELLED, RequestCounts(4, 4, 0)),
    ],
)
def test_batch_info_in_our_words(batch: MessageBatch, ended: BatchEnd | None, counts: RequestCounts) -> None:
    info = batch_info(batch)
    assert (info.status, info.ended, info.request_counts) == (batch.processing_status, ended, counts)
    assert info.created_at == datetime(2026, 1, 1, 0, 0, 0, 250_000)


def test_naive_utc() -> None:
    assert naive_utc("2026-01-01T01:00:00.5+01:00") == datetime(2026, 1, 1, 0, 0, 0, 500_000)
    assert naive_utc(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(2026, 1, 1)
    assert naive_utc(None) is None


# -- map_sdk_error -----------------------------------------------------------------------------------------
def status_error(status: int, headers: dict[str, str] | None = None) -> anthropic.APIStatusError:
    request = httpx2.Request("GET", "https://api.anthropic.com/v1/messages/batches")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    body = {"type": "error", "error": {"type": "some_error", "message": "why"}, "request_id": "req_1"}
    return anthropic.APIStatusError(f"Error code: {status}", response=response, body=body)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        *[(status, RetryableProviderError) for status in (408, 409, 429, 500, 503, 504, 529)],
        *[(status, PermanentProviderError) for status in (400, 401, 402, 403, 413, 422)],
        (404, ProviderNotFound),
    ],
)
def test_map_sdk_error_by_status(status: int, kind: type[ProviderError]) -> None:
    mapped = map_sdk_error(status_error(status, {"retry-after": "3"}))
    assert type(mapped) is kind and mapped.status_code == status
    assert str(mapped) == f"anthropic: {status} some_error: why"
    if isinstance(mapped, RetryableProviderError):
        assert mapped.retry_after == 3.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry-after-ms": "1500", "retry-after": "9"}, 1.5), ({"retry-after": "soon"}, None), ({}, None)],
)
def test_map_sdk_error_reads_retry_after(headers: dict[str, str], expected: float | None) -> None:
    mapped = map_sdk_error(status_error(529, headers))
    assert isinstance(mapped, RetryableProviderError) and mapped.retry_after == expected


def test_map_sdk_error_of_transport_and_other_errors() -> None:
    request = httpx2.Request("GET", "https://api.anthropic.com/v1/messages/batches")
    assert type(map_sdk_error(anthropic.APITimeoutError(request))) is RetryableProviderError
    connection = map_sdk_error(anthropic.APIConnectionError(request=request))
    assert type(connection) is RetryableProviderError and "could not connect to anthropic" in str(connection)
    assert type(map_sdk_error(anthropic.AnthropicError("odd"))) is ProviderError
