"""Spend control end to end: an estimate before submitting (nothing sent, nothing stored), a budget the bill
never exceeds (one worker on SQLite, three racing on PostgreSQL), and reuse of identical requests that never
crosses tenants."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import select

from service.models import Chunk
from service.store import transaction
from service.workers.batch_loop import run_worker
from tests.api.test_bad_input import stored_rows
from tests.conftest import Service, fast_emulator_config
from tests.e2e.test_cascade import assert_cost_is_usage_times_price, assert_each_item_once
from tests.emulator_inspection import provider_batches
from tests.payloads import ndjson_lines, pr_batch
from tests.workers import real_provider, worker_context

SMALL = "openai/gpt-oss-20b"
LARGE = "openai/gpt-oss-120b"
TOKEN_A = "tenant-a-token-0123456789"
TOKEN_B = "tenant-b-token-0123456789"
ADMIN_TOKEN = "operator-token-0123456789"


def exact(money: dict[str, Any]) -> Decimal:
    return Decimal(money["usd_exact"])


async def estimate(service: Service, payload: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await service.client.post(
        "/batches/estimate", params={"fallback": "true"}, json=payload, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_estimate_sends_nothing_and_stores_nothing(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(database_url)
    calls_before = len(service.emulator.request_log)
    body = await estimate(service, pr_batch(50))

    assert body["items"] == 50 and body["reusable_items"] == 0
    assert [tier["model"] for tier in body["tiers"]] == [SMALL, LARGE]
    assert all(tier["based_on"] == "catalogue" and tier["history_attempts"] == 0 for tier in body["tiers"])
    assert "o200k" in body["input_tokens_counted_with"]
    assert 0 < exact(body["floor"]) <= exact(body["cost"]) < exact(body["upper_bound"])
    assert sum(exact(tier["cost"]) for tier in body["tiers"]) == exact(body["cost"])
    assert body["budget_usd"] is None and body["within_budget"] is None
    assert set((await stored_rows(database_url)).values()) == {0}
    sent = [record for record in service.emulator.request_log[calls_before:] if "/models" not in record.path]
    assert sent == [], "an estimate never calls Groq"


async def test_an_estimate_reads_ndjson_like_json_and_refuses_what_submit_refuses(
    start_service: Any, sqlite_url: str
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    payload = pr_batch(20, budget_usd="0.001")
    from_json = await estimate(service, payload)
    lines = b"\n".join(ndjson_lines(payload))
    from_ndjson = await service.client.post(
        "/batches/estimate",
        params={"fallback": "true"},
        content=lines,
        headers={"content-type": "application/x-ndjson"},
    )
    assert from_ndjson.status_code == 200, from_ndjson.text
    assert from_ndjson.json() == from_json
    assert from_json["budget_usd"] == "0.001" and from_json["within_budget"] is False

    refused = await service.client.post(
        "/batches/estimate", params={"fallback": "true"}, json=pr_batch(2, fallback_model="llama-3.3-70b-versatile")
    )
    assert refused.status_code == 422 and refused.json()["replacement"] == LARGE


async def run_to_end(service: Service, payload: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await service.client.post("/batches", params={"fallback": "true"}, json=payload, headers=headers)
    assert response.status_code == 202, response.text
    summary: dict[str, Any] = await service.wait(response.json()["id"])
    return summary


@pytest.mark.parametrize("strict", [False, True], ids=["best-effort", "strict"])
async def test_a_second_estimate_is_within_ten_percent_of_the_bill(
    start_service: Any, sqlite_url: str, strict: bool
) -> None:
    """The first estimate rests on the catalogue's priors; once a like workload has run, on its history."""
    service: Service = await start_service(sqlite_url)
    await run_to_end(service, pr_batch(300, strict=strict))
    workload = pr_batch(300, start=1000, strict=strict)
    informed = await estimate(service, workload)
    assert {tier["based_on"] for tier in informed["tiers"] if tier["items"]} == {"history"}
    assert informed["tiers"][0]["history_attempts"] >= 300
    summary = await run_to_end(service, workload)
    bill = exact(summary["cost"])
    assert abs(exact(informed["cost"]) - bill) <= Decimal("0.10") * bill, (informed["cost"], summary["cost"])
    assert bill <= exact(informed["upper_bound"])


def spent(summary: dict[str, Any]) -> Decimal:
    return Decimal(summary["budget"]["spent_usd"])


async def test_a_budget_below_the_cost_is_never_exceeded_and_loses_nothing(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url, max_lines_per_provider_batch=25)
    payload = pr_batch(200, strict=False, budget_usd="0.006")  # the whole batch costs about $0.013
    summary = await run_to_end(service, payload)

    assert summary["budget"] == {
        "budget_usd": "0.006",
        "reserved_usd": "0",
        "spent_usd": summary["cost"]["usd_exact"],
        "waiting_items": 0,
    }
    assert spent(summary) <= Decimal("0.006")
    rows = await service.results(summary["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 201)})
    over = [row for row in rows if row["status"] == "failed" and row["error"]["code"] == "budget_exceeded"]
    assert over, "the budget stopped part of the batch"
    assert summary["failure_reasons"]["budget_exceeded"] == len(over)
    assert_cost_is_usage_times_price(summary)
    sent = {custom_id for batch in provider_batches(service.emulator) for custom_id in batch.custom_ids}
    assert not sent & {row["custom_id"] for row in over if len(row["lineage"]) == 1}, "an item over budget was sent"


async def test_a_budget_that_fits_changes_nothing(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    summary = await run_to_end(service, pr_batch(40, budget_usd=10))
    assert summary["counts"]["succeeded"] >= 39 and "budget_exceeded" not in summary["failure_reasons"]
    assert summary["budget"]["reserved_usd"] == "0" and spent(summary) == exact(summary["cost"])


@pytest.mark.postgres
async def test_three_workers_racing_for_chunks_never_reserve_past_the_budget(
    start_service: Any, postgres_url: str
) -> None:
    """Every chunk is claimed before any finishes (the emulator takes seconds), so nothing is released while a
    round's chunks are out: the chunks of each pass must fit in what was left of the budget by their worst case
    alone, whichever worker laid them out or sent them; the items that did not fit wait for the next round."""
    config = fast_emulator_config(processing_seconds=1.5)
    service: Service = await start_service(
        postgres_url, emulator_config=config, workers_enabled=False, max_lines_per_provider_batch=5
    )
    budget = Decimal("0.006")
    created = await service.client.post("/batches", json=pr_batch(300, budget_usd=str(budget)))
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]
    workers = [worker_context(service, real_provider(service), f"racer-{n}") for n in range(3)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_worker(ctx, stop)) for ctx, _engine in workers]
    try:
        summary = await service.wait(batch_id, within=240)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    async with transaction(workers[0][0].sessions) as session:
        chunks = list((await session.exec(select(Chunk))).all())
    for _ctx, engine in workers:
        await engine.dispose()

    assert all(chunk.reserved for chunk in chunks), "every chunk reserved its worst case"
    by_pass: dict[int, int] = {}
    for chunk in chunks:
        by_pass[chunk.pass_id] = by_pass.get(chunk.pass_id, 0) + chunk.worst_case_pico
    assert all(worst <= int(budget * 10**12) for worst in by_pass.values())
    first = summary["passes"][0]
    assert first["items"] < 300, ("the first pass sent only what its worst case let through", first)
    assert len(summary["passes"]) > 1, "the others waited for a later round"
    assert spent(summary) <= budget and summary["budget"]["reserved_usd"] == "0"
    assert summary["budget"]["waiting_items"] == 0
    rows = await service.results(batch_id)
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 301)})
    assert summary["failure_reasons"].get("budget_exceeded", 0) > 0
    assert all(row["error"]["code"] == "budget_exceeded" for row in rows if row["status"] == "failed")


async def test_running_the_same_items_again_with_reuse_costs_nothing(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    first = await run_to_end(service, pr_batch(1000, strict=False, reuse=True))
    assert first["counts"]["succeeded"] == 1000, "every item must succeed for all of them to be reusable"
    sent_before = len(provider_batches(service.emulator))

    again = await run_to_end(service, pr_batch(1000, strict=False, reuse=True))
    assert len(provider_batches(service.emulator)) == sent_before, "the identical run created a provider batch"
    assert exact(again["cost"]) == 0 and again["counts"]["succeeded"] == 1000
    assert Decimal(again["saved_usd_exact"]) == exact(first["cost"]), "reuse saved exactly what the first run cost"
    assert sum(p["reused"] for p in again["passes"]) == sum(p["items"] for p in again["passes"])
    rows = {row["custom_id"]: row for row in await service.results(again["id"])}
    originals = {row["custom_id"]: row for row in await service.results(first["id"])}
    for custom_id, row in rows.items():
        assert row["output"] == originals[custom_id]["output"]
        assert row["model"] == originals[custom_id]["model"], "the answer's tier is the one it came from"
        assert all(step["reused_from"]["batch_id"] == first["id"] for step in row["lineage"])
        assert row["cost_usd_exact"] == "0"

    estimate_again = await estimate(service, pr_batch(1000, strict=False, reuse=True))
    assert estimate_again["reusable_items"] == 1000


async def test_a_changed_body_or_model_is_sent_again(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    await run_to_end(service, pr_batch(20, reuse=True))
    changed = pr_batch(20, reuse=True)
    changed["items"][3]["body"]["messages"][1]["content"] += "\nOne more line of diff."
    summary = await run_to_end(service, changed)
    assert summary["passes"][0]["reused"] == 19
    assert provider_batches(service.emulator)[-1].custom_ids == ["pr-4"]

    other_model = await run_to_end(service, pr_batch(20, reuse=True, model=LARGE))
    assert other_model["passes"][0]["reused"] == 0 and exact(other_model["cost"]) > 0


async def test_reuse_never_crosses_tenants(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(
        sqlite_url, api_tokens=[f"acme:{TOKEN_A}", f"globex:{TOKEN_B}"], admin_tokens=[ADMIN_TOKEN]
    )
    service.client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"  # the test's own reads see every tenant
    as_a = {"Authorization": f"Bearer {TOKEN_A}"}
    as_b = {"Authorization": f"Bearer {TOKEN_B}"}
    await run_to_end(service, pr_batch(30, reuse=True), **as_a)

    other_tenant = await run_to_end(service, pr_batch(30, reuse=True), **as_b)
    assert other_tenant["passes"][0]["reused"] == 0 and exact(other_tenant["cost"]) > 0
    assert (await estimate(service, pr_batch(30, reuse=True), **as_b))["reusable_items"] == 30  # now its own
    same_tenant = await run_to_end(service, pr_batch(30, reuse=True), **as_a)
    assert same_tenant["passes"][0]["reused"] == 30 and exact(same_tenant["cost"]) == 0
