"""service/client.py against the running service: a real uvicorn on 127.0.0.1 serving create_app() with its
workers and the built-in emulator, called the way the Django monolith calls it (synchronously)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_batch_client.client import (
    BatchWaitTimeout,
    LlmBatchClient,
    LlmBatchConnectionError,
    LlmBatchError,
    WebhookVerificationError,
    verify_webhook,
)

from groq_emulator import create_emulator_app
from service.app import create_app
from tests.conftest import fast_emulator_config
from tests.conftest import test_settings as make_settings
from tests.loopback import UvicornThread, free_port
from tests.payloads import pr_batch
from tests.webhooks.helpers import SECRET, webhook_settings
from tests.webhooks.receiver import Receiver

TOKEN = "monolith-token-for-tests"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UvicornThread]:
    settings = make_settings(f"sqlite:///{tmp_path}/llm_batch.db", tmp_path, api_tokens=[TOKEN], **webhook_settings())
    emulator = create_emulator_app(fast_emulator_config(processing_seconds=0.5))
    served = UvicornThread(create_app(settings, emulator=emulator), lifespan="on")
    served.start()
    yield served
    served.stop()


@pytest.fixture
def client(server: UvicornThread) -> Iterator[LlmBatchClient]:
    with LlmBatchClient(server.base_url, token=TOKEN, timeout=30) as llm_batch:
        yield llm_batch


def items(count: int, start: int = 1) -> list[dict[str, Any]]:
    payload: list[dict[str, Any]] = pr_batch(count, start=start)["items"]
    return payload


PARAMS = pr_batch(1)["params"]


def test_submit_wait_and_stream_every_result(client: LlmBatchClient) -> None:
    created = client.submit(items(1500), params=PARAMS, metadata={"source": "backfill"})
    assert created["status"] == "queued" and created["counts"]["total"] == 1500
    seen: list[str] = []
    finished = client.wait(
        created["id"], timeout=120, poll_interval=0.1, on_progress=lambda b: seen.append(b["status"])
    )
    assert finished["status"] == "completed" and finished["counts"]["pending"] == 0
    assert seen[-1] == "completed"
    assert finished["passes"][0]["model"] == "openai/gpt-oss-20b"

    rows = client.iter_results(created["id"])
    first = next(rows)  # a generator: rows arrive while the rest is still streaming
    custom_ids = [first["custom_id"], *(row["custom_id"] for row in rows)]
    assert custom_ids == [f"pr-{n}" for n in range(1, 1501)]
    failed = list(client.iter_results(created["id"], status="failed"))
    assert len(failed) == finished["counts"]["failed"]
    assert client.get(created["id"])["metadata"] == {"source": "backfill"}
    page = client.list(status="completed", limit=5)
    assert [batch["id"] for batch in page["data"]] == [created["id"]] and page["has_more"] is False
    assert client.item(created["id"], "pr-7")["custom_id"] == "pr-7"


def test_retry_sends_the_failed_items_again(client: LlmBatchClient) -> None:
    created = client.submit(items(30), fallback=False, params=PARAMS)
    finished = client.wait(created["id"], timeout=60, poll_interval=0.1)
    assert finished["counts"]["failed"] > 0, "the emulator fails some gpt-oss-20b outputs"
    retried = client.retry(created["id"], model="llama-3.3-70b-versatile", idempotency_key="retry-once")
    assert [p["kind"] for p in retried["passes"]] == ["primary", "retry"]
    again = client.retry(created["id"], model="llama-3.3-70b-versatile", idempotency_key="retry-once")
    assert again == retried
    assert len(client.wait(created["id"], timeout=60, poll_interval=0.1)["passes"]) == 2


def test_submit_with_an_idempotency_key_twice_creates_one_batch(client: LlmBatchClient) -> None:
    first = client.submit(items(2), idempotency_key="monolith-run-42")
    second = client.submit(items(2), idempotency_key="monolith-run-42")
    assert first == second
    assert len(client.list()["data"]) == 1
    with pytest.raises(LlmBatchError) as reused:
        client.submit(items(3), idempotency_key="monolith-run-42")
    assert reused.value.status == 422 and "different request" in reused.value.detail


def test_cancel(client: LlmBatchClient) -> None:
    created = client.submit(items(3))
    assert client.cancel(created["id"])["cancel_requested"] is True
    assert client.wait(created["id"], timeout=60, poll_interval=0.1)["status"] == "cancelled"
    with pytest.raises(LlmBatchError) as finished:
        client.cancel(created["id"])
    assert finished.value.status == 409


def test_errors_carry_the_problem_details(client: LlmBatchClient) -> None:
    with pytest.raises(LlmBatchError) as missing:
        client.get("lb_missing")
    error = missing.value
    assert (error.status, error.type, error.title) == (404, "urn:llm-batch:problem:not-found", "Not found")
    assert "lb_missing" in error.detail and error.problem["status"] == 404

    with pytest.raises(LlmBatchError) as invalid:
        client.submit([{"custom_id": "pr-1", "body": {"messages": []}}])
    assert invalid.value.status == 422 and "messages" in invalid.value.detail

    with pytest.raises(LlmBatchError) as limited:
        client.submit(items(2), metadata={f"key{n}": n for n in range(17)})
    assert limited.value.problem["limit"] == "MAX_METADATA_KEYS"


def test_wrong_token_is_a_401_error(server: UvicornThread) -> None:
    with LlmBatchClient(server.base_url, token="wrong") as client, pytest.raises(LlmBatchError) as refused:
        client.list()
    assert refused.value.status == 401 and refused.value.type == "urn:llm-batch:problem:unauthorized"


def test_unreachable_service_raises_a_connection_error() -> None:
    port = free_port()
    with LlmBatchClient(f"http://127.0.0.1:{port}", timeout=2) as client:
        with pytest.raises(LlmBatchConnectionError) as unreachable:
            client.get("lb_any")
        assert unreachable.value.status is None and isinstance(unreachable.value, LlmBatchError)
        with pytest.raises(LlmBatchConnectionError):
            list(client.iter_results("lb_any"))


def test_wait_gives_up_with_a_timeout_error(client: LlmBatchClient) -> None:
    created = client.submit(items(2))
    with pytest.raises(TimeoutError) as timed_out:
        client.wait(created["id"], timeout=0.05, poll_interval=0.01)
    assert isinstance(timed_out.value, BatchWaitTimeout)
    assert timed_out.value.batch is not None and timed_out.value.batch["status"] in ("queued", "running")


def test_webhook_to_the_monolith_verifies_with_verify_webhook(client: LlmBatchClient) -> None:
    with Receiver() as receiver:
        created = client.submit(items(2), callback_url=receiver.url())
        client.wait(created["id"], timeout=60, poll_interval=0.1)
        deadline = time.monotonic() + 30
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert receiver.received, "no webhook arrived"
        request = receiver.received[0]
    event = verify_webhook(request.headers, request.body, SECRET)
    assert event["type"] == "batch.completed" and event["data"]["id"] == created["id"]
    assert LlmBatchClient.verify_webhook(request.headers, request.body, SECRET) == event
    with pytest.raises(WebhookVerificationError):
        verify_webhook(request.headers, request.body.replace(b"completed", b"failed"), SECRET)
    with pytest.raises(WebhookVerificationError):
        verify_webhook({**request.headers, "webhook-id": "msg_forged"}, request.body, SECRET)
