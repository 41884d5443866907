"""Injected transport faults, as the SDK sees them, and the /_emulator control routes."""

from __future__ import annotations

import time

import httpx
import pytest
from groq import APITimeoutError, InternalServerError, RateLimitError

from tests.groq_emulator.conftest import AsgiEmulator, LiveEmulator
from tests.groq_emulator.helpers import CHAT_URL, chat_line, to_jsonl

FILES = "/openai/v1/files"


def test_rate_limit_is_retried_with_retry_after(live_emulator: LiveEmulator) -> None:
    emulator = live_emulator.emulator
    emulator.faults.rate_limit_next = 2
    started = time.monotonic()
    listed = live_emulator.client.files.list()
    assert listed.data == []
    assert time.monotonic() - started < 2
    assert emulator.request_log == [("GET", FILES, 429), ("GET", FILES, 429), ("GET", FILES, 200)]
    assert [h["x-stainless-retry-count"] for h in emulator.request_headers] == ["0", "1", "2"]
    assert emulator.faults.rate_limit_next == 0


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried(live_emulator: LiveEmulator, status: int) -> None:
    emulator = live_emulator.emulator
    emulator.faults.server_error_next = 1
    emulator.faults.server_error_status = status
    data = to_jsonl([chat_line("a")])
    uploaded = live_emulator.client.files.create(file=("a.jsonl", data), purpose="batch")
    assert uploaded.id
    assert [s for _, _, s in emulator.request_log] == [status, 200]
    # a retried POST has no idempotency key: it really creates the file (once here, the 5xx stored nothing)
    assert len(emulator.files) == 1


def test_without_retries_errors_surface(live_emulator: LiveEmulator) -> None:
    emulator = live_emulator.emulator
    client = live_emulator.client.with_options(max_retries=0)
    emulator.faults.rate_limit_next = 1
    with pytest.raises(RateLimitError) as limited:
        client.batches.list()
    assert limited.value.status_code == 429
    assert limited.value.response.headers["retry-after"] == "0.05"
    body = limited.value.body
    assert isinstance(body, dict)
    assert body["error"]["code"] == "rate_limit_exceeded" and body["error"]["type"] == "tokens"

    emulator.faults.server_error_next = 1
    emulator.faults.server_error_status = 503
    with pytest.raises(InternalServerError) as broken:
        client.batches.list()
    assert broken.value.status_code == 503
    assert isinstance(broken.value.body, dict)
    assert broken.value.body["error"]["type"] == "internal_server_error"

    emulator.faults.server_error_next = 1
    emulator.faults.server_error_status = 500
    response = httpx.get(f"{live_emulator.base_url}{FILES}", headers={"Authorization": "Bearer k"})
    assert response.status_code == 500
    assert response.json() == {"error": {"message": "Internal Server Error", "type": "internal_server_error"}}


def test_slow_response_times_out(live_emulator: LiveEmulator) -> None:
    live_emulator.emulator.faults.slow_seconds = 0.5
    client = live_emulator.client.with_options(timeout=0.1, max_retries=0)
    with pytest.raises(APITimeoutError):
        client.files.list()
    live_emulator.emulator.faults.slow_seconds = 0
    assert live_emulator.client.files.list().data == []


def test_error_rate_is_seeded_and_mixed(live_emulator: LiveEmulator) -> None:
    emulator = live_emulator.emulator
    emulator.faults.error_rate = 0.5
    headers = {"Authorization": "Bearer k"}
    with httpx.Client(base_url=live_emulator.base_url, headers=headers) as raw:
        statuses = [raw.get(FILES).status_code for _ in range(60)]
    assert 15 <= statuses.count(200) <= 45
    assert 429 in statuses and 500 in statuses
    emulator.faults.error_rate = 0.2
    assert live_emulator.client.with_options(max_retries=6).files.list().data == []


async def test_async_client_retries_in_process(asgi_emulator: AsgiEmulator) -> None:
    emulator = asgi_emulator.emulator
    emulator.faults.rate_limit_next = 1
    emulator.faults.server_error_next = 1
    await asgi_emulator.client.batches.list()
    assert [s for _, _, s in emulator.request_log] == [429, 500, 200]
    assert emulator.request_headers[0]["x-stainless-async"].startswith("async")


def test_control_routes_over_http(live_emulator: LiveEmulator) -> None:
    base = live_emulator.base_url
    emulator = live_emulator.emulator
    set_faults = httpx.post(f"{base}/_emulator/faults", json={"rate_limit_next": 3, "error_rate": 0.25})
    assert set_faults.status_code == 200 and set_faults.json()["rate_limit_next"] == 3
    assert emulator.faults.rate_limit_next == 3 and emulator.faults.error_rate == 0.25
    assert httpx.get(f"{base}/_emulator/faults").json()["error_rate"] == 0.25
    assert httpx.post(f"{base}/_emulator/faults", json={"nope": 1}).status_code == 400
    assert httpx.post(f"{base}/_emulator/faults", json={"rate_limit_retry_after": 120}).status_code == 400
    assert httpx.post(f"{base}/_emulator/reset").json() == {"ok": True}
    assert emulator.faults.rate_limit_next == 0 and emulator.faults.error_rate == 0

    client = live_emulator.client
    uploaded = client.files.create(file=("a.jsonl", to_jsonl([chat_line("a")])), purpose="batch")
    for chunk in ("0", "1"):
        client.batches.create(
            input_file_id=uploaded.id or "",
            endpoint=CHAT_URL,
            completion_window="24h",
            metadata={"chunk": chunk},
        )
    listed = httpx.get(f"{base}/_emulator/batches").json()["data"]
    assert sorted(b["metadata"]["chunk"] for b in listed) == ["0", "1"]
    assert {b["status"] for b in listed} == {"validating"}
    assert httpx.post(f"{base}/_emulator/clock/advance", json={"seconds": 100}).status_code == 200
    assert {b["status"] for b in httpx.get(f"{base}/_emulator/batches").json()["data"]} == {"completed"}
    logged = httpx.get(f"{base}/_emulator/requests").json()["data"]
    assert [entry["path"] for entry in logged] == [FILES, "/openai/v1/batches", "/openai/v1/batches"]
