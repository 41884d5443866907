"""Every call of the API, written once. `LlmBatchClient` and `AsyncLlmBatchClient` expose each of these as a
method of the same name and signature (the async one to be awaited, or iterated with `async for`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from llm_batch_client.calls import (
    NDJSON,
    BatchOptions,
    Call,
    Items,
    Json,
    encode_json,
    new_idempotency_key,
    query,
    segment,
    submission,
)
from llm_batch_client.data import Batch, Estimate, Item, ModelCatalogue, Page, ResultPage, ResultRow, WebhookDelivery
from llm_batch_client.decoding import decoder
from llm_batch_client.effects import Context, Each, Op, Program, json_op, lines_op, pages_op
from llm_batch_client.waiting import DEFAULT_WAIT_SECONDS, Progress, Schedule, wait_program


def _batch(batch_id: str, *rest: str) -> str:
    return "/".join(["/batches", segment(batch_id), *rest])


def submit(
    items: Items, options: BatchOptions | None = None, *, fallback: bool = False, idempotency_key: str | None = None
) -> Op[Batch]:
    """POST /batches: the new batch (status queued). `items` are mappings with `custom_id`, `body` (a
    chat-completions body without `model`) and optionally `metadata` (echoed on the item's result rows: put
    your primary key there). A list or tuple is sent as JSON; any other iterable (a generator, a Django
    `queryset.iterator()`) is streamed as NDJSON, read while it is sent. `fallback=True` runs the default
    cascade (failures on to stronger models), as `?fallback=true`; the API's default is False.

    The request carries an Idempotency-Key (`idempotency_key`, or a new one) and is sent again with it after a
    lost answer or a 5xx, so one call creates one batch at most. A stream read from an iterator cannot be sent
    again once read: the error then says so, with the key to resubmit with."""
    key = idempotency_key or new_idempotency_key()
    return json_op(submission("/batches", items, options, fallback, key, safe=False), Batch.from_json)


def estimate(items: Items, options: BatchOptions | None = None, *, fallback: bool = False) -> Op[Estimate]:
    """POST /batches/estimate: what the same submission would cost (expected, floor and upper bound, per
    tier), without creating anything."""
    return json_op(submission("/batches/estimate", items, options, fallback, None, safe=True), Estimate.from_json)


def get(batch_id: str) -> Op[Batch]:
    """GET /batches/{id}: status, counts, cost, tiers, passes, budget and the webhook delivery."""
    return json_op(Call("GET", _batch(batch_id), safe=True), Batch.from_json)


def list_batches(*, status: str | None = None, page_size: int = 100) -> Each[Batch]:
    """Every batch, newest first (all pages, `page_size` at a time); `status` filters."""
    call = Call("GET", "/batches", query(status=status, limit=page_size), safe=True)
    return pages_op(call, Batch.from_json)


def results(
    batch_id: str,
    *,
    status: str | None = None,
    pass_number: int | None = None,
    tier: int | None = None,
    since_pass: int | None = None,
    updated_after: datetime | str | None = None,
    ndjson: bool = False,
    page_size: int = 1000,
) -> Each[ResultRow]:
    """Every merged result row (one per item), in submission order, page after page. Filters: `status`
    (succeeded, failed, pending, retrying), `pass_number` / `tier` (rows decided there), `since_pass` (rows that
    changed after that pass: a retry's import; see Batch.latest_run_since_pass), `updated_after`.
    `ndjson=True` reads one NDJSON stream instead of pages: one request, constant memory. Each row's
    `batch_id` is `batch_id`."""
    filters = _result_filters(status, pass_number, tier, since_pass, updated_after)
    path = _batch(batch_id, "results")
    parse = _result_row(batch_id)
    if ndjson:
        return lines_op(Call("GET", path, filters, accept=NDJSON, safe=True), parse)
    return pages_op(Call("GET", path, {**filters, "limit": str(page_size)}, safe=True), parse)


def results_page(
    batch_id: str,
    after: str | None = None,
    *,
    status: str | None = None,
    pass_number: int | None = None,
    tier: int | None = None,
    since_pass: int | None = None,
    updated_after: datetime | str | None = None,
    limit: int = 1000,
) -> Op[ResultPage]:
    """One page of result rows: those after the cursor `after` (None: from the first), with the same filters
    as iter_results. The page's `next_cursor` (None after the last page) resumes from there, in this process
    or another one later: an import that stops half-way can go on where it stopped."""
    filters = _result_filters(status, pass_number, tier, since_pass, updated_after)
    params = {**filters, "limit": str(limit), **({"after": after} if after else {})}
    parse = _result_row(batch_id)

    def read(data: Any) -> ResultPage:
        page = Page.from_json(data)
        rows = tuple(parse(row) for row in page.data)
        return ResultPage(rows, page.next_cursor if page.has_more else None)

    return json_op(Call("GET", _batch(batch_id, "results"), params, safe=True), read)


def _result_filters(
    status: str | None,
    pass_number: int | None,
    tier: int | None,
    since_pass: int | None,
    updated_after: datetime | str | None,
) -> dict[str, str]:
    return query(status=status, since_pass=since_pass, updated_after=updated_after, tier=tier, **{"pass": pass_number})


def _result_row(batch_id: str) -> Callable[[Any], ResultRow]:
    known, read = {"batch_id": batch_id}, decoder(ResultRow)

    def parse(data: Any) -> ResultRow:
        return read(data, known)

    return parse


def item(batch_id: str, custom_id: str) -> Op[Item]:
    """GET /batches/{id}/items/{custom_id}: one item, its body, merged result and every attempt. The
    custom_id is percent-encoded: `acme/payments#26313` is one id."""

    def parse(data: Any) -> Item:
        found = Item.from_json(data)
        return dataclasses.replace(found, result=dataclasses.replace(found.result, batch_id=batch_id))

    return json_op(Call("GET", _batch(batch_id, "items", segment(custom_id)), safe=True), parse)


def retry(
    batch_id: str,
    *,
    model: str | None = None,
    params: Json | None = None,
    custom_ids: Sequence[str] | None = None,
    idempotency_key: str | None = None,
) -> Op[Batch]:
    """POST /batches/{id}/retry: send the failed items (all, or `custom_ids`) again as a new pass, on `model`
    (default: the cascade's last tier) with `params`. Sent with an Idempotency-Key, like submit()."""
    body: dict[str, Any] = {"model": model, "params": None if params is None else dict(params)}
    body["custom_ids"] = None if custom_ids is None else list(custom_ids)
    payload = encode_json({name: value for name, value in body.items() if value is not None})
    key = idempotency_key or new_idempotency_key()
    return json_op(Call("POST", _batch(batch_id, "retry"), body=payload, idempotency_key=key), Batch.from_json)


def set_budget(batch_id: str, budget_usd: Decimal | str | int | None) -> Op[Batch]:
    """PATCH /batches/{id}: a new budget (None: none). While the batch runs, only upwards (a lower one is a 409
    naming budget_usd); a finished batch takes any value and sends its budget_exceeded items again within it.
    The same value twice changes nothing, so the call is sent again after a lost answer."""
    value = None if budget_usd is None else str(Decimal(str(budget_usd)))
    call = Call("PATCH", _batch(batch_id), body=encode_json({"budget_usd": value}), safe=True)
    return json_op(call, Batch.from_json)


def cancel(batch_id: str) -> Op[Batch]:
    """POST /batches/{id}/cancel: results finished before the cancel are kept."""
    return json_op(Call("POST", _batch(batch_id, "cancel")), Batch.from_json)


def delete_batch(batch_id: str) -> Op[Batch]:
    """DELETE /batches/{id}: cancel it if running, then purge its request bodies, outputs, error texts and files
    (here and at the provider). Idempotent. The Batch answered is its tombstone (counts, cost, tiers, passes):
    `purged_at` is None while the purge is pending, then set. Its results and items raise 410 from now on."""
    return json_op(Call("DELETE", _batch(batch_id), safe=True), Batch.from_json)


def redeliver_webhook(batch_id: str) -> Op[WebhookDelivery]:
    """POST /batches/{id}/webhook/redeliver: the last webhook event again (same webhook-id, new signature)."""
    return json_op(Call("POST", _batch(batch_id, "webhook", "redeliver")), WebhookDelivery.from_json)


def models() -> Op[ModelCatalogue]:
    """GET /models: the catalogue (prices as Decimal, structured output, lifecycle) and the default cascade."""
    return json_op(Call("GET", "/models", safe=True), ModelCatalogue.from_json)


def health() -> Op[dict[str, Any]]:
    """GET /healthz."""
    return json_op(Call("GET", "/healthz", safe=True), dict)


def wait(
    batch_id: str,
    *,
    timeout: float = DEFAULT_WAIT_SECONDS,
    poll_interval: float = 2.0,
    max_poll_interval: float = 30.0,
    on_progress: Progress | None = None,
) -> Op[Batch]:
    """Poll until the batch is completed, failed or cancelled, and return it. Intervals grow from
    `poll_interval` to `max_poll_interval`; `on_progress` sees every poll. Lost answers and 429/5xx are
    polled through. Raises BatchWaitTimeout (a TimeoutError) after `timeout` seconds."""

    def program(context: Context) -> Program[Batch]:
        schedule = Schedule(poll_interval, max(poll_interval, max_poll_interval))
        return (yield from wait_program(context, batch_id, timeout=timeout, schedule=schedule, on_progress=on_progress))

    return program


def wait_for_webhook(
    batch_id: str,
    signal: Any,
    *,
    timeout: float = DEFAULT_WAIT_SECONDS,
    poll_interval: float = 60.0,
    on_progress: Progress | None = None,
) -> Op[Batch]:
    """Wait for `signal` (what your webhook receiver sets: a threading.Event, for the async client an
    asyncio.Event, or a callable answering True once the webhook came), then GET the batch; meanwhile poll
    every `poll_interval` seconds in case the webhook is lost. Returns the finished batch."""

    def program(context: Context) -> Program[Batch]:
        schedule = Schedule(poll_interval, poll_interval)
        return (
            yield from wait_program(
                context, batch_id, timeout=timeout, schedule=schedule, on_progress=on_progress, signal=signal
            )
        )

    return program
