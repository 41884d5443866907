"""AsyncLlmBatchClient against the running service: the sync client's methods, awaited, with the same answers."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from llm_batch_client import (
    AsyncLlmBatchClient,
    BatchOptions,
    LlmBatchClient,
    LlmBatchConnectionError,
    LlmBatchError,
    RetryPolicy,
)

from tests.cli.live_server import LiveService
from tests.client.conftest import PARAMS, TOKEN, items
from tests.client.network import FaultyProxy, WebhookReceiver
from tests.loopback import free_port
from tests.webhooks.helpers import SECRET

FAST: dict[str, Any] = {"timeout": 60, "poll_interval": 0.05, "max_poll_interval": 0.2}


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(getattr(cls, name))
        for name in dir(cls)
        if not name.startswith("_") and callable(getattr(cls, name)) and name not in ("close", "aclose")
    }


def test_the_async_client_has_the_sync_clients_methods_with_the_same_signatures() -> None:
    sync, asynchronous = public_methods(LlmBatchClient), public_methods(AsyncLlmBatchClient)
    assert sync == asynchronous
    assert {"submit", "estimate", "get", "list", "iter_results", "item", "retry", "cancel", "wait"} <= set(sync)
    assert {"redeliver_webhook", "models", "wait_for_webhook"} <= set(sync)
    pending = AsyncLlmBatchClient("http://127.0.0.1:9").get("lb_any")
    assert inspect.isawaitable(pending)
    pending.close()  # type: ignore[attr-defined]  (a coroutine, never awaited)
    assert LlmBatchClient.iter_results.__doc__ == AsyncLlmBatchClient.iter_results.__doc__
    assert LlmBatchClient.iter_results.__doc__ and "since_pass" in LlmBatchClient.iter_results.__doc__


async def test_an_async_generator_is_streamed_and_every_answer_matches_the_sync_clients(
    async_client: AsyncLlmBatchClient, client: LlmBatchClient
) -> None:
    async def rows() -> AsyncIterator[dict[str, Any]]:
        for item in items(120):
            yield item

    batch = await async_client.submit(rows(), BatchOptions(params=PARAMS, strict=False), fallback=True)
    assert batch.counts.total == 120
    polls: list[Any] = []
    done = await async_client.wait(batch.id, on_progress=polls.append, **FAST)
    assert done.finished and polls[-1] == done
    assert done == client.get(batch.id)

    paged = [row async for row in async_client.iter_results(batch.id, page_size=50)]
    streamed = [row async for row in async_client.iter_results(batch.id, ndjson=True)]
    assert paged == streamed == list(client.iter_results(batch.id))
    assert [row.metadata for row in paged] == [{"pk": n} for n in range(1, 121)]
    assert {row.batch_id for row in streamed} == {batch.id}
    first = await async_client.results_page(batch.id, limit=100)
    rest = await async_client.results_page(batch.id, first.next_cursor, limit=100)
    assert [*first.rows, *rest.rows] == paged and rest.next_cursor is None
    assert sum(row.cost_usd for row in paged) == done.cost.usd

    special = {**items(1)[0], "custom_id": "acme/payments#26313"}
    other = (await async_client.wait((await async_client.submit([special], BatchOptions(params=PARAMS))).id, **FAST)).id
    found = await async_client.item(other, "acme/payments#26313")
    assert found == client.item(other, "acme/payments#26313") and found.custom_id == "acme/payments#26313"
    assert [b.id async for b in async_client.list(page_size=1)] == [other, batch.id]
    assert (await async_client.models()) == client.models()


async def test_async_resends_a_lost_answer_with_the_same_key_and_retries(
    service: LiveService, client: LlmBatchClient
) -> None:
    limits = {"limits": httpx.Limits(max_keepalive_connections=0)}
    with FaultyProxy(service.server.port) as proxy:
        quick = RetryPolicy(backoff_seconds=0.02)
        async with AsyncLlmBatchClient(proxy.url, token=TOKEN, retry=quick, httpx_options=limits) as flaky:
            proxy.lose_answers = 1
            batch = await flaky.submit(items(40), BatchOptions(params=PARAMS, strict=False))
            assert proxy.connections == 2 and [b.id for b in client.list()] == [batch.id]
            done = client.wait(batch.id, **FAST)
            assert done.counts.failed > 0
            proxy.unavailable = 1
            retried = await flaky.retry(batch.id)
            assert proxy.connections == 4 and retried.passes[-1].kind == "retry"
            assert retried.passes[-1].items == done.counts.failed


async def test_async_wait_for_webhook_is_woken_by_an_asyncio_event(async_client: AsyncLlmBatchClient) -> None:
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()
    with WebhookReceiver(SECRET, on_event=lambda event: loop.call_soon_threadsafe(arrived.set)) as receiver:
        batch = await async_client.submit(items(3), BatchOptions(params=PARAMS, callback_url=receiver.url))
        started = loop.time()
        done = await async_client.wait_for_webhook(batch.id, arrived, poll_interval=30, timeout=60)
        assert done.status == "completed" and loop.time() - started < 20
        assert [event.batch.id for event in receiver.events] == [batch.id]
        callable_signal = await async_client.wait_for_webhook(batch.id, lambda: bool(receiver.events), timeout=5)
        # The same batch; only its webhook part may have moved on (the delivery is recorded after it arrived).
        assert replace(callable_signal, webhook=None) == replace(done, webhook=None)


async def test_async_errors_are_the_same_problems(async_client: AsyncLlmBatchClient) -> None:
    with pytest.raises(LlmBatchError) as missing:
        await async_client.get("lb_missing")
    assert missing.value.status == 404 and missing.value.type == "urn:llm-batch:problem:not-found"
    with pytest.raises(LlmBatchError) as invalid:
        await async_client.submit([{"custom_id": "a b", "body": {"messages": [{"role": "user", "content": "x"}]}}])
    assert invalid.value.status == 422 and invalid.value.field is not None and "custom_id" in invalid.value.field
    unreachable = AsyncLlmBatchClient(f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(sends=1), timeout=2)
    async with unreachable:
        with pytest.raises(LlmBatchConnectionError) as refused:
            await unreachable.get("lb_any")
        assert refused.value.reason == "connection refused" and not refused.value.reached
        with pytest.raises(LlmBatchConnectionError):
            [row async for row in unreachable.iter_results("lb_any", ndjson=True)]


async def test_async_set_budget_refuses_to_lower_a_running_batchs_budget(
    async_client: AsyncLlmBatchClient,
) -> None:
    batch = await async_client.submit(items(200), BatchOptions(params=PARAMS, budget_usd="1"))
    with pytest.raises(LlmBatchError) as lowered:
        await async_client.set_budget(batch.id, "0.5")
    if lowered.value.status != 409:  # it finished meanwhile: a finished batch takes any budget
        pytest.fail(f"expected 409, got {lowered.value.status}")
    assert lowered.value.field == "budget_usd"
    raised = await async_client.set_budget(batch.id, "2")
    assert raised.budget is not None and str(raised.budget.budget_usd) == "2"
