"""Batch lifecycle: progress, expiry, failed validation, cancellation, corrupted output, listing."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import orjson
import pytest
from groq import AsyncGroq, BadRequestError, NotFoundError

from groq_emulator import Emulator, ManualClock, create_emulator_app
from tests.groq_emulator.conftest import AsgiEmulator
from tests.groq_emulator.helpers import (
    CHAT_URL,
    asgi_client,
    chat_line,
    manual_config,
    read_lines,
    run_batch,
    to_jsonl,
)


def _lines(n: int, model: str = "openai/gpt-oss-120b") -> bytes:
    return to_jsonl(chat_line(f"item-{i}", model=model) for i in range(n))


async def _create(client: AsyncGroq, data: bytes, **extra: Any) -> Any:
    uploaded = await client.files.create(file=("in.jsonl", data), purpose="batch")
    return await client.batches.create(
        input_file_id=uploaded.id or "", endpoint=CHAT_URL, completion_window="24h", **extra
    )


async def test_progress_counts_grow_in_file_order(asgi_emulator: AsgiEmulator) -> None:
    client, clock = asgi_emulator.client, asgi_emulator.clock
    batch = await _create(client, _lines(100))
    clock.advance(1)
    assert (await client.batches.retrieve(batch.id)).status == "validating"
    clock.advance(1 + 5)  # validating 2 s, then half of the 10 s processing
    mid = await client.batches.retrieve(batch.id)
    assert mid.status == "in_progress" and mid.in_progress_at == mid.created_at + 2
    assert mid.request_counts is not None
    assert mid.request_counts.total == 100 and mid.request_counts.completed + mid.request_counts.failed == 50
    assert mid.output_file_id is None
    clock.advance(5)
    final = await client.batches.retrieve(batch.id)
    assert final.status == "finalizing" and final.finalizing_at == final.created_at + 12
    clock.advance(2)
    done = await client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.completed_at == done.created_at + 14
    counts = done.request_counts
    assert counts is not None and counts.completed + counts.failed == 100


async def test_forced_expiry_keeps_processed_work(asgi_emulator: AsgiEmulator) -> None:
    client, emulator = asgi_emulator.client, asgi_emulator.emulator
    emulator.faults.expire_next_batches = 1
    emulator.faults.expire_after_fraction = 0.5
    batch = await run_batch(client, emulator, _lines(40))
    assert batch.status == "expired" and batch.expired_at is not None and batch.completed_at is None
    assert batch.request_counts.total == 40
    out = await read_lines(client, batch.output_file_id)
    err = await read_lines(client, batch.error_file_id)
    expired = [line for line in err if line["error"] and line["error"]["code"] == "batch_expired"]
    assert len(expired) == 20 and all(line["response"] is None for line in expired)
    assert len(out) + len(err) - len(expired) == 20
    assert Counter(line["custom_id"] for line in out + err) == Counter(f"item-{i}" for i in range(40))
    assert batch.request_counts.completed == len(out) and batch.request_counts.failed == len(err)
    assert emulator.faults.expire_next_batches == 0
    assert (await run_batch(client, emulator, _lines(5))).status == "completed"


async def test_natural_expiry_at_expires_at() -> None:
    emulator = Emulator(manual_config(processing_seconds=2 * 86400))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        batch = await run_batch(client, emulator, _lines(10), step=20_000)
        assert batch.status == "expired" and batch.expired_at == batch.expires_at
        err = await read_lines(client, batch.error_file_id)
        assert sum(1 for line in err if line["error"] and line["error"]["code"] == "batch_expired") >= 5


async def test_fail_next_batches(asgi_emulator: AsgiEmulator) -> None:
    client, emulator = asgi_emulator.client, asgi_emulator.emulator
    emulator.faults.fail_next_batches = 1
    batch = await run_batch(client, emulator, _lines(3))
    assert batch.status == "failed" and batch.failed_at is not None
    assert batch.errors.object == "list" and batch.errors.data[0].code == "validation_failed"
    assert batch.output_file_id is None and batch.error_file_id is None
    assert (await run_batch(client, emulator, _lines(3))).status == "completed"


async def test_cancel_keeps_partial_output(asgi_emulator: AsgiEmulator) -> None:
    client, clock = asgi_emulator.client, asgi_emulator.clock
    batch = await _create(client, _lines(40))
    clock.advance(2 + 5)
    cancelling = await client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    clock.advance(4)
    assert (await client.batches.retrieve(batch.id)).status == "cancelling"
    clock.advance(1)
    cancelled = await client.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelling_at is not None
    assert cancelled.cancelled_at == cancelled.cancelling_at + 5
    out = await read_lines(client, cancelled.output_file_id)
    err = await read_lines(client, cancelled.error_file_id)
    skipped = [line for line in err if line["error"] and line["error"]["code"] == "batch_cancelled"]
    assert len(skipped) == 20 and len(out) + len(err) == 40
    with pytest.raises(BadRequestError, match="cannot be cancelled"):
        await client.batches.cancel(batch.id)


async def test_cancel_while_validating_and_after_completion(asgi_emulator: AsgiEmulator) -> None:
    client, emulator = asgi_emulator.client, asgi_emulator.emulator
    batch = await _create(client, _lines(4))
    raw = httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi_emulator.app), base_url="http://e")
    async with raw:
        response = await raw.post(
            f"/openai/v1/batches/{batch.id}/cancel",
            headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        )
    assert response.status_code == 200 and response.json()["status"] == "cancelling"
    asgi_emulator.clock.advance(5)
    cancelled = await client.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled" and cancelled.output_file_id is None
    assert cancelled.in_progress_at is None
    assert len(await read_lines(client, cancelled.error_file_id)) == 4

    done = await run_batch(client, emulator, _lines(2))
    with pytest.raises(BadRequestError) as info:
        await client.batches.cancel(done.id)
    assert isinstance(info.value.body, dict) and info.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(NotFoundError):
        await client.batches.cancel("batch_nope")


async def test_malformed_output_lines(asgi_emulator: AsgiEmulator) -> None:
    client, emulator = asgi_emulator.client, asgi_emulator.emulator
    emulator.faults.malformed_output_lines = 3
    batch = await run_batch(client, emulator, _lines(30))
    content = await client.files.content(batch.output_file_id)
    bad = 0
    for line in (await content.text()).splitlines():
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1
    assert bad == 3 and emulator.faults.malformed_output_lines == 0


@pytest.mark.parametrize("window", ["24h", "36h", "2d", "7d", "168h"])
async def test_window_accepted(asgi_emulator: AsgiEmulator, window: str) -> None:
    uploaded = await asgi_emulator.client.files.create(file=("a.jsonl", _lines(1)), purpose="batch")
    batch = await asgi_emulator.client.batches.create(
        input_file_id=uploaded.id or "", endpoint=CHAT_URL, completion_window=window
    )
    hours = int(window[:-1]) * (24 if window.endswith("d") else 1)
    assert batch.expires_at == batch.created_at + hours * 3600 and batch.completion_window == window


@pytest.mark.parametrize("window", ["23h", "169h", "8d", "1w", "24", "", "24H"])
async def test_window_refused(asgi_emulator: AsgiEmulator, window: str) -> None:
    uploaded = await asgi_emulator.client.files.create(file=("a.jsonl", _lines(1)), purpose="batch")
    with pytest.raises(BadRequestError) as info:
        await asgi_emulator.client.batches.create(
            input_file_id=uploaded.id or "", endpoint=CHAT_URL, completion_window=window
        )
    assert isinstance(info.value.body, dict) and info.value.body["error"]["param"] == "completion_window"


async def test_create_refusals(asgi_emulator: AsgiEmulator) -> None:
    client, emulator = asgi_emulator.client, asgi_emulator.emulator
    uploaded = await client.files.create(file=("a.jsonl", _lines(1)), purpose="batch")
    with pytest.raises(BadRequestError):
        await client.batches.create(
            input_file_id=uploaded.id or "",
            endpoint="/v1/embeddings",  # type: ignore[arg-type]
            completion_window="24h",
        )
    with pytest.raises(NotFoundError):
        await client.batches.create(input_file_id="file_missing", endpoint=CHAT_URL, completion_window="24h")
    done = await run_batch(client, emulator, _lines(2))
    with pytest.raises(BadRequestError, match="purpose"):
        await client.batches.create(input_file_id=done.output_file_id, endpoint=CHAT_URL, completion_window="24h")


async def test_list_paging_and_id_filter() -> None:
    emulator = Emulator(manual_config(clock=ManualClock()))
    app = create_emulator_app(emulator=emulator)
    async with asgi_client(app) as client:
        ids = [(await _create(client, _lines(1), metadata={"n": str(i)})).id for i in range(5)]
        seen: list[str] = []
        cursor = None
        while True:
            query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = await client.batches.list(extra_query=query)
            seen += [b.id for b in page.data]
            cursor = page.paging["next_cursor"]  # type: ignore[attr-defined]
            if cursor is None:
                break
            assert cursor.startswith("cursor_")
        assert seen == list(reversed(ids))
        assert [b.id for b in (await client.batches.list()).data] == list(reversed(ids))

        comma = await client.batches.list(extra_query={"id": [ids[0], ids[3], "batch_unknown"]})
        assert [b.id for b in comma.data] == [ids[0], ids[3]]
        with pytest.raises(BadRequestError):
            await client.batches.list(extra_query={"id": [f"batch_{i}" for i in range(201)]})
        with pytest.raises(BadRequestError):
            await client.batches.list(extra_query={"cursor": "cursor_bogus"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as raw:
        response = await raw.get(
            "/openai/v1/batches",
            params=[("id", ids[1]), ("id", ids[2]), ("id", f"{ids[4]},{ids[1]}")],
            headers={"Authorization": "Bearer k"},
        )
    assert [b["id"] for b in response.json()["data"]] == [ids[1], ids[2], ids[4]]
    assert {b["metadata"]["n"] for b in response.json()["data"]} == {"1", "2", "4"}
