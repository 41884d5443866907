"""Batch lifecycle: live counts, cancel, expiry, validation failures, the enqueued-token limit, file expiry."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai import BadRequestError, ConflictError, NotFoundError

from openai_emulator import Emulator, ModelSpec, create_emulator_app, default_models
from tests.openai_emulator.conftest import AsgiOpenAI
from tests.openai_emulator.helpers import (
    asgi_client,
    chat_line,
    create,
    manual_config,
    read_lines,
    results,
    run_batch,
    to_jsonl,
)


def _lines(n: int, model: str = "gpt-4.1-mini") -> bytes:
    return to_jsonl(chat_line(f"item-{i}", model=model) for i in range(n))


async def test_counts_and_usage_are_live(openai_emulator: AsgiOpenAI) -> None:
    client, clock = openai_emulator.client, openai_emulator.clock
    batch = await create(client, _lines(100))
    clock.advance(5 + 15)  # validating 5 s, then half of the 30 s processing
    mid = await client.batches.retrieve(batch.id)
    assert mid.status == "in_progress" and mid.request_counts is not None
    assert mid.request_counts.total == 100 and mid.request_counts.completed + mid.request_counts.failed == 50
    assert mid.usage is not None and mid.usage.input_tokens > 0 and mid.output_file_id is None
    clock.advance(15 + 5)
    done = await client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.usage is not None
    assert done.usage.input_tokens > mid.usage.input_tokens


async def test_cancel_keeps_partial_results(openai_emulator: AsgiOpenAI) -> None:
    client, clock = openai_emulator.client, openai_emulator.clock
    batch = await create(client, _lines(40))
    clock.advance(5 + 15)
    cancelling = await client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    assert (await client.batches.cancel(batch.id)).status == "cancelling"
    clock.advance(30)
    cancelled = await client.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at == cancelled.cancelling_at + 30
    out = await read_lines(client, cancelled.output_file_id)
    err = await read_lines(client, cancelled.error_file_id)
    unrun = [line for line in err if line["error"] and line["error"]["code"] == "batch_cancelled"]
    assert len(unrun) == 20 and all(line["response"] is None for line in unrun)
    assert len(out) + len(err) == 40 and len(out) == cancelled.request_counts.completed
    with pytest.raises(BadRequestError, match=r"Cannot cancel a batch with status 'cancelled'\."):
        await client.batches.cancel(batch.id)
    with pytest.raises(NotFoundError):
        await client.batches.cancel("batch_nope")


async def test_cancelling_a_finished_batch_may_be_a_409_the_sdk_retries() -> None:
    emulator = Emulator(manual_config(cancel_terminal_status=409))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        done = await run_batch(client, emulator, _lines(1))
        emulator.request_log.clear()
        with pytest.raises(ConflictError):
            await client.with_options(max_retries=1).batches.cancel(done.id)
        assert [status for _, _, status in emulator.request_log] == [409, 409]


async def test_a_finalizing_batch_may_refuse_a_cancel() -> None:
    emulator = Emulator(manual_config(cancel_while_finalizing=False))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        batch = await create(client, _lines(3))
        assert hasattr(emulator.clock, "advance")
        emulator.clock.advance(5 + 30 + 1)
        with pytest.raises(BadRequestError, match="status 'finalizing'"):
            await client.batches.cancel(batch.id)


async def test_expiry_returns_finished_lines_and_expires_the_rest() -> None:
    emulator = Emulator(manual_config(processing_seconds=2 * 86_400))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        batch = await run_batch(client, emulator, _lines(10), step=20_000)
        assert batch.status == "expired" and batch.expired_at == batch.expires_at
        by_id = await results(client, batch)
        expired = [line for line in by_id.values() if line["error"] and line["error"]["code"] == "batch_expired"]
        # 10 lines over 2 days from 5 s after creation: 4 finish within the 24 h window
        assert len(expired) == 6 and len(await read_lines(client, batch.output_file_id)) == 4
        assert expired[0]["error"]["message"] == (
            "This request could not be executed before the completion window expired."
        )
        assert batch.usage.input_tokens > 0  # the finished half is billed


async def test_forced_expiry_fault(openai_emulator: AsgiOpenAI) -> None:
    client, emulator = openai_emulator.client, openai_emulator.emulator
    emulator.faults.expire_next_batches = 1
    emulator.faults.expire_after_fraction = 0.25
    batch = await run_batch(client, emulator, _lines(20))
    assert batch.status == "expired" and len(await read_lines(client, batch.output_file_id)) == 5
    assert sorted(await results(client, batch)) == sorted(f"item-{i}" for i in range(20))
    assert (await run_batch(client, emulator, _lines(2))).status == "completed"


def _line(custom_id: Any = "a", **top: Any) -> bytes:
    line = chat_line(custom_id)
    line.update(top)
    return orjson.dumps(line)


@pytest.mark.parametrize(
    ("data", "code", "line"),
    [
        (b"{not json\n", "invalid_json_line", 1),
        (_line() + b"\n\n" + orjson.dumps({"method": "POST"}), "missing_required_parameter", 3),
        (_line(url="/v1/responses"), "url_mismatch", 1),
        (_line("a") + b"\n" + orjson.dumps(chat_line("b", model="gpt-5-nano")), "model_mismatch", 2),
        (_line("a") + b"\n" + _line("a"), "duplicate_custom_id", 2),
        (_line(method="GET"), "invalid_method", 1),
        (b"\n\n", "empty_file", None),
    ],
)
async def test_validation_failures(openai_emulator: AsgiOpenAI, data: bytes, code: str, line: int | None) -> None:
    batch = await run_batch(openai_emulator.client, openai_emulator.emulator, data)
    assert batch.status == "failed" and batch.failed_at is not None and batch.in_progress_at is None
    assert batch.output_file_id is None and batch.error_file_id is None
    assert batch.request_counts.total == 0
    error = batch.errors.data[0]
    assert (error.code, error.line) == (code, line)


async def test_too_many_lines_and_duplicates_refused_at_create() -> None:
    emulator = Emulator(manual_config(max_lines=3, duplicate_custom_ids="reject_create"))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        batch = await run_batch(client, emulator, _lines(4))
        assert batch.status == "failed" and batch.errors.data[0].code == "too_many_tasks"
        with pytest.raises(BadRequestError) as refused:
            await create(client, to_jsonl([chat_line("a"), chat_line("a")]))
        assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "duplicate_custom_id"


async def test_an_optional_custom_id_pattern() -> None:
    emulator = Emulator(manual_config(custom_id_pattern=r"^[a-zA-Z0-9_-]{1,64}$"))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        batch = await run_batch(client, emulator, to_jsonl([chat_line("has space")]))
        assert batch.status == "failed" and batch.errors.data[0].code == "invalid_custom_id"


async def test_enqueued_token_limit_fails_a_batch_after_create_returns() -> None:
    models = default_models()
    models["gpt-4.1-mini"] = ModelSpec(**{**vars(models["gpt-4.1-mini"]), "enqueued_token_limit": 300})
    emulator = Emulator(manual_config(models=models, organization="org-test"))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        first = await create(client, _lines(10))  # 22 prompt tokens a line: 220 of 300
        second = await create(client, _lines(10))
        assert second.status == "validating"  # create still says 200
        assert hasattr(emulator.clock, "advance")
        emulator.clock.advance(5)
        failed = await client.batches.retrieve(second.id)
        assert failed.status == "failed"
        error = failed.errors.data[0]
        assert error.code == "token_limit_exceeded" and error.line is None and error.param is None
        assert error.message == (
            "Enqueued token limit reached for gpt-4.1-mini in organization org-test. Limit: 300 enqueued tokens. "
            "Please try again once some in_progress batches have been completed."
        )
        assert (await client.batches.retrieve(first.id)).status == "in_progress"
        emulator.clock.advance(100)
        assert (await run_batch(client, emulator, _lines(10))).status == "completed"


async def test_token_limit_and_validation_faults(openai_emulator: AsgiOpenAI) -> None:
    client, emulator = openai_emulator.client, openai_emulator.emulator
    emulator.faults.token_limit_next_batches = 1
    emulator.faults.fail_next_batches = 1
    assert (await run_batch(client, emulator, _lines(2))).errors.data[0].code == "validation_failed"
    assert (await run_batch(client, emulator, _lines(2))).errors.data[0].code == "token_limit_exceeded"
    assert (await run_batch(client, emulator, _lines(2))).status == "completed"


async def test_output_expires_after(openai_emulator: AsgiOpenAI) -> None:
    client, emulator = openai_emulator.client, openai_emulator.emulator
    expiry: Any = {"anchor": "created_at", "seconds": 7200}
    batch = await run_batch(client, emulator, _lines(2), output_expires_after=expiry)
    info = await client.files.retrieve(batch.output_file_id)
    assert info.expires_at == batch.completed_at + 7200
    openai_emulator.clock.advance(7200)
    with pytest.raises(NotFoundError):
        await client.files.content(batch.output_file_id)
    assert (await client.batches.retrieve(batch.id)).output_file_id == batch.output_file_id
