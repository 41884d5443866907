"""GroqBatchProvider against the Groq emulator through the real ``groq`` SDK.

Most tests run twice: in process (``httpx.ASGITransport``) and over a real uvicorn on 127.0.0.1. Timeouts,
streaming and broken downloads need real sockets and run over loopback only.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import re
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import groq
import httpx
import orjson
import pytest
from groq.types import BatchCancelResponse, BatchCreateResponse, BatchRetrieveResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.providers.groq import (
    GroqBatchProvider,
    PermanentProviderError,
    ProviderBatchInfo,
    ProviderError,
    ProviderNotFound,
    RequestCounts,
    RetryableProviderError,
    batch_info,
    map_sdk_error,
)
from tests.loopback import free_port
from tests.providers.conftest import GroqEnv

CHAT_URL = "/v1/chat/completions"
FILES = "/openai/v1/files"
BATCHES = "/openai/v1/batches"
ULID = "[0-9a-hjkmnp-tv-z]{26}"
MISSING_BATCH = "batch_" + "0" * 26
MISSING_FILE = "file_" + "0" * 26
_FILE_NUMBERS = itertools.count()
UNKNOWN_MODEL = "no-such/model"  # the emulator answers such lines 404 model_not_found: an error-file line


# -- helpers -------------------------------------------------------------------------------------
def chat_line(custom_id: str, model: str = "openai/gpt-oss-20b", **body: Any) -> dict[str, Any]:
    payload = {"model": model, "messages": [{"role": "user", "content": "Summarise: fix the cache."}], **body}
    return {"custom_id": custom_id, "method": "POST", "url": CHAT_URL, "body": payload}


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> bytes:
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    path.write_bytes(data)
    return data


async def upload(provider: GroqBatchProvider, tmp_path: Path, lines: list[dict[str, Any]]) -> str:
    path = tmp_path / f"input-{next(_FILE_NUMBERS)}.jsonl"
    write_jsonl(path, lines)
    return await provider.upload_jsonl(path, filename="input.jsonl")


async def run_to_end(env: GroqEnv, provider: GroqBatchProvider, batch_id: str) -> ProviderBatchInfo:
    """Advance the ManualClock one emulated second at a time until the batch is terminal."""
    for _ in range(100):
        info = await provider.retrieve(batch_id)
        if info.is_terminal:
            return info
        env.clock.advance(1)
    raise AssertionError(f"batch {batch_id} never finished")


async def read_lines(provider: GroqBatchProvider, file_id: str | None) -> list[bytes]:
    if file_id is None:
        return []
    return [line async for line in provider.iter_file_lines(file_id)]


def custom_ids(lines: list[bytes]) -> Counter[str]:
    return Counter(orjson.loads(line)["custom_id"] for line in lines)


# -- middlewares in front of the emulator --------------------------------------------------------
class HoldBackDownload:
    """Sends the first ``head`` bytes of a file download, then waits (up to 5 s) for ``release``."""

    def __init__(self, app: ASGIApp, head: int = 16_384) -> None:
        self.app, self.head = app, head
        self.release = threading.Event()  # set by the test, read in the server's thread
        self.released_in_time: bool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/content"):
            await self.app(scope, receive, send)
            return

        async def held(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                body = message.get("body", b"")
                await send({"type": "http.response.body", "body": body[: self.head], "more_body": True})
                self.released_in_time = await asyncio.to_thread(self.release.wait, 5.0)
                await send({"type": "http.response.body", "body": body[self.head :], "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, held)


class CutDownload:
    """Sends the first ``head`` bytes of a file download, then drops the connection."""

    def __init__(self, app: ASGIApp, head: int = 16_384) -> None:
        self.app, self.head = app, head

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/content"):
            await self.app(scope, receive, send)
            return

        async def cut(message: Message) -> None:
            if message["type"] == "http.response.body":
                await send({"type": "http.response.body", "body": message["body"][: self.head], "more_body": True})
                raise ConnectionResetError("emulated: connection lost mid-download")
            await send(message)

        await self.app(scope, receive, cut)


class BareListErrors:
    """Rewrites ``errors: {object, data: [...]}`` of a retrieved batch into the bare array of Groq's docs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.rewritten = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(f"{BATCHES}/"):
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}

        async def rewrite(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            batch = orjson.loads(message["body"])
            if isinstance(batch.get("errors"), dict):
                batch["errors"] = batch["errors"]["data"]
                self.rewritten += 1
            body = orjson.dumps(batch)
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)


# -- files ---------------------------------------------------------------------------------------
async def test_upload_jsonl_streams_the_file_and_the_emulator_holds_the_same_bytes(
    env: GroqEnv, tmp_path: Path
) -> None:
    provider = env.provider()
    path = tmp_path / "chunk.jsonl"
    lines = [chat_line(f"u-{i}", content="héllo ✓ 日本 " * 4) for i in range(1000)]
    data = write_jsonl(path, lines)
    assert len(data) > 3 * 65_536  # several of the 64 KiB parts httpx reads the file in

    file_id = await provider.upload_jsonl(path, filename="b1_p1_c0.jsonl")

    assert re.fullmatch(f"file_{ULID}", file_id)
    stored = env.emulator.files[file_id]
    assert stored.content == data
    assert (stored.filename, stored.purpose) == ("b1_p1_c0.jsonl", "batch")
    assert env.statuses("POST", FILES) == [200]


async def test_sdk_retry_of_an_upload_sends_the_whole_file_again(env: GroqEnv, tmp_path: Path) -> None:
    """The file handle is re-read from the start on the SDK's retry: the stored file is complete."""
    provider = env.provider(max_retries=2)
    path = tmp_path / "chunk.jsonl"
    data = write_jsonl(path, [chat_line(f"r-{i}") for i in range(2000)])
    env.emulator.faults.server_error_next = 1

    file_id = await provider.upload_jsonl(path, filename="chunk.jsonl")

    assert env.statuses("POST", FILES) == [500, 200]
    assert list(env.emulator.files) == [file_id]
    assert env.emulator.files[file_id].content == data


# -- batch lifecycle -----------------------------------------------------------------------------
async def test_create_and_retrieve_through_the_lifecycle(env: GroqEnv, tmp_path: Path) -> None:
    provider = env.provider()
    lines = [chat_line(f"req-{i}") for i in range(19)] + [chat_line("req-bad-model", model=UNKNOWN_MODEL)]
    file_id = await upload(provider, tmp_path, lines)
    metadata = {"llm_batch_chunk": "batch_1/pass_1/chunk_0", "attempt": "1"}

    info = await provider.create_batch(file_id, metadata=metadata)

    assert isinstance(info, ProviderBatchInfo)
    assert re.fullmatch(f"batch_{ULID}", info.id)
    assert (info.status, info.input_file_id, info.metadata) == ("validating", file_id, metadata)
    assert info.request_counts == RequestCounts(0, 0, 0)
    assert (info.output_file_id, info.error_file_id, info.errors, info.is_terminal) == (None, None, [], False)
    assert env.emulator.batches[info.id]["metadata"] == metadata

    history = [info]
    while not info.is_terminal:
        env.clock.advance(1)
        info = await provider.retrieve(info.id)
        history.append(info)
        assert info.metadata == metadata
        assert len(history) < 60

    assert list(dict.fromkeys(i.status for i in history)) == ["validating", "in_progress", "finalizing", "completed"]
    done = [i.request_counts.completed + i.request_counts.failed for i in history]
    assert done == sorted(done) and done[-1] == 20
    assert any(0 < d < 20 for d in done)  # counts advanced while in_progress
    assert all(i.request_counts.total == 20 for i in history if i.status != "validating")
    assert info.request_counts == RequestCounts(total=20, completed=19, failed=1)
    assert info.output_file_id and info.error_file_id

    ok = await read_lines(provider, info.output_file_id)
    bad = await read_lines(provider, info.error_file_id)
    assert all(isinstance(line, bytes) and not line.endswith((b"\n", b"\r")) for line in ok + bad)
    assert custom_ids(ok + bad) == Counter(line["custom_id"] for line in lines)
    assert (len(ok), len(bad)) == (19, 1)
    assert orjson.loads(bad[0])["response"]["status_code"] == 404
    # byte for byte what the emulator wrote, minus the line breaks
    assert b"".join(line + b"\n" for line in ok) == env.emulator.files[info.output_file_id].content
    assert b"".join(line + b"\n" for line in bad) == env.emulator.files[info.error_file_id].content


async def test_iter_file_lines_for_a_50000_line_batch(loopback_env: GroqEnv, tmp_path: Path) -> None:
    """The real per-file limit end to end: upload, run, then stream both result files over HTTP."""
    env, total = loopback_env, 50_000
    provider = env.provider(timeout_seconds=60)
    lines = [chat_line(f"r{i:05d}", model=UNKNOWN_MODEL if i % 10 == 0 else "openai/gpt-oss-20b") for i in range(total)]
    file_id = await upload(provider, tmp_path, lines)
    info = await provider.create_batch(file_id, metadata={"chunk": "big"})
    env.clock.advance(3600)
    info = await provider.retrieve(info.id)
    assert info.status == "completed"
    assert info.request_counts == RequestCounts(total=total, completed=45_000, failed=5_000)

    seen: Counter[str] = Counter()
    per_file = []
    for result_file in (info.output_file_id, info.error_file_id):
        assert result_file is not None
        count = 0
        async for line in provider.iter_file_lines(result_file):
            seen[orjson.loads(line)["custom_id"]] += 1
            count += 1
        per_file.append(count)

    assert per_file == [45_000, 5_000]
    assert len(seen) == total and set(seen.values()) == {1}
    assert set(seen) == {line["custom_id"] for line in lines}


async def test_iter_file_lines_yields_before_the_download_is_complete(loopback_env: GroqEnv, tmp_path: Path) -> None:
    """The server holds back everything after the first 16 KiB until the test has seen a line."""
    provider = loopback_env.provider()
    path = tmp_path / "big.jsonl"
    data = write_jsonl(path, [chat_line(f"s-{i}") for i in range(4000)])
    file_id = await provider.upload_jsonl(path, filename="big.jsonl")
    holder = HoldBackDownload(loopback_env.emulator_app)
    loopback_env.install(holder)

    received: list[bytes] = []
    async for line in provider.iter_file_lines(file_id):
        if not received:
            holder.release.set()
        received.append(line)

    assert holder.released_in_time is True, "the first line only arrived after the whole body"
    assert received == data.splitlines()


async def test_a_download_cut_midway_is_retryable(loopback_env: GroqEnv, tmp_path: Path) -> None:
    provider = loopback_env.provider()
    path = tmp_path / "big.jsonl"
    data = write_jsonl(path, [chat_line(f"c-{i}") for i in range(2000)])
    file_id = await provider.upload_jsonl(path, filename="big.jsonl")
    loopback_env.install(CutDownload(loopback_env.emulator_app))

    received: list[bytes] = []
    with pytest.raises(RetryableProviderError, match="interrupted") as caught:
        async for line in provider.iter_file_lines(file_id):
            received.append(line)

    assert isinstance(caught.value.__cause__, httpx.HTTPError)
    assert 0 < len(received) < len(data.splitlines())


async def test_iter_file_lines_splits_on_newline_only(env: GroqEnv, tmp_path: Path) -> None:
    """JSON allows U+2028, U+2029 and U+0085 unescaped inside strings; Groq echoes custom_id verbatim."""
    provider = env.provider()
    ids = ["para\u2028graph", "next\u0085line", "sep\u2029aration", "plain"]
    file_id = await upload(provider, tmp_path, [chat_line(custom_id) for custom_id in ids])
    info = await run_to_end(env, provider, (await provider.create_batch(file_id, metadata={})).id)
    assert info.status == "completed" and info.output_file_id

    ok = await read_lines(provider, info.output_file_id)

    assert b"".join(line + b"\n" for line in ok) == env.emulator.files[info.output_file_id].content
    assert custom_ids(ok) == Counter(ids)


async def test_iter_file_lines_of_an_unknown_file_is_not_found(env: GroqEnv) -> None:
    provider = env.provider()
    with pytest.raises(ProviderNotFound) as caught:
        await read_lines(provider, MISSING_FILE)
    assert caught.value.status_code == 404


# -- listing and reconciliation ------------------------------------------------------------------
async def test_iter_batches_follows_the_cursor_and_find_batch_uses_metadata(env: GroqEnv, tmp_path: Path) -> None:
    provider = env.provider()
    file_id = await upload(provider, tmp_path, [chat_line("only")])
    created = [(await provider.create_batch(file_id, metadata={"chunk": f"k-{i}"})).id for i in range(230)]

    listed = [info async for info in provider.iter_batches()]

    assert [info.id for info in listed] == created[::-1]  # newest first, no gaps, no repeats
    assert env.statuses("GET", BATCHES) == [200, 200, 200]  # pages of 100, 100 and 30
    assert listed[-1].metadata == {"chunk": "k-0"} and listed[-1].status == "validating"

    found = await provider.find_batch("chunk", "k-3")  # on the last page
    assert found is not None and found.id == created[3] and found.metadata == {"chunk": "k-3"}
    before = len(env.statuses("GET", BATCHES))
    assert await provider.find_batch("chunk", "k-missing") is None
    assert len(env.statuses("GET", BATCHES)) - before == 3  # every page was looked at
    assert await provider.find_batch("other-key", "k-3") is None


async def test_iter_batches_of_an_empty_account(env: GroqEnv) -> None:
    provider = env.provider()
    assert [info async for info in provider.iter_batches()] == []
    assert await provider.find_batch("chunk", "k-0") is None
    assert env.statuses("GET", BATCHES) == [200, 200]


# -- cancel --------------------------------------------------------------------------------------
async def test_cancel_goes_through_cancelling_and_keeps_partial_output(env: GroqEnv, tmp_path: Path) -> None:
    provider = env.provider()
    lines = [chat_line(f"c-{i}") for i in range(20)]
    file_id = await upload(provider, tmp_path, lines)
    info = await provider.create_batch(file_id, metadata={"chunk": "to-cancel"})
    env.clock.advance(7)  # 2 s validating, then half of the 10 s of processing
    mid = await provider.retrieve(info.id)
    assert mid.status == "in_progress" and 0 < mid.request_counts.completed < 20

    cancelling = await provider.cancel(info.id)

    assert cancelling.status == "cancelling" and not cancelling.is_terminal
    assert cancelling.metadata == {"chunk": "to-cancel"}
    assert (await provider.retrieve(info.id)).status == "cancelling"
    env.clock.advance(5)
    final = await provider.retrieve(info.id)
    assert final.status == "cancelled" and final.is_terminal
    assert final.request_counts.completed + final.request_counts.failed == 20

    ok = await read_lines(provider, final.output_file_id)
    bad = await read_lines(provider, final.error_file_id)
    assert custom_ids(ok + bad) == Counter(line["custom_id"] for line in lines)
    assert len(ok) == final.request_counts.completed == mid.request_counts.completed
    never_run = [orjson.loads(line) for line in bad]
    assert never_run and all(line["error"]["code"] == "batch_cancelled" for line in never_run)

    with pytest.raises(PermanentProviderError) as caught:  # cancelling a finished batch: 400
        await provider.cancel(info.id)
    assert caught.value.status_code == 400 and not isinstance(caught.value, RetryableProviderError)


# -- errors of a batch ---------------------------------------------------------------------------
async def test_a_failed_batch_exposes_its_errors(env: GroqEnv, tmp_path: Path) -> None:
    provider = env.provider()
    file_id = await upload(provider, tmp_path, [chat_line("a"), chat_line("b")])
    env.emulator.faults.fail_next_batches = 1
    info = await run_to_end(env, provider, (await provider.create_batch(file_id, metadata={})).id)

    assert info.status == "failed" and info.is_terminal
    assert (info.output_file_id, info.error_file_id) == (None, None)
    assert info.errors == [
        {
            "code": "validation_failed",
            "message": "The input file could not be validated. Please try again.",
            "param": None,
            "line": None,
        }
    ]

    bad_line = {**chat_line("b"), "method": "GET"}
    file_id = await upload(provider, tmp_path, [chat_line("a"), bad_line])
    info = await run_to_end(env, provider, (await provider.create_batch(file_id, metadata={})).id)
    assert info.status == "failed"
    assert info.errors == [
        {
            "code": "invalid_method",
            "message": "Invalid value: 'GET'. Supported values are: 'POST'",
            "param": "method",
            "line": 2,
        }
    ]


async def test_errors_as_a_bare_array_on_the_wire(env: GroqEnv, tmp_path: Path) -> None:
    """Groq's docs show ``errors`` as a bare array; the SDK parses it leniently and so must we."""
    provider = env.provider()
    bad_line = {**chat_line("b"), "method": "GET"}
    file_id = await upload(provider, tmp_path, [chat_line("a"), bad_line, chat_line("c")])
    batch_id = (await provider.create_batch(file_id, metadata={})).id
    rewriter = BareListErrors(env.emulator_app)
    env.install(rewriter)

    info = await run_to_end(env, provider, batch_id)

    assert rewriter.rewritten == 1  # the failed batch really came as a bare array
    assert info.status == "failed" and len(info.errors) == 1
    expected = {"code": "invalid_method", "param": "method", "line": 2}
    assert info.errors[0].items() >= expected.items()
    assert "GET" in info.errors[0]["message"]


ERROR = {"code": "invalid_method", "message": "Invalid value: 'GET'.", "param": "method", "line": 4}
BATCH = {
    "id": "batch_01jh6xa7reempvjyh6n3yst2zw",
    "object": "batch",
    "endpoint": CHAT_URL,
    "input_file_id": "file_01jh6x76wtemjr74t1fh0faj5t",
    "completion_window": "24h",
    "status": "completed",
    "created_at": 1736472600,
    "output_file_id": "file_out",
    "error_file_id": "file_err",
    "request_counts": {"total": 3, "completed": 2, "failed": 1},
    "metadata": {"chunk": "k-1"},
}


@pytest.mark.parametrize("model", [BatchRetrieveResponse, BatchCreateResponse, BatchCancelResponse])
@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        pytest.param({"object": "list", "data": [ERROR]}, [ERROR], id="sdk-object"),
        pytest.param([ERROR], [ERROR], id="bare-array"),
        pytest.param(None, [], id="null"),
        pytest.param({"object": "list", "data": None}, [], id="object-without-data"),
    ],
)
def test_batch_info_accepts_both_error_shapes(model: Any, errors: Any, expected: list[dict[str, Any]]) -> None:
    raw = {**BATCH, "errors": errors}
    builds = [model.construct(**raw)]
    if not isinstance(errors, list):  # pydantic validation rejects the bare array; construct() keeps it
        builds.append(model.model_validate(raw))
    for batch in builds:
        info = batch_info(batch)
        assert [{k: e[k] for k in ERROR} for e in info.errors] == expected
        assert info.request_counts == RequestCounts(total=3, completed=2, failed=1)
        assert (info.status, info.is_terminal, info.metadata) == ("completed", True, {"chunk": "k-1"})
        assert (info.output_file_id, info.error_file_id) == ("file_out", "file_err")


def test_batch_info_of_a_minimal_batch() -> None:
    required: dict[str, Any] = {k: BATCH[k] for k in ("id", "object", "endpoint", "input_file_id", "completion_window")}
    info = batch_info(BatchRetrieveResponse.construct(**required, status="validating", created_at=1))
    assert info.request_counts == RequestCounts(0, 0, 0)
    assert (info.metadata, info.errors, info.output_file_id, info.is_terminal) == ({}, [], None, False)


# -- errors of calls, over the wire ----------------------------------------------------------------
@pytest.mark.parametrize("retry_after", [7.0, 0.05])
async def test_rate_limit_without_sdk_retries(env: GroqEnv, tmp_path: Path, retry_after: float) -> None:
    provider = env.provider(max_retries=0)
    batch_id = (await provider.create_batch(await upload(provider, tmp_path, [chat_line("a")]), metadata={})).id
    env.emulator.faults.rate_limit_next = 1
    env.emulator.faults.rate_limit_retry_after = retry_after

    started = time.monotonic()
    with pytest.raises(RetryableProviderError) as caught:
        await provider.retrieve(batch_id)

    assert time.monotonic() - started < 2  # no SDK retry, no wait
    assert caught.value.status_code == 429
    assert caught.value.retry_after == pytest.approx(retry_after)
    assert "rate_limit_exceeded" in str(caught.value)
    assert isinstance(caught.value.__cause__, groq.RateLimitError)
    assert env.statuses("GET", f"{BATCHES}/{batch_id}") == [429]


async def test_short_rate_limits_are_absorbed_by_sdk_retries(env: GroqEnv, tmp_path: Path) -> None:
    provider = env.provider(max_retries=2)
    batch_id = (await provider.create_batch(await upload(provider, tmp_path, [chat_line("a")]), metadata={})).id
    env.emulator.faults.rate_limit_next = 2
    env.emulator.faults.rate_limit_retry_after = 0.05

    info = await provider.retrieve(batch_id)

    assert info.id == batch_id
    assert env.statuses("GET", f"{BATCHES}/{batch_id}") == [429, 429, 200]


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(env: GroqEnv, status: int) -> None:
    provider = env.provider(max_retries=0)
    env.emulator.faults.server_error_next = 1
    env.emulator.faults.server_error_status = status

    with pytest.raises(RetryableProviderError) as caught:
        await provider.retrieve(MISSING_BATCH)

    assert caught.value.status_code == status and caught.value.retry_after is None
    assert isinstance(caught.value.__cause__, groq.InternalServerError)
    assert env.statuses("GET", f"{BATCHES}/{MISSING_BATCH}") == [status]


async def test_a_slow_response_times_out_as_retryable(loopback_env: GroqEnv) -> None:
    """Over real sockets only: httpx.ASGITransport does not enforce timeouts."""
    provider = loopback_env.provider(timeout_seconds=0.1, max_retries=0)
    loopback_env.emulator.faults.slow_seconds = 0.4

    with pytest.raises(RetryableProviderError, match="timed out") as caught:
        await provider.retrieve(MISSING_BATCH)

    assert caught.value.status_code is None
    assert isinstance(caught.value.__cause__, groq.APITimeoutError)
    loopback_env.emulator.faults.slow_seconds = 0
    assert [info async for info in provider.iter_batches()] == []  # the provider is still usable


async def test_connection_refused_is_retryable() -> None:
    port = free_port()
    provider = GroqBatchProvider.connect(
        api_key="k", base_url=f"http://127.0.0.1:{port}", timeout_seconds=2, max_retries=0
    )
    try:
        with pytest.raises(RetryableProviderError, match="could not connect") as caught:
            await provider.retrieve(MISSING_BATCH)
        assert caught.value.status_code is None
    finally:
        await provider.close()


async def test_unknown_ids_are_not_found(env: GroqEnv) -> None:
    provider = env.provider(max_retries=2)  # 404 is never retried
    for call in (
        lambda: provider.retrieve(MISSING_BATCH),
        lambda: provider.cancel(MISSING_BATCH),
        lambda: provider.delete_file(MISSING_FILE),
    ):
        with pytest.raises(ProviderNotFound) as caught:
            await call()
        assert isinstance(caught.value, PermanentProviderError)
        assert not isinstance(caught.value, RetryableProviderError)
        assert caught.value.status_code == 404 and "not found" in str(caught.value)
    assert [s for _, _, s in env.emulator.request_log] == [404, 404, 404]


async def test_requests_the_provider_refuses_are_permanent(env: GroqEnv, tmp_path: Path) -> None:
    file_id = await upload(env.provider(), tmp_path, [chat_line("a")])

    with pytest.raises(PermanentProviderError) as window:
        await env.provider(completion_window="1h", max_retries=2).create_batch(file_id, metadata={})
    assert type(window.value) is PermanentProviderError
    assert window.value.status_code == 400 and "completion_window" in str(window.value)

    with pytest.raises(PermanentProviderError) as unknown_file:
        await env.provider(max_retries=2).create_batch(MISSING_FILE, metadata={})
    assert unknown_file.value.status_code == 404
    assert not isinstance(unknown_file.value, RetryableProviderError)

    path = tmp_path / "input.csv"
    write_jsonl(path, [chat_line("a")])
    with pytest.raises(PermanentProviderError) as bad_name:
        await env.provider().upload_jsonl(path, filename="input.csv")
    assert bad_name.value.status_code == 400 and "jsonl" in str(bad_name.value)

    assert env.emulator.batches == {}
    assert env.statuses("POST", BATCHES) == [400, 404]  # each tried once


@pytest.mark.parametrize("fault", ["server_error", "rate_limit"])
async def test_create_batch_makes_exactly_one_attempt(env: GroqEnv, tmp_path: Path, fault: str) -> None:
    """No idempotency key on Groq: a blind retry could create a second batch. The caller reconciles by
    metadata (find_batch) instead, so create_batch must not let the SDK retry even with max_retries=2."""
    provider = env.provider(max_retries=2)
    file_id = await upload(provider, tmp_path, [chat_line("a")])
    faults = env.emulator.faults
    faults.rate_limit_retry_after = 0.01
    if fault == "server_error":
        faults.server_error_next = 1
    else:
        faults.rate_limit_next = 1

    with pytest.raises(RetryableProviderError) as caught:
        await provider.create_batch(file_id, metadata={"chunk": "once"})

    assert caught.value.status_code == (500 if fault == "server_error" else 429)
    assert env.statuses("POST", BATCHES) == [caught.value.status_code]
    assert env.emulator.batches == {}
    assert await provider.find_batch("chunk", "once") is None  # what the caller checks before trying again

    # the caller's own next attempt creates it once; the same provider's other calls do get SDK retries
    info = await provider.create_batch(file_id, metadata={"chunk": "once"})
    assert list(env.emulator.batches) == [info.id]
    faults.rate_limit_next = 1
    assert (await provider.retrieve(info.id)).metadata == {"chunk": "once"}
    assert env.statuses("GET", f"{BATCHES}/{info.id}") == [429, 200]


# -- map_sdk_error ---------------------------------------------------------------------------------
def status_error(status: int, headers: dict[str, str] | None = None, body: object = None) -> groq.APIStatusError:
    request = httpx.Request("GET", "https://api.groq.com/openai/v1/batches")
    response = httpx.Response(status, headers=headers or {}, request=request)
    error_class = groq.RateLimitError if status == 429 else groq.APIStatusError
    return error_class(f"Error code: {status}", response=response, body=body)


def http_date(offset_seconds: float) -> str:
    return email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=offset_seconds), usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"retry-after-ms": "1500"}, 1.5, id="retry-after-ms"),
        pytest.param({"retry-after-ms": "250", "retry-after": "9"}, 0.25, id="ms-wins"),
        pytest.param({"retry-after-ms": "soon", "retry-after": "9"}, 9.0, id="bad-ms-falls-back"),
        pytest.param({"retry-after": "2.5"}, 2.5, id="seconds"),
        pytest.param({"retry-after": "-3"}, 0.0, id="negative-seconds"),
        pytest.param({"retry-after": http_date(-3600)}, 0.0, id="http-date-past"),
        pytest.param({}, None, id="none"),
    ],
)
def test_map_sdk_error_reads_retry_after(headers: dict[str, str], expected: float | None) -> None:
    mapped = map_sdk_error(status_error(429, headers))
    assert isinstance(mapped, RetryableProviderError)
    assert mapped.status_code == 429
    assert mapped.retry_after == (pytest.approx(expected) if expected is not None else None)


def test_map_sdk_error_reads_an_http_date_retry_after() -> None:
    mapped = map_sdk_error(status_error(429, {"retry-after": http_date(30)}))
    assert isinstance(mapped, RetryableProviderError)
    assert mapped.retry_after == pytest.approx(30, abs=1.5)  # HTTP dates have whole seconds


def test_map_sdk_error_ignores_an_unparseable_retry_after() -> None:
    mapped = map_sdk_error(status_error(429, {"retry-after": "soon"}))
    assert isinstance(mapped, RetryableProviderError) and mapped.retry_after is None


def test_map_sdk_error_clamps_a_negative_retry_after_ms() -> None:
    mapped = map_sdk_error(status_error(429, {"retry-after-ms": "-200"}))
    assert isinstance(mapped, RetryableProviderError) and mapped.retry_after == 0.0


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_map_sdk_error_retryable_statuses(status: int) -> None:
    mapped = map_sdk_error(status_error(status))
    assert type(mapped) is RetryableProviderError and mapped.status_code == status


@pytest.mark.parametrize("status", [400, 401, 403, 413, 422, 424, 498])
def test_map_sdk_error_permanent_statuses(status: int) -> None:
    mapped = map_sdk_error(status_error(status))
    assert type(mapped) is PermanentProviderError and mapped.status_code == status


def test_map_sdk_error_not_found_and_transport_errors() -> None:
    assert type(map_sdk_error(status_error(404))) is ProviderNotFound
    request = httpx.Request("GET", "https://api.groq.com/openai/v1/batches")
    timeout = map_sdk_error(groq.APITimeoutError(request=request))
    connection = map_sdk_error(groq.APIConnectionError(request=request))
    assert type(timeout) is RetryableProviderError and timeout.status_code is None
    assert type(connection) is RetryableProviderError and "could not connect" in str(connection)
    assert type(map_sdk_error(ValueError("odd"))) is ProviderError


def test_map_sdk_error_message_comes_from_the_error_body() -> None:
    wrapped = {"error": {"message": "Invalid value: '1h'", "type": "invalid_request_error", "code": "bad"}}
    assert str(map_sdk_error(status_error(400, body=wrapped))) == "400 bad: Invalid value: '1h'"
    assert str(map_sdk_error(status_error(400, body={"message": "no code"}))) == "400: no code"
    assert str(map_sdk_error(status_error(400))) == "400: Error code: 400"
