"""LlmBatchClient against the running service (uvicorn on 127.0.0.1, its workers on the built-in emulator),
called the way the Django monolith calls it."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
from llm_batch_client import (
    Batch,
    BatchOptions,
    BatchWaitTimeout,
    LlmBatchClient,
    LlmBatchConnectionError,
    LlmBatchError,
    RetryPolicy,
    cost_report,
)
from llm_batch_client.text import usd

from tests.cli.live_server import LiveService
from tests.client.conftest import PARAMS, TOKEN, items
from tests.client.network import FaultyProxy, WebhookReceiver
from tests.loopback import free_port
from tests.webhooks.helpers import SECRET

FAST: dict[str, Any] = {"timeout": 60, "poll_interval": 0.05, "max_poll_interval": 0.2}
QUICK_RESENDS = RetryPolicy(backoff_seconds=0.02)
# A new connection per request, so the proxy's faults hit the request the test means.
ONE_CONNECTION_PER_REQUEST: dict[str, Any] = {"limits": httpx.Limits(max_keepalive_connections=0)}
# One tier, best-effort JSON on gpt-oss-20b: the emulator fails about a fifth of the items.
FLAKY = BatchOptions(params=PARAMS, strict=False)


def test_submit_wait_and_read_every_result_page_by_page_with_exact_costs(client: LlmBatchClient) -> None:
    batch = client.submit(items(250), BatchOptions(params=PARAMS, strict=False, metadata={"run": 42}), fallback=True)
    assert isinstance(batch, Batch) and batch.status == "queued" and batch.counts.total == 250
    assert batch.fallback and [tier["model"] for tier in batch.cascade] == ["openai/gpt-oss-20b", "openai/gpt-oss-120b"]
    polls: list[Batch] = []
    done = client.wait(batch.id, on_progress=polls.append, **FAST)
    assert done.status == "completed" and done.finished and polls[-1] == done and done.metadata == {"run": 42}
    for before, after in itertools.pairwise(polls):  # the issue: counts went backwards mid-cascade
        assert after.counts.succeeded >= before.counts.succeeded and after.counts.failed >= before.counts.failed

    rows = list(client.iter_results(batch.id, page_size=100))  # three pages, followed through next_cursor
    assert [row.custom_id for row in rows] == [f"pr-{n}" for n in range(1, 251)]
    assert [row.metadata for row in rows] == [{"pk": n} for n in range(1, 251)]
    assert list(client.iter_results(batch.id, ndjson=True)) == rows
    assert {row.status for row in rows} <= {"succeeded", "failed"}
    assert sum(row.status == "succeeded" for row in rows) == done.counts.succeeded

    assert all(isinstance(row.cost_usd, Decimal) for row in rows) and done.cost.usd > 0
    assert sum(row.cost_usd for row in rows) == done.cost.usd  # exact: no float rounded row by row
    assert sum(p.cost.usd for p in done.passes) == done.cost.usd == sum(t.cost.usd for t in done.tiers)
    assert all(row.cost_usd == sum(step.cost_usd for step in row.lineage) for row in rows)
    assert done.cost.input_tokens == sum(p.cost.input_tokens for p in done.passes)

    report = cost_report(done)
    assert f"Total: {usd(done.cost.usd)}" in report and "Saved by reuse: $0.00" in report
    for p in done.passes:
        line = next(line for line in report.splitlines() if line.startswith(f"{p.number} "))
        assert p.model in line and line.endswith(usd(p.cost.usd)) and p.kind in line
    total = next(line for line in report.splitlines() if line.startswith("total"))
    assert total.endswith(usd(done.cost.usd)) and "one result per item" in total


def test_an_item_whose_custom_id_has_a_slash_and_a_hash_is_found(client: LlmBatchClient) -> None:
    ids = ["acme/payments#26313", "acme/web#1", "pr:7.v2_x-y"]
    submitted = [{**item, "custom_id": custom_id} for item, custom_id in zip(items(3), ids, strict=True)]
    batch = client.wait(client.submit(submitted, BatchOptions(params=PARAMS)).id, **FAST)
    for number, custom_id in enumerate(ids, start=1):
        found = client.item(batch.id, custom_id)
        assert (found.custom_id, found.result.custom_id, found.metadata) == (custom_id, custom_id, {"pk": number})
        assert found.attempts and found.attempts[0].pass_number == 1 and found.body["messages"]
    # What the unencoded path asked for (the bug): the part before "#", which is no item.
    with pytest.raises(LlmBatchError) as missing:
        client.item(batch.id, "acme/payments")
    assert missing.value.status == 404


def test_list_follows_next_cursor_over_every_page_and_filters_by_status(client: LlmBatchClient) -> None:
    created = [client.submit(items(1, start=n), BatchOptions(params=PARAMS)).id for n in range(4)]
    cancelled = client.submit(items(30), BatchOptions(params=PARAMS)).id
    assert client.cancel(cancelled).cancel_requested  # at once: the emulator takes longer than this to finish it
    assert [batch.id for batch in client.list(page_size=2)] == [cancelled, *created[::-1]]  # newest first, 3 pages
    for batch_id in [*created, cancelled]:
        client.wait(batch_id, **FAST)
    assert [batch.id for batch in client.list(status="completed", page_size=1)] == created[::-1]
    assert [batch.id for batch in client.list(status="cancelled")] == [cancelled]
    with pytest.raises(LlmBatchError) as finished:
        client.cancel(cancelled)
    assert finished.value.status == 409


def test_a_generator_of_20000_items_is_streamed_as_ndjson_while_it_is_read(service: LiveService) -> None:
    at_item_15000: dict[str, int] = {}

    with FaultyProxy(service.server.port) as proxy, LlmBatchClient(proxy.url, token=TOKEN, timeout=60) as client:

        def rows() -> Any:
            for n in range(20_000):
                if n == 15_000:  # the body sent so far has reached the service before the generator is done
                    deadline = time.monotonic() + 5
                    while proxy.bytes_from_clients < 1_000_000 and time.monotonic() < deadline:
                        time.sleep(0.01)
                    at_item_15000["bytes"] = proxy.bytes_from_clients
                body = {"messages": [{"role": "user", "content": f"Summarise change {n}."}]}
                yield {"custom_id": f"change-{n}", "body": body, "metadata": {"pk": n}}

        batch = client.submit(rows(), BatchOptions(model="openai/gpt-oss-20b", metadata={"kind": "backfill"}))
        assert batch.counts.total == 20_000 and batch.metadata == {"kind": "backfill"}
        assert at_item_15000["bytes"] >= 1_000_000, "the body was held back until the generator was exhausted"
        assert proxy.bytes_from_clients > at_item_15000["bytes"]
        found = client.item(batch.id, "change-19999")
        assert found.metadata == {"pk": 19999}
        client.cancel(batch.id)


def test_a_lost_answer_is_sent_again_with_the_same_idempotency_key(
    service: LiveService, client: LlmBatchClient
) -> None:
    with (
        FaultyProxy(service.server.port) as proxy,
        LlmBatchClient(proxy.url, token=TOKEN, retry=QUICK_RESENDS, httpx_options=ONE_CONNECTION_PER_REQUEST) as flaky,
    ):
        proxy.lose_answers = 1
        batch = flaky.submit(items(40), FLAKY)
        assert proxy.connections == 2
        assert [b.id for b in client.list()] == [batch.id], "the lost answer's batch and the resent one are one"

        done = client.wait(batch.id, **FAST)
        assert done.counts.failed > 0, "the emulator fails some best-effort outputs of gpt-oss-20b"
        proxy.lose_answers = 1
        retried = flaky.retry(batch.id, model="openai/gpt-oss-120b")
        assert proxy.connections == 4
        assert [p.kind for p in client.get(batch.id).passes].count("retry") == 1
        assert retried.passes[-1].kind == "retry"


def test_503_with_retry_after_is_waited_out_and_resends_are_bounded(
    service: LiveService, client: LlmBatchClient
) -> None:
    with FaultyProxy(service.server.port) as proxy:
        with LlmBatchClient(
            proxy.url, token=TOKEN, retry=QUICK_RESENDS, httpx_options=ONE_CONNECTION_PER_REQUEST
        ) as flaky:
            proxy.unavailable = 2
            batch = flaky.submit(items(2), BatchOptions(params=PARAMS))
            assert proxy.connections == 3 and [b.id for b in client.list()] == [batch.id]

            proxy.unavailable = 1  # a POST without an Idempotency-Key is never sent twice
            with pytest.raises(LlmBatchError) as busy:
                flaky.cancel(batch.id)
            assert busy.value.status == 503 and proxy.connections == 4

        with LlmBatchClient(
            proxy.url,
            token=TOKEN,
            retry=RetryPolicy(sends=3, backoff_seconds=0.01),
            httpx_options=ONE_CONNECTION_PER_REQUEST,
        ) as bounded:
            proxy.unavailable = 10
            with pytest.raises(LlmBatchError) as still_busy:
                bounded.get(batch.id)
            assert still_busy.value.status == 503 and still_busy.value.retry_after == 0
            assert proxy.connections == 4 + 3


def test_a_read_generator_cannot_be_sent_again_and_the_error_gives_the_key(
    service: LiveService, client: LlmBatchClient
) -> None:
    with (
        FaultyProxy(service.server.port) as proxy,
        LlmBatchClient(proxy.url, token=TOKEN, retry=QUICK_RESENDS, httpx_options=ONE_CONNECTION_PER_REQUEST) as flaky,
    ):
        proxy.lose_answers = 1
        with pytest.raises(LlmBatchConnectionError) as lost:
            flaky.submit(iter(items(3)), BatchOptions(params=PARAMS))
        assert proxy.connections == 1 and lost.value.status is None
        key = lost.value.idempotency_key
        assert key is not None and key in lost.value.detail and "cannot be read again" in lost.value.detail
        again = flaky.submit(iter(items(3)), BatchOptions(params=PARAMS), idempotency_key=key)
        assert [b.id for b in client.list()] == [again.id], "the same key answered the batch the lost one made"


def test_the_same_idempotency_key_answers_the_same_batch(client: LlmBatchClient) -> None:
    first = client.submit(items(2), BatchOptions(params=PARAMS), idempotency_key="monolith-run-42")
    second = client.submit(items(2), BatchOptions(params=PARAMS), idempotency_key="monolith-run-42")
    assert first.id == second.id and [b.id for b in client.list()] == [first.id]
    with pytest.raises(LlmBatchError) as reused:
        client.submit(items(3), BatchOptions(params=PARAMS), idempotency_key="monolith-run-42")
    assert reused.value.status == 422 and reused.value.field == "Idempotency-Key"
    assert reused.value.type.endswith("idempotency-key-reused")


def test_after_a_retry_the_filters_select_only_what_changed(client: LlmBatchClient) -> None:
    done = client.wait(client.submit(items(60), FLAKY).id, **FAST)
    first_rows = list(client.iter_results(done.id))
    failed = sorted(row.custom_id for row in client.iter_results(done.id, status="failed"))
    assert failed and len(failed) == done.counts.failed

    retried = client.retry(done.id, model="openai/gpt-oss-120b")
    retry_pass = retried.passes[-1]
    assert retry_pass.kind == "retry" and retry_pass.items == len(failed)
    assert retried.latest_run_since_pass == retry_pass.number - 1
    after = client.wait(done.id, **FAST)

    changed = list(client.iter_results(done.id, since_pass=retried.latest_run_since_pass))
    assert sorted(row.custom_id for row in changed) == failed
    assert all(row.changed_in_pass == retry_pass.number for row in changed)
    assert sorted(row.custom_id for row in client.iter_results(done.id, pass_number=retry_pass.number)) == failed
    untouched = sorted(row.custom_id for row in first_rows if row.custom_id not in failed)
    assert sorted(row.custom_id for row in client.iter_results(done.id, tier=0)) == untouched
    latest_before = max(row.updated_at for row in first_rows)
    assert sorted(row.custom_id for row in client.iter_results(done.id, updated_after=latest_before)) == failed
    in_paris_summer = latest_before.astimezone(timezone(timedelta(hours=2)))  # sent as the same instant in UTC
    assert sorted(row.custom_id for row in client.iter_results(done.id, updated_after=in_paris_summer)) == failed

    for row in changed:
        assert [step.pass_number for step in row.lineage] == [1, retry_pass.number]
        assert row.lineage[0].outcome == next(r.error.code for r in first_rows if r.custom_id == row.custom_id)
        assert row.lineage[1].sent_because == "retry" and row.cost_usd == sum(s.cost_usd for s in row.lineage)
    assert sum(row.cost_usd for row in client.iter_results(done.id, ndjson=True)) == after.cost.usd
    assert after.counts.succeeded + after.counts.failed == 60 and after.counts.failed < len(failed)


def test_errors_carry_the_problem_details(service: LiveService, client: LlmBatchClient) -> None:
    with pytest.raises(LlmBatchError) as missing:
        client.get("lb_missing")
    error = missing.value
    assert (error.status, error.type, error.title) == (404, "urn:llm-batch:problem:not-found", "Not found")
    assert "lb_missing" in error.detail and error.problem["status"] == 404

    with pytest.raises(LlmBatchError) as invalid:
        client.submit([{"custom_id": "pr-1", "body": {"messages": []}}])
    assert invalid.value.status == 422 and invalid.value.field is not None and "messages" in invalid.value.field

    with pytest.raises(LlmBatchError) as limited:
        client.submit(items(2), BatchOptions(metadata={f"key{n}": n for n in range(17)}))
    assert limited.value.problem["limit"] == "MAX_METADATA_KEYS" and limited.value.field == "metadata"

    with LlmBatchClient(service.url, token="wrong-token-of-sixteen") as stranger, pytest.raises(LlmBatchError) as who:
        stranger.get("lb_missing")
    assert who.value.status == 401 and who.value.type == "urn:llm-batch:problem:unauthorized"


def test_no_answer_is_a_connection_error_after_the_resends() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with LlmBatchClient(url, timeout=2, retry=RetryPolicy(sends=2, backoff_seconds=0.01)) as c:
        with pytest.raises(LlmBatchConnectionError) as unreachable:
            c.get("lb_any")
        error = unreachable.value
        assert error.status is None and "GET /batches/lb_any" in error.detail
        assert (error.url, error.reason, error.reached, error.sends) == (url, "connection refused", False, 2)
        assert str(error) == f"no answer from {url}: connection refused (GET /batches/lb_any, 2 tries over 0 s)"
        with pytest.raises(LlmBatchConnectionError) as refused:
            c.submit(items(2), BatchOptions(params=PARAMS))
        assert refused.value.idempotency_key and "idempotency_key" not in str(refused.value), "nothing reached it"
        with pytest.raises(LlmBatchConnectionError):
            list(c.iter_results("lb_any", ndjson=True))


def test_wait_gives_up_with_a_timeout_error(client: LlmBatchClient) -> None:
    batch = client.submit(items(2), BatchOptions(params=PARAMS))
    with pytest.raises(TimeoutError) as timed_out:
        client.wait(batch.id, timeout=0.05, poll_interval=0.01)
    assert isinstance(timed_out.value, BatchWaitTimeout) and timed_out.value.batch is not None
    assert timed_out.value.batch.status in ("queued", "running")


def test_wait_for_webhook_is_woken_by_the_receiver_before_its_slow_poll(client: LlmBatchClient) -> None:
    arrived = threading.Event()
    with WebhookReceiver(SECRET, on_event=lambda event: arrived.set()) as receiver:
        batch = client.submit(items(3), BatchOptions(params=PARAMS, callback_url=receiver.url))
        started = time.monotonic()
        done = client.wait_for_webhook(batch.id, arrived, poll_interval=30, timeout=60)
        waited = time.monotonic() - started
        assert done.status == "completed" and waited < 20, f"woken after {waited:.1f}s, not by the webhook"
        [event] = receiver.events
        assert (event.type, event.batch.id, event.batch.counts) == ("batch.completed", batch.id, done.counts)
        assert event.batch.cost.usd == done.cost.usd

        delivered = client.get(batch.id).webhook
        assert delivered is not None and delivered.webhook_id == event.webhook_id
        client.redeliver_webhook(batch.id)
        deadline = time.monotonic() + 20
        while len(receiver.events) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e.webhook_id for e in receiver.events] == [event.webhook_id] * 2  # a redelivery: the same id


def test_the_catalogue_has_decimal_prices_and_the_default_cascade(client: LlmBatchClient) -> None:
    catalogue = client.models()
    assert catalogue.default_cascade == ("openai/gpt-oss-20b", "openai/gpt-oss-120b")
    by_id = {model.id: model for model in catalogue.models}
    small = by_id["openai/gpt-oss-20b"]
    assert small.usable and isinstance(small.input_usd_per_million, Decimal) and small.input_usd_per_million > 0
    assert not by_id["llama-3.3-70b-versatile"].usable and by_id["llama-3.3-70b-versatile"].replacement
    assert client.health()["status"] == "ok"


def test_estimate_says_what_a_submission_would_cost_without_creating_it(client: LlmBatchClient) -> None:
    estimate = client.estimate(items(40), BatchOptions(params=PARAMS, budget_usd="5"), fallback=True)
    assert estimate.items == 40 and [t.model for t in estimate.tiers] == ["openai/gpt-oss-20b", "openai/gpt-oss-120b"]
    assert Decimal(0) < estimate.floor <= estimate.cost <= estimate.upper_bound
    assert sum(t.cost for t in estimate.tiers) == estimate.cost
    assert estimate.budget_usd == Decimal(5) and estimate.within_budget is True
    assert list(client.list()) == []
    streamed = client.estimate(iter(items(40)), BatchOptions(params=PARAMS, budget_usd="5"), fallback=True)
    assert streamed.cost == estimate.cost and streamed.tiers == estimate.tiers


def test_result_rows_carry_their_batch_id_and_a_page_cursor_resumes_a_read(
    service: LiveService, client: LlmBatchClient
) -> None:
    batch = client.wait(client.submit(items(25), BatchOptions(params=PARAMS)).id, **FAST)
    paged = list(client.iter_results(batch.id, page_size=10))
    streamed = list(client.iter_results(batch.id, ndjson=True))
    assert {row.batch_id for row in paged} == {batch.id} == {row.batch_id for row in streamed}
    assert client.item(batch.id, "pr-3").result.batch_id == batch.id

    first = client.results_page(batch.id, limit=10)
    assert [row.custom_id for row in first.rows] == [f"pr-{n}" for n in range(1, 11)] and first.next_cursor
    with LlmBatchClient(service.url, token=TOKEN) as another:  # another process, later
        rest = another.results_page(batch.id, first.next_cursor, limit=100)
    assert [row.custom_id for row in rest.rows] == [f"pr-{n}" for n in range(11, 26)] and rest.next_cursor is None
    assert [*first.rows, *rest.rows] == paged and {row.batch_id for row in rest.rows} == {batch.id}


def test_a_list_of_20000_items_is_streamed_as_ndjson_while_it_is_read(service: LiveService) -> None:
    """A list too (the client used to encode it whole, ~200 MB for a backfill): the body reaches the service
    while the list is still being read."""
    seen: dict[str, int] = {}

    with FaultyProxy(service.server.port) as proxy, LlmBatchClient(proxy.url, token=TOKEN, timeout=60) as client:

        class Watched(list[dict[str, Any]]):
            def __iter__(self) -> Any:
                for n, item in enumerate(super().__iter__()):
                    if n == 15_000:
                        deadline = time.monotonic() + 5
                        while proxy.bytes_from_clients < 1_000_000 and time.monotonic() < deadline:
                            time.sleep(0.01)
                        seen["bytes"] = proxy.bytes_from_clients
                    yield item

        rows = Watched(
            {"custom_id": f"change-{n}", "body": {"messages": [{"role": "user", "content": f"Change {n}."}]}}
            for n in range(20_000)
        )
        batch = client.submit(rows, BatchOptions(model="openai/gpt-oss-20b"))
        assert batch.counts.total == 20_000 and seen["bytes"] >= 1_000_000, "sent while the list was read"
        client.cancel(batch.id)


def test_set_budget_raises_a_finished_batchs_budget_and_sends_its_over_budget_items(client: LlmBatchClient) -> None:
    done = client.wait(client.submit(items(30), BatchOptions(params=PARAMS, budget_usd="0.0005")).id, **FAST)
    stopped = done.failure_reasons.get("budget_exceeded", 0)
    assert stopped > 0 and done.budget is not None and done.budget.waiting_items == 0

    raised = client.set_budget(done.id, Decimal("5"))
    assert raised.status == "running" and raised.budget is not None and raised.budget.budget_usd == Decimal(5)
    assert client.set_budget(done.id, "5").budget == raised.budget, "the same value twice changes nothing"
    after = client.wait(done.id, **FAST)
    assert "budget_exceeded" not in after.failure_reasons
    assert after.budget is not None and after.budget.spent_usd <= Decimal(5)
    with pytest.raises(LlmBatchError) as unknown:
        client.set_budget("lb_00000000000000000000000000", 1)
    assert unknown.value.status == 404


def test_an_estimate_with_a_budget_says_what_it_buys(client: LlmBatchClient) -> None:
    full = client.estimate(items(50), BatchOptions(params=PARAMS))
    assert full.budget_buys is None
    half = client.estimate(items(50), BatchOptions(params=PARAMS, budget_usd=full.cost / 2))
    assert half.budget_buys is not None and half.budget_buys.cost <= full.cost / 2
    assert 0 < half.budget_buys.items < 50 and half.budget_buys.based_on in ("catalogue", "history")


@pytest.mark.parametrize(("budget", "sent"), [(Decimal("1E+3"), "1000"), (Decimal("1e-7"), "0.0000001"), (25, "25")])
def test_a_budget_is_sent_as_a_plain_decimal_string(budget: Decimal | int, sent: str) -> None:
    """The service takes ASCII digits with an optional fraction, no exponent."""
    assert BatchOptions(budget_usd=budget).header()["budget_usd"] == sent
