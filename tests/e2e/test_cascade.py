"""The product end to end: the app with its workers, the real groq SDK, the emulator behind it, and a batch
running through a cascade of tiers."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from groq_emulator import ModelBehaviour
from service.pipeline.catalogue import Catalogue
from service.pipeline.cost import Usage, usd_text
from tests.conftest import Service, fast_emulator_config, wait_until
from tests.emulator_inspection import provider_batches
from tests.payloads import pr_batch

SMALL = "openai/gpt-oss-20b"
LARGE = "openai/gpt-oss-120b"
CATALOGUE = Catalogue.build(prices={"meta-llama/llama-4-scout-17b-16e-instruct": (0.055, 0.11)})


def best_effort(count: int, **extra: Any) -> dict[str, Any]:
    """The seed's failure profile: no strict mode, so ~20% of gpt-oss-20b's answers fail JSON validation."""
    return pr_batch(count, strict=False, **extra)


def assert_cost_is_usage_times_price(summary: dict[str, Any]) -> None:
    """Invariant 4, to the picodollar: each pass's cost is its tokens times its model's price; the total adds up."""
    total = 0
    for pass_ in summary["passes"]:
        cost = pass_["cost"]
        expected = CATALOGUE.cost_pico(pass_["model"], Usage(cost["input_tokens"], cost["output_tokens"]))
        assert cost["usd_exact"] == usd_text(expected), pass_
        total += expected
    assert summary["cost"]["usd_exact"] == usd_text(total)
    for tier in summary["tiers"]:
        own = [p for p in summary["passes"] if p["tier"] == tier["tier"]]
        assert Decimal(tier["cost"]["usd_exact"]) == sum((Decimal(p["cost"]["usd_exact"]) for p in own), Decimal(0))


def assert_each_item_once(rows: list[dict[str, Any]], expected_ids: set[str]) -> None:
    """Invariant 1: every item ends with exactly one merged row, succeeded or failed with a reason."""
    ids = [row["custom_id"] for row in rows]
    assert len(ids) == len(set(ids)), "a custom_id appears twice in the results"
    assert set(ids) == expected_ids
    for row in rows:
        assert row["status"] in ("succeeded", "failed")
        if row["status"] == "failed":
            assert row["error"]["code"]
        else:
            assert row["output"] is not None and row["error"] is None


def sent_ids(service: Service, pass_number: int) -> list[str]:
    return [
        cid
        for batch in provider_batches(service.emulator)
        if batch.metadata["pass"] == str(pass_number)
        for cid in batch.custom_ids
    ]


async def test_failures_move_on_by_cause_and_merge_into_one_row_each(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(database_url)
    created = await service.submit(best_effort(300), fallback=True)
    assert [tier["model"] for tier in created["cascade"]] == [SMALL, LARGE]
    summary = await service.wait(created["id"])

    assert summary["status"] == "completed"
    first = summary["passes"][0]
    assert (first["number"], first["tier"], first["model"], first["sent_because"]) == (1, 0, SMALL, {"first": 300})
    reasons = first["failure_reasons"]
    assert reasons.get("json_validate_failed", 0) > 20, reasons
    later = summary["passes"][1:]
    escalated = [p for p in later if p["tier"] == 1]
    raised = [p for p in later if p["tier"] == 0]
    assert escalated and all(p["model"] == LARGE for p in escalated)
    assert escalated[0]["sent_because"].get("escalated:json_validate_failed") == reasons["json_validate_failed"]
    if reasons.get("max_tokens"):  # out of tokens: the same model, twice the budget, before any escalation
        assert raised and raised[0]["sent_because"] == {"raised_budget:max_tokens": reasons["max_tokens"]}
        assert raised[0]["number"] < escalated[-1]["number"] or len(escalated) == 1

    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 301)})
    succeeded_first = {r["custom_id"] for r in rows if r["pass"] == 1 and r["status"] == "succeeded"}
    resent = {cid for p in later for cid in sent_ids(service, p["number"])}
    assert not succeeded_first & resent, "an item that passed in pass 1 was sent again"
    for row in rows:
        steps = row["lineage"]
        assert steps[0]["sent_because"] == "first" and steps[-1]["pass"] == row["pass"]
        assert row["attempts"] == len(steps)
        assert sum(Decimal(step["cost_usd_exact"]) for step in steps) == Decimal(row["cost_usd_exact"])
    assert summary["counts"] == {
        "total": 300,
        "succeeded": sum(r["status"] == "succeeded" for r in rows),
        "failed": sum(r["status"] == "failed" for r in rows),
        "pending": 0,
        "retrying": 0,
    }
    assert summary["counts"]["succeeded"] >= 297
    assert_cost_is_usage_times_price(summary)
    # rows add up to the batch total exactly: each row's cost is exact, not a float rounded on its own
    assert sum(Decimal(r["cost_usd_exact"]) for r in rows) == Decimal(summary["cost"]["usd_exact"])
    assert Counter(r["error"]["code"] for r in rows if r["status"] == "failed") == Counter(summary["failure_reasons"])


async def test_strict_outputs_cost_little_more_than_the_floor(start_service: Any, sqlite_url: str) -> None:
    """With strict json_schema on gpt-oss, only budget cut-offs remain: a second try on the same model with
    twice the budget cures them, at a few percent above the floor (every item once on the cheapest tier)."""
    service: Service = await start_service(sqlite_url)
    created = await service.submit(pr_batch(600), fallback=True)
    summary = await service.wait(created["id"])
    assert summary["strict"] and summary["passes"][0]["strict"]
    first = summary["passes"][0]
    assert set(first["failure_reasons"]) <= {"max_tokens"}
    assert all(p["model"] == SMALL for p in summary["passes"]), "nothing needed the stronger model"
    assert summary["counts"]["succeeded"] >= 0.995 * 600
    floor = Decimal(first["cost"]["usd_exact"])
    assert Decimal(summary["cost"]["usd_exact"]) <= Decimal("1.10") * floor


async def test_counts_never_go_backwards(start_service: Any, sqlite_url: str) -> None:
    config = fast_emulator_config(processing_seconds=0.5)
    service: Service = await start_service(sqlite_url, emulator_config=config)
    created = await service.submit(best_effort(200), fallback=True)
    seen: list[dict[str, int]] = []
    while True:
        body = (await service.client.get(f"/batches/{created['id']}")).json()
        seen.append(body["counts"])
        if body["status"] in ("completed", "failed", "cancelled"):
            break
        await asyncio.sleep(0.02)
    for before, after in itertools.pairwise(seen):
        assert after["succeeded"] >= before["succeeded"]
        assert after["failed"] >= before["failed"]
        assert after["pending"] <= before["pending"]
        assert sum(after[k] for k in ("succeeded", "failed", "pending", "retrying")) == 200
    assert any(counts["retrying"] for counts in seen), "items waiting for a later pass are counted as retrying"


async def test_without_fallback_failures_stay_on_the_first_tier(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    created = await service.submit(best_effort(200))
    summary = await service.wait(created["id"])
    assert summary["status"] == "completed"
    assert {p["model"] for p in summary["passes"]} == {SMALL}
    assert summary["fallback"] is False and summary["fallback_model"] is None
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 201)})
    reasons = Counter(r["error"]["code"] for r in rows if r["status"] == "failed")
    assert reasons == Counter(summary["failure_reasons"])
    assert reasons["json_validate_failed"] > 0
    assert_cost_is_usage_times_price(summary)


async def test_no_second_pass_when_everything_passes(start_service: Any, sqlite_url: str) -> None:
    config = fast_emulator_config(behaviours={SMALL: ModelBehaviour(0.0, 0.0, 0.0, 0.0)})
    service: Service = await start_service(sqlite_url, emulator_config=config)
    created = await service.submit(pr_batch(50), fallback=True)
    summary = await service.wait(created["id"])
    assert summary["status"] == "completed"
    assert [p["number"] for p in summary["passes"]] == [1]
    assert summary["counts"]["succeeded"] == 50
    assert len(provider_batches(service.emulator)) == 1


async def test_batch_fails_when_nothing_passes(start_service: Any, sqlite_url: str) -> None:
    always_fail = ModelBehaviour(1.0, 0.0, 0.0, 0.0)
    config = fast_emulator_config(behaviours={SMALL: always_fail, LARGE: always_fail})
    service: Service = await start_service(sqlite_url, emulator_config=config)
    created = await service.submit(best_effort(30), fallback=True)
    summary = await service.wait(created["id"])
    assert summary["status"] == "failed"
    assert summary["counts"] == {"total": 30, "succeeded": 0, "failed": 30, "pending": 0, "retrying": 0}
    rows = await service.results(created["id"])
    assert {r["pass"] for r in rows} == {2} and {r["tier"] for r in rows} == {1}
    assert {r["error"]["code"] for r in rows} == {"json_validate_failed"}


async def test_expired_items_are_resent_on_the_same_tier_and_nothing_is_lost(
    start_service: Any, database_url: str
) -> None:
    service: Service = await start_service(database_url)
    service.emulator.faults.expire_next_batches = 1
    service.emulator.faults.expire_after_fraction = 0.5
    created = await service.submit(pr_batch(100), fallback=True)
    summary = await service.wait(created["id"])
    first = summary["passes"][0]
    assert first["provider_batches"][0]["status"] == "expired"
    expired = first["failure_reasons"].get("batch_expired", 0)
    assert expired >= 40
    resent = [p for p in summary["passes"] if p["sent_because"].get("resent:batch_expired:1")]
    assert resent and resent[0]["model"] == SMALL, "a request that never ran goes to the same tier again"
    assert resent[0]["sent_because"]["resent:batch_expired:1"] == expired
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 101)})
    assert summary["counts"]["succeeded"] >= 98


async def test_a_provider_batch_that_fails_validation_is_resent(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    service.emulator.faults.fail_next_batches = 1
    created = await service.submit(pr_batch(40), fallback=True)
    summary = await service.wait(created["id"])
    first, second = summary["passes"][:2]
    assert first["failure_reasons"] == {"batch_failed": 40}
    assert (second["tier"], second["sent_because"]) == (0, {"resent:batch_failed:1": 40})
    assert summary["counts"]["succeeded"] >= 39


async def test_provider_hiccups_delay_but_lose_nothing(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url, groq_max_retries=0)
    service.emulator.faults.rate_limit_next = 3
    service.emulator.faults.server_error_next = 3
    created = await service.submit(best_effort(60), fallback=True)
    summary = await service.wait(created["id"])
    assert summary["status"] == "completed"
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 61)})
    keys = Counter(b.metadata["llm_batch_chunk"] for b in provider_batches(service.emulator))
    assert all(count == 1 for count in keys.values()), f"duplicate provider batches: {keys}"


async def test_passes_are_chunked_under_the_line_limit(start_service: Any, sqlite_url: str) -> None:
    config = fast_emulator_config(behaviours={SMALL: ModelBehaviour(0.0, 0.0, 0.0, 0.0)})
    service: Service = await start_service(sqlite_url, emulator_config=config, max_lines_per_provider_batch=40)
    created = await service.submit(pr_batch(100))
    summary = await service.wait(created["id"])
    chunks = summary["passes"][0]["provider_batches"]
    assert [c["lines"] for c in chunks] == [40, 40, 20]
    sent = provider_batches(service.emulator)
    assert sorted(len(b.custom_ids) for b in sent) == [20, 40, 40]
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 101)})


async def test_a_decommissioned_model_is_refused_with_its_replacement(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    refused = await service.client.post(
        "/batches", params={"fallback": "true"}, json=pr_batch(2, fallback_model="llama-3.3-70b-versatile")
    )
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["field"] == "fallback_model" and problem["replacement"] == LARGE
    assert "2026-08-16" in problem["detail"] and LARGE in problem["detail"]
    in_cascade = await service.client.post(
        "/batches",
        json=pr_batch(2, cascade=[{"model": SMALL}, {"model": "meta-llama/llama-4-maverick-17b-128e-instruct"}]),
    )
    assert in_cascade.status_code == 422 and in_cascade.json()["field"] == "cascade[1].model"
    assert (await service.client.get("/batches")).json()["data"] == []


async def test_a_deprecated_model_is_accepted_with_a_warning(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(
        sqlite_url, model_catalogue={LARGE: {"lifecycle": "deprecated", "shutdown_date": "2027-02-01"}}
    )
    created = await service.submit(pr_batch(2), fallback=True)
    assert any("deprecated" in w and "2027-02-01" in w for w in created["warnings"])


async def test_a_model_groq_no_longer_serves_moves_its_items_on_and_is_refused_after(
    start_service: Any, sqlite_url: str
) -> None:
    """The catalogue still thinks gpt-oss-20b is active, Groq has decommissioned it: every line answers
    model_decommissioned, the items go to the next tier, and the model is marked so submissions are refused."""
    config = fast_emulator_config()
    service: Service = await start_service(sqlite_url, emulator_config=config)
    await wait_until(
        lambda: any(r.path.endswith("/models") and r.status == 200 for r in service.emulator.request_log),
        what="the start-up model sync",
    )
    # Groq retires the model after the service last read its model list (the next read is an hour away).
    service.emulator.config = dataclasses.replace(config, decommissioned_models=config.decommissioned_models | {SMALL})
    created = await service.submit(pr_batch(20), fallback=True)
    summary = await service.wait(created["id"])
    first = summary["passes"][0]
    assert first["failure_reasons"] == {"model_decommissioned": 20}
    assert summary["passes"][1]["sent_because"] == {"escalated:model_decommissioned": 20}
    assert summary["counts"]["succeeded"] >= 19
    refused = await service.client.post("/batches", json=pr_batch(2))
    assert refused.status_code == 422 and SMALL in refused.json()["detail"]
    health = (await service.client.get("/healthz")).json()
    assert SMALL in health["unusable_models"]


async def test_retry_with_model_override_and_subset(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    created = await service.submit(best_effort(100))
    await service.wait(created["id"])
    failed = [r["custom_id"] for r in await service.results(created["id"]) if r["status"] == "failed"]
    assert len(failed) >= 2
    subset = failed[:2]

    response = await service.client.post(f"/batches/{created['id']}/retry", json={"model": LARGE, "custom_ids": subset})
    assert response.status_code == 202, response.text
    accepted = response.json()
    retry_pass = accepted["passes"][-1]
    assert (retry_pass["kind"], retry_pass["model"], retry_pass["items"]) == ("retry", LARGE, 2)
    assert accepted["counts"]["retrying"] == 2 and accepted["counts"]["failed"] == len(failed) - 2
    summary = await service.wait(created["id"])
    last = summary["passes"][-1]
    sent = sent_ids(service, last["number"])
    assert sorted(sent) == sorted(subset)
    assert_cost_is_usage_times_price(summary)
    changed = await service.client.get(f"/batches/{created['id']}/results", params={"since_pass": last["number"] - 1})
    assert sorted(row["custom_id"] for row in changed.json()["data"]) == sorted(subset)


async def test_retry_refused_while_running_and_when_nothing_failed(start_service: Any, sqlite_url: str) -> None:
    config = fast_emulator_config(processing_seconds=3.0, behaviours={SMALL: ModelBehaviour(0.0, 0.0, 0.0, 0.0)})
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
    created = await service.submit(best_effort(100), fallback=True)
    while True:
        body = (await service.client.get(f"/batches/{created['id']}")).json()
        chunks = body["passes"][0]["provider_batches"] if body["passes"] else []
        if chunks and chunks[0]["id"]:
            break
        await asyncio.sleep(0.02)

    await asyncio.sleep(1.0)
    response = await service.client.post(f"/batches/{created['id']}/cancel")
    assert response.status_code == 202
    summary = await service.wait(created["id"])
    assert summary["status"] == "cancelled"
    assert len(summary["passes"]) == 1, "no later pass after a cancel"
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 101)})
    codes = Counter(r["error"]["code"] for r in rows if r["status"] == "failed")
    assert codes["cancelled"] > 0
    assert summary["counts"]["succeeded"] > 0, "results finished before the cancel are kept"
    assert summary["counts"]["pending"] == summary["counts"]["retrying"] == 0
    again = await service.client.post(f"/batches/{created['id']}/cancel")
    assert again.status_code == 409


async def test_cancelling_a_queued_batch_fails_every_item_as_cancelled(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(database_url, workers_enabled=False)
    created = await service.submit(pr_batch(50))
    assert (await service.client.post(f"/batches/{created['id']}/cancel")).status_code == 202
    from tests.workers import real_provider, work_until_finished, worker_context

    ctx, engine = worker_context(service, real_provider(service), "late-worker")
    try:
        summary = await work_until_finished(service, ctx, created["id"])
    finally:
        await ctx.providers.close()
        await engine.dispose()
    assert summary["status"] == "cancelled"
    assert summary["counts"] == {"total": 50, "succeeded": 0, "failed": 50, "pending": 0, "retrying": 0}
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 51)})
    assert {r["error"]["code"] for r in rows} == {"cancelled"}
    assert provider_batches(service.emulator) == []


async def test_results_stream_as_ndjson_and_honour_after_and_limit(start_service: Any, sqlite_url: str) -> None:
    import orjson

    service: Service = await start_service(sqlite_url)
    created = await service.submit(best_effort(30, items_metadata=True), fallback=True)
    await service.wait(created["id"])
    ndjson = {"Accept": "application/x-ndjson"}
    response = await service.client.get(f"/batches/{created['id']}/results", headers=ndjson)
    assert response.headers["content-type"].startswith("application/x-ndjson")
    rows = [orjson.loads(line) for line in response.content.splitlines()]
    assert [r["custom_id"] for r in rows] == [f"pr-{n}" for n in range(1, 31)]
    assert rows[4]["metadata"] == {"pr_id": 5}, "per-item metadata is echoed on its row"
    page = await service.client.get(
        f"/batches/{created['id']}/results", params={"after": "9", "limit": 5}, headers=ndjson
    )
    assert [orjson.loads(line)["custom_id"] for line in page.content.splitlines()] == [f"pr-{n}" for n in range(11, 16)]
    failed_only = await service.client.get(f"/batches/{created['id']}/results", params={"status": "failed", "limit": 5})
    assert all(r["status"] == "failed" for r in failed_only.json()["data"])
    by_tier = await service.client.get(f"/batches/{created['id']}/results", params={"tier": 1, "limit": 1000})
    assert by_tier.json()["data"] and all(r["tier"] == 1 for r in by_tier.json()["data"])


async def test_provider_batch_lost_by_groq_fails_its_items_instead_of_waiting_forever(
    start_service: Any, sqlite_url: str
) -> None:
    config = fast_emulator_config(processing_seconds=2.0)
    service: Service = await start_service(sqlite_url, emulator_config=config)
    created = await service.submit(pr_batch(20), fallback=True)
    await wait_until(lambda: bool(provider_batches(service.emulator)), what="a provider batch")
    service.emulator.reset()  # Groq forgets the batch: every read of it answers 404
    summary = await service.wait(created["id"])
    first, second = summary["passes"][:2]
    assert first["failure_reasons"] == {"batch_failed": 20}
    assert first["provider_batches"][0]["status"] == "lost"
    assert second["sent_because"] == {"resent:batch_failed:1": 20}
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 21)})


@pytest.mark.parametrize("fallback", [False, True])
async def test_lines_too_large_for_a_provider_file_are_refused_at_submit(
    start_service: Any, sqlite_url: str, fallback: bool
) -> None:
    payload = pr_batch(5)
    payload["items"][0]["body"]["messages"][1]["content"] = "x" * 4000
    service: Service = await start_service(sqlite_url, max_bytes_per_provider_batch=3000)
    refused = await service.client.post("/batches", params={"fallback": str(fallback).lower()}, json=payload)
    assert refused.status_code == 422
    assert "pr-1" in refused.json()["detail"] and "bytes" in refused.json()["detail"]
    assert (await service.client.get("/batches")).json()["data"] == []


async def test_three_tiers_each_take_what_the_one_before_could_not(start_service: Any, database_url: str) -> None:
    """The invariants hold with N tiers: one row per item, no succeeded item sent again, each tier priced on its
    own catalogue price, the total adding up."""
    third = "meta-llama/llama-4-scout-17b-16e-instruct"
    half_fail = ModelBehaviour(0.5, 0.0, 0.0, 0.0)
    config = fast_emulator_config(behaviours={SMALL: half_fail, LARGE: half_fail})
    service: Service = await start_service(database_url, emulator_config=config, model_prices={third: [0.055, 0.11]})
    cascade = [{"model": SMALL}, {"model": LARGE}, {"model": third, "params": {"temperature": 0.2}}]
    created = await service.submit(best_effort(120, cascade=cascade))
    summary = await service.wait(created["id"])

    assert [tier["model"] for tier in summary["tiers"]] == [SMALL, LARGE, third]
    assert all(tier["items"] > 0 for tier in summary["tiers"]), summary["tiers"]
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 121)})
    assert {row["tier"] for row in rows if row["status"] == "succeeded"} == {0, 1, 2}
    for row in rows:
        tiers = [step["tier"] for step in row["lineage"]]
        assert tiers == sorted(tiers), "an item only moves down the cascade"
        assert all(step["outcome"] != "succeeded" for step in row["lineage"][:-1]), "a success is never resent"
    third_pass = next(p for p in summary["passes"] if p["tier"] == 2)
    sent = [b for b in provider_batches(service.emulator) if b.metadata["pass"] == str(third_pass["number"])]
    assert sent and all(b.metadata["model"] == third for b in sent)
    assert_cost_is_usage_times_price(summary)
