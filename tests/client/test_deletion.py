"""Deleting a batch through the client (sync and async) and the CLI, against the real service: the tombstone
comes back, the purge completes, and reading the batch's results is a 410 problem."""

from __future__ import annotations

import time
from typing import Any

import pytest
from llm_batch_client import AsyncLlmBatchClient, Batch, BatchOptions, LlmBatchClient, LlmBatchError
from llm_batch_client.cli import EXIT_DONE, EXIT_USAGE, main

from tests.cli.live_server import LiveService
from tests.client.conftest import PARAMS, TOKEN, items

FAST: dict[str, Any] = {"timeout": 60, "poll_interval": 0.05, "max_poll_interval": 0.2}


def purged(client: LlmBatchClient, batch_id: str, within: float = 30.0) -> Batch:
    deadline = time.monotonic() + within
    while not (batch := client.get(batch_id)).purged:
        assert time.monotonic() < deadline, f"{batch_id} not purged: {batch}"
        time.sleep(0.05)
    return batch


def test_delete_batch_purges_a_finished_batch_and_keeps_its_counts(client: LlmBatchClient) -> None:
    done = client.wait(client.submit(items(5), BatchOptions(params=PARAMS, strict=False)).id, **FAST)
    assert list(client.iter_results(done.id))

    deleted = client.delete_batch(done.id)
    assert deleted.id == done.id and deleted.deleted_at is not None
    tombstone = purged(client, done.id)
    assert client.delete_batch(done.id) == tombstone, "a second delete answers the same tombstone"
    assert tombstone.counts == done.counts and tombstone.cost == done.cost and tombstone.passes == done.passes
    with pytest.raises(LlmBatchError) as gone:
        list(client.iter_results(done.id))
    assert gone.value.status == 410 and gone.value.type.endswith("gone")
    with pytest.raises(LlmBatchError) as missing:
        client.delete_batch("lb_00000000000000000000000000")
    assert missing.value.status == 404


async def test_the_async_client_deletes_too(async_client: AsyncLlmBatchClient, client: LlmBatchClient) -> None:
    batch = await async_client.submit(items(3), BatchOptions(params=PARAMS, strict=False))
    deleted = await async_client.delete_batch(batch.id)
    assert deleted.deleted_at is not None and not deleted.purged
    assert purged(client, batch.id).finished
    with pytest.raises(LlmBatchError) as gone:
        await async_client.item(batch.id, "pr-1")
    assert gone.value.status == 410


def test_the_cli_deletes_a_batch(
    service: LiveService, client: LlmBatchClient, capsys: pytest.CaptureFixture[str]
) -> None:
    done = client.wait(client.submit(items(2), BatchOptions(params=PARAMS, strict=False)).id, **FAST)
    argv = ["--url", service.url, "--token", TOKEN]
    assert main([*argv, "delete", done.id]) == EXIT_DONE
    assert f"batch {done.id}" in capsys.readouterr().out
    purged(client, done.id)
    assert main([*argv, "delete", done.id]) == EXIT_DONE
    assert f"Batch {done.id} is deleted: its content is purged" in capsys.readouterr().out
    assert main([*argv, "results", done.id]) == EXIT_USAGE
    assert "410 Gone" in capsys.readouterr().err
