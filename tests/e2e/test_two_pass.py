"""The product end to end: the app with its workers, the real groq SDK, the emulator behind it."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from groq_emulator import ModelBehaviour
from service.settings import DEFAULT_BATCH_PRICES
from tests.conftest import Service, fast_emulator_config, wait_until
from tests.emulator_inspection import provider_batches
from tests.payloads import pr_batch

PRIMARY = "openai/gpt-oss-20b"
FALLBACK = "llama-3.3-70b-versatile"


def assert_cost_is_usage_times_price(summary: dict[str, Any]) -> None:
    total = 0.0
    for pass_ in summary["passes"]:
        price_in, price_out = DEFAULT_BATCH_PRICES[pass_["model"]]
        cost = pass_["cost"]
        expected = (cost["input_tokens"] * price_in + cost["output_tokens"] * price_out) / 1_000_000
        assert cost["usd"] == pytest.approx(expected, rel=0, abs=1e-8)
        total += expected
    assert summary["cost"]["usd"] == pytest.approx(total, rel=0, abs=1e-8)
    assert summary["cost"]["input_tokens"] == sum(p["cost"]["input_tokens"] for p in summary["passes"])


def assert_each_item_once(rows: list[dict[str, Any]], expected_ids: set[str]) -> None:
    ids = [row["custom_id"] for row in rows]
    assert len(ids) == len(set(ids)), "a custom_id appears twice in the results"
    assert set(ids) == expected_ids
    for row in rows:
        assert row["status"] in ("succeeded", "failed")
        if row["status"] == "failed":
            assert row["error"]["code"]
        else:
            assert row["output"] is not None and row["error"] is None


async def test_fallback_sends_exactly_the_pass1_failures_and_merges(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(database_url)
    created = await service.submit(pr_batch(300), fallback=True)
    summary = await service.wait(created["id"])

    assert summary["status"] == "completed"
    first, second = summary["passes"]
    assert (first["model"], second["model"]) == (PRIMARY, FALLBACK)
    assert first["failed"] > 0, "the emulator's gpt-oss-20b should fail some requests"
    assert second["items"] == first["failed"]

    sent = provider_batches(service.emulator)
    pass1_ids = {cid for batch in sent if batch.metadata["pass"] == "1" for cid in batch.custom_ids}
    pass2_ids = [cid for batch in sent if batch.metadata["pass"] == "2" for cid in batch.custom_ids]
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 301)})
    decided_in_pass2 = {r["custom_id"] for r in rows if r["pass"] == 2}
    assert len(pass1_ids) == 300
    assert len(pass2_ids) == first["failed"]
    assert sorted(pass2_ids) == sorted(decided_in_pass2), "pass 2 must be exactly the pass-1 failures"
    sample = await item(service, created["id"], pass2_ids[0])
    assert sample["attempts"][0]["status"] == "failed"
    succeeded_in_pass1 = {r["custom_id"] for r in rows if r["pass"] == 1 and r["status"] == "succeeded"}
    assert not succeeded_in_pass1 & set(pass2_ids), "an item that passed in pass 1 was sent again"

    assert summary["counts"] == {
        "total": 300,
        "succeeded": sum(r["status"] == "succeeded" for r in rows),
        "failed": sum(r["status"] == "failed" for r in rows),
        "pending": 0,
    }
    assert summary["counts"]["succeeded"] >= 295
    assert_cost_is_usage_times_price(summary)
    # each row is rounded to 8 decimals, so the sum may drift by half a unit per row
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(summary["cost"]["usd"], rel=0, abs=len(rows) * 5e-9)
    assert sum(first["failure_reasons"].values()) == first["failed"]


async def item(service: Service, batch_id: str, custom_id: str) -> dict[str, Any]:
    body = (await service.client.get(f"/batches/{batch_id}/items/{custom_id}")).json()
    first = body["attempts"][0]
    return {"custom_id": custom_id, "failed_first": first["status"] == "failed", "attempts": body["attempts"]}


async def test_without_fallback_failures_stay_failed_with_reasons(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    created = await service.submit(pr_batch(200))
    summary = await service.wait(created["id"])

    assert summary["status"] == "completed"
    assert len(summary["passes"]) == 1
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 201)})
    reasons = Counter(r["error"]["code"] for r in rows if r["status"] == "failed")
    assert reasons == Counter(summary["failure_reasons"])
    assert reasons["json_validate_failed"] > 0
    assert_cost_is_usage_times_price(summary)


async def test_no_second_pass_when_everything_passes(start_service: Any, sqlite_url: str) -> None:
    config = fast_emulator_config(behaviours={PRIMARY: ModelBehaviour(0.0, 0.0, 0.0, 0.0)})
    service: Service = await start_service(sqlite_url, emulator_config=config)
    created = await service.submit(pr_batch(50), fallback=True)
    summary = await service.wait(created["id"])
    assert summary["status"] == "completed"
    assert [p["number"] for p in summary["passes"]] == [1]
    assert summary["counts"]["succeeded"] == 50
    assert len(provider_batches(service.emulator)) == 1


async def test_batch_fails_when_nothing_passes(start_service: Any, sqlite_url: str) -> None:
    always_fail = ModelBehaviour(1.0, 0.0, 0.0, 0.0)
    config = fast_emulator_config(behaviours={PRIMARY: always_fail, FALLBACK: always_fail})
    service: Service = await start_service(sqlite_url, emulator_config=config)
    created = await service.submit(pr_batch(30), fallback=True)
    summary = await service.wait(created["id"])
    assert summary["status"] == "failed"
    assert summary["counts"] == {"total": 30, "succeeded": 0, "failed": 30, "pending": 0}
    rows = await service.results(created["id"])
    assert {r["pass"] for r in rows} == {2}
    assert {r["error"]["code"] for r in rows} == {"json_validate_failed"}


async def test_expired_provider_batch_loses_nothing(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(database_url)
    service.emulator.faults.expire_next_batches = 1
    service.emulator.faults.expire_after_fraction = 0.5
    created = await service.submit(pr_batch(100), fallback=True)
    summary = await service.wait(created["id"])
    first = summary["passes"][0]
    assert first["provider_batches"][0]["status"] == "expired"
    assert first["failure_reasons"].get("batch_expired", 0) >= 40
    assert summary["passes"][1]["items"] == first["failed"]
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 101)})
    assert summary["counts"]["succeeded"] >= 95


async def test_failed_provider_batch_items_go_to_fallback(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    service.emulator.faults.fail_next_batches = 1
    created = await service.submit(pr_batch(40), fallback=True)
    summary = await service.wait(created["id"])
    first, second = summary["passes"]
    assert first["failure_reasons"] == {"batch_failed": 40}
    assert second["items"] == 40
    assert summary["counts"]["succeeded"] >= 38


async def test_provider_hiccups_delay_but_lose_nothing(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url, groq_max_retries=0)
    service.emulator.faults.rate_limit_next = 3
    service.emulator.faults.server_error_next = 3
    created = await service.submit(pr_batch(60), fallback=True)
    summary = await service.wait(created["id"])
    assert summary["status"] == "completed"
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 61)})
    keys = Counter(b.metadata["llm_batch_chunk"] for b in provider_batches(service.emulator))
    assert all(count == 1 for count in keys.values()), f"duplicate provider batches: {keys}"


async def test_passes_are_chunked_under_the_line_limit(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url, max_lines_per_provider_batch=40)
    created = await service.submit(pr_batch(100))
    summary = await service.wait(created["id"])
    chunks = summary["passes"][0]["provider_batches"]
    assert [c["lines"] for c in chunks] == [40, 40, 20]
    sent = provider_batches(service.emulator)
    assert sorted(len(b.custom_ids) for b in sent) == [20, 40, 40]
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 101)})


async def test_retry_with_model_override_and_subset(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    created = await service.submit(pr_batch(100))
    summary = await service.wait(created["id"])
    failed = [r["custom_id"] for r in await service.results(created["id"]) if r["status"] == "failed"]
    assert len(failed) >= 2
    subset = failed[:2]

    response = await service.client.post(
        f"/batches/{created['id']}/retry", json={"model": "openai/gpt-oss-120b", "custom_ids": subset}
    )
    assert response.status_code == 202, response.text
    summary = await service.wait(created["id"])
    retry_pass = summary["passes"][-1]
    assert (retry_pass["number"], retry_pass["model"], retry_pass["items"]) == (2, "openai/gpt-oss-120b", 2)
    sent = [b for b in provider_batches(service.emulator) if b.metadata["pass"] == "2"]
    assert sorted(cid for b in sent for cid in b.custom_ids) == sorted(subset)
    assert_cost_is_usage_times_price(summary)


async def test_retry_refused_while_running_and_when_nothing_failed(start_service: Any, sqlite_url: str) -> None:
    config = fast_emulator_config(processing_seconds=3.0, behaviours={PRIMARY: ModelBehaviour(0.0, 0.0, 0.0, 0.0)})
    service: Service = await start_service(sqlite_url, emulator_config=config)
    created = await service.submit(pr_batch(10))
    running = await service.client.post(f"/batches/{created['id']}/retry")
    assert running.status_code == 409
    assert running.headers["content-type"].startswith("application/problem+json")
    await service.wait(created["id"])
    nothing = await service.client.post(f"/batches/{created['id']}/retry")
    assert nothing.status_code == 409
    assert "no failed items" in nothing.json()["detail"]


async def test_cancel_mid_pass_keeps_finished_results(start_service: Any, database_url: str) -> None:
    config = fast_emulator_config(processing_seconds=2.0, cancel_seconds=0.1)
    service: Service = await start_service(database_url, emulator_config=config)
    created = await service.submit(pr_batch(100), fallback=True)
    while True:
        body = (await service.client.get(f"/batches/{created['id']}")).json()
        chunks = body["passes"][0]["provider_batches"] if body["passes"] else []
        if chunks and chunks[0]["id"]:
            break

    await asyncio.sleep(1.0)
    response = await service.client.post(f"/batches/{created['id']}/cancel")
    assert response.status_code == 202
    summary = await service.wait(created["id"])
    assert summary["status"] == "cancelled"
    assert len(summary["passes"]) == 1, "no fallback pass after a cancel"
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 101)})
    codes = Counter(r["error"]["code"] for r in rows if r["status"] == "failed")
    assert codes["cancelled"] > 0
    assert summary["counts"]["succeeded"] > 0, "results finished before the cancel are kept"
    again = await service.client.post(f"/batches/{created['id']}/cancel")
    assert again.status_code == 409


async def test_results_stream_as_ndjson(start_service: Any, sqlite_url: str) -> None:
    import orjson

    service: Service = await start_service(sqlite_url)
    created = await service.submit(pr_batch(30), fallback=True)
    await service.wait(created["id"])
    response = await service.client.get(f"/batches/{created['id']}/results", headers={"Accept": "application/x-ndjson"})
    assert response.headers["content-type"].startswith("application/x-ndjson")
    rows = [orjson.loads(line) for line in response.content.splitlines()]
    assert [r["custom_id"] for r in rows] == [f"pr-{n}" for n in range(1, 31)]
    failed_only = await service.client.get(f"/batches/{created['id']}/results", params={"status": "failed", "limit": 5})
    assert all(r["status"] == "failed" for r in failed_only.json()["data"])


async def test_provider_batch_lost_by_groq_fails_its_items_instead_of_waiting_forever(
    start_service: Any, sqlite_url: str
) -> None:
    config = fast_emulator_config(processing_seconds=2.0)
    service: Service = await start_service(sqlite_url, emulator_config=config)
    created = await service.submit(pr_batch(20), fallback=True)
    await wait_until(lambda: bool(provider_batches(service.emulator)), what="a provider batch")
    service.emulator.reset()  # Groq forgets the batch: every read of it answers 404
    summary = await service.wait(created["id"])
    first, second = summary["passes"]
    assert first["failure_reasons"] == {"batch_failed": 20}
    assert first["provider_batches"][0]["status"] == "lost"
    assert second["items"] == 20
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 21)})


async def test_lines_too_large_for_a_provider_file_are_refused_at_submit_and_retry(
    start_service: Any, sqlite_url: str
) -> None:
    from service.pipeline.requests import PassRequestSpec, request_line

    payload = pr_batch(5)
    item = payload["items"][0]
    primary = PassRequestSpec(PRIMARY, True, payload["params"], {}, None)
    fallback = PassRequestSpec(FALLBACK, False, payload["params"], {}, None)
    primary_size = len(request_line(primary, item["custom_id"], item["body"]))
    fallback_size = len(request_line(fallback, item["custom_id"], item["body"]))
    assert fallback_size > primary_size + 100, "llama lines carry the schema as an instruction"
    always_fail = fast_emulator_config(behaviours={PRIMARY: ModelBehaviour(1.0, 0.0, 0.0, 0.0)})
    service: Service = await start_service(
        sqlite_url, emulator_config=always_fail, max_bytes_per_provider_batch=primary_size + 50
    )

    refused = await service.client.post("/batches", params={"fallback": "true"}, json=payload)
    assert refused.status_code == 422
    assert "pr-1" in refused.json()["detail"] and "bytes" in refused.json()["detail"]
    assert (await service.client.get("/batches")).json()["data"] == []

    created = await service.submit(payload)
    summary = await service.wait(created["id"])
    assert summary["counts"]["failed"] == 5
    retry = await service.client.post(f"/batches/{created['id']}/retry")
    assert retry.status_code == 422
    assert (await service.client.get(f"/batches/{created['id']}")).json()["status"] == "failed"
