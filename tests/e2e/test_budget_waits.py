"""A budget that is spent, not only guarded (issue #24), in process on SQLite and PostgreSQL: items that do not
fit wait for the next round instead of failing, an ample budget costs no extra pass, and PATCH /batches/{id}
raises a running batch's budget or sets a finished one's, sending its budget_exceeded items within it.
The 2,000-item acceptance against the independent stand-in is tests/reliability/test_budget_fill.py."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import Service, fast_emulator_config
from tests.e2e.test_cascade import assert_cost_is_usage_times_price, assert_each_item_once
from tests.emulator_inspection import provider_batches
from tests.payloads import pr_batch

TOKEN_A = "tenant-a-token-0123456789"
TOKEN_B = "tenant-b-token-0123456789"
ITEMS = 60


def exact(money: dict[str, Any]) -> Decimal:
    return Decimal(money["usd_exact"])


async def run_to_end(service: Service, payload: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await service.client.post("/batches", params={"fallback": "true"}, json=payload, headers=headers)
    assert response.status_code == 202, response.text
    summary: dict[str, Any] = await service.wait(response.json()["id"], within=120)
    return summary


def over_budget(rows: list[dict[str, Any]]) -> set[str]:
    return {row["custom_id"] for row in rows if row["status"] == "failed" and row["error"]["code"] == "budget_exceeded"}


async def test_items_that_do_not_fit_wait_and_the_budget_is_filled(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(database_url, max_lines_per_provider_batch=10)
    unbudgeted = await run_to_end(service, pr_batch(ITEMS, start=1000, strict=False))
    budget = (exact(unbudgeted["cost"]) / 2).quantize(Decimal("0.000001"))
    summary = await run_to_end(service, pr_batch(ITEMS, strict=False, budget_usd=str(budget)))

    spent = Decimal(summary["budget"]["spent_usd"])
    assert spent <= budget and summary["budget"]["reserved_usd"] == "0"
    assert summary["budget"]["waiting_items"] == 0, "nothing waits once the batch has finished"
    assert len(summary["passes"]) > len(unbudgeted["passes"]), "items that did not fit waited for later rounds"
    assert summary["passes"][0]["items"] < ITEMS, "the first pass held only what its worst case let through"
    rows = await service.results(summary["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, ITEMS + 1)})
    assert over_budget(rows), "half of the bill cannot buy every item"
    assert summary["failure_reasons"]["budget_exceeded"] == len(over_budget(rows))
    sent = {custom_id for batch in provider_batches(service.emulator) for custom_id in batch.custom_ids}
    assert not sent & {
        row["custom_id"] for row in rows if row["custom_id"] in over_budget(rows) and len(row["lineage"]) == 1
    }
    # the last item's worst case is all that can be left unspent (2,048 output tokens on the dearer tier)
    assert spent >= budget * Decimal("0.6"), f"only {spent / budget:.0%} of the budget was spent"
    assert_cost_is_usage_times_price(summary)


async def test_an_ample_budget_costs_no_extra_pass(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(database_url, max_lines_per_provider_batch=10)
    without = await run_to_end(service, pr_batch(ITEMS, strict=False))
    ample = await run_to_end(service, pr_batch(ITEMS, strict=False, budget_usd="10"))
    assert [(p["tier"], p["items"]) for p in ample["passes"]] == [(p["tier"], p["items"]) for p in without["passes"]]
    assert ample["budget"]["waiting_items"] == 0 and "budget_exceeded" not in ample["failure_reasons"]


async def patch(service: Service, batch_id: str, body: Any, **headers: str) -> Any:
    return await service.client.patch(f"/batches/{batch_id}", json=body, headers=headers)


async def test_raising_a_finished_batchs_budget_sends_its_budget_exceeded_items(
    start_service: Any, database_url: str
) -> None:
    service: Service = await start_service(database_url, max_lines_per_provider_batch=10)
    first = await run_to_end(service, pr_batch(ITEMS, strict=False, budget_usd="0.0008"))
    rows = await service.results(first["id"])
    stopped = over_budget(rows)
    assert stopped and first["status"] in ("completed", "failed")

    raised = await patch(service, first["id"], {"budget_usd": "10"})
    assert raised.status_code == 200, raised.text
    assert raised.json()["status"] == "running" and raised.json()["budget"]["budget_usd"] == "10"
    assert raised.json()["counts"]["retrying"] == len(stopped)
    again = await service.wait(first["id"], within=120)

    assert Decimal(again["budget"]["spent_usd"]) <= Decimal(10) and again["budget"]["reserved_usd"] == "0"
    after = {row["custom_id"]: row for row in await service.results(first["id"])}
    assert_each_item_once(list(after.values()), {f"pr-{n}" for n in range(1, ITEMS + 1)})
    assert not over_budget(list(after.values())), "the raised budget sent every item it had stopped"
    assert all(after[custom_id]["status"] == "succeeded" or after[custom_id]["error"] for custom_id in stopped)
    assert "budget_exceeded" not in again["failure_reasons"]
    assert_cost_is_usage_times_price(again)


async def test_a_finished_batchs_smaller_raise_stays_within_the_new_budget(
    start_service: Any, database_url: str
) -> None:
    service: Service = await start_service(database_url, max_lines_per_provider_batch=10)
    first = await run_to_end(service, pr_batch(ITEMS, strict=False, budget_usd="0.0008"))
    before = len(over_budget(await service.results(first["id"])))
    new_budget = Decimal("0.0016")
    assert (await patch(service, first["id"], {"budget_usd": str(new_budget)})).status_code == 200
    again = await service.wait(first["id"], within=120)
    assert Decimal(again["budget"]["spent_usd"]) <= new_budget
    assert Decimal(again["budget"]["spent_usd"]) > Decimal(first["budget"]["spent_usd"])
    assert 0 < len(over_budget(await service.results(first["id"]))) < before


async def test_a_running_batchs_budget_only_goes_up_and_the_same_value_twice_changes_nothing(
    start_service: Any, database_url: str
) -> None:
    service: Service = await start_service(database_url, workers_enabled=False)
    budgeted = (await service.client.post("/batches", json=pr_batch(5, budget_usd="0.5"))).json()
    lowered = await patch(service, budgeted["id"], {"budget_usd": "0.25"})
    assert lowered.status_code == 409 and lowered.headers["content-type"] == "application/problem+json"
    assert lowered.json()["field"] == "budget_usd" and "only be raised" in lowered.json()["detail"]

    first = await patch(service, budgeted["id"], {"budget_usd": 0.75})
    second = await patch(service, budgeted["id"], {"budget_usd": "0.75"})
    assert first.status_code == second.status_code == 200
    assert (
        first.json()["budget"]
        == second.json()["budget"]
        == {
            "budget_usd": "0.75",
            "reserved_usd": "0",
            "spent_usd": "0",
            "waiting_items": 0,
        }
    )
    assert first.json()["status"] == second.json()["status"] == "queued"

    unbudgeted = (await service.client.post("/batches", json=pr_batch(5))).json()
    set_while_running = await patch(service, unbudgeted["id"], {"budget_usd": "1"})
    assert set_while_running.status_code == 409 and set_while_running.json()["field"] == "budget_usd"
    removed = await patch(service, budgeted["id"], {"budget_usd": None})
    assert removed.status_code == 200 and removed.json()["budget"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "budget_usd"),
        ({"budget_usd": -1}, "budget_usd"),
        ({"budget_usd": "abc"}, "budget_usd"),
        ({"budget_usd": 1, "model": "x"}, "model"),
    ],
)
async def test_a_bad_budget_change_is_422_naming_the_field(
    start_service: Any, sqlite_url: str, body: dict[str, Any], field: str
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    batch = (await service.client.post("/batches", json=pr_batch(2, budget_usd="0.5"))).json()
    refused = await patch(service, batch["id"], body)
    assert refused.status_code == 422, refused.text
    assert field in (refused.json().get("field") or str(refused.json().get("errors")))


async def test_another_tenants_batch_is_not_found(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(
        database_url, api_tokens=[f"acme:{TOKEN_A}", f"globex:{TOKEN_B}"], workers_enabled=False
    )
    as_a = {"Authorization": f"Bearer {TOKEN_A}"}
    as_b = {"Authorization": f"Bearer {TOKEN_B}"}
    created = await service.client.post("/batches", json=pr_batch(2, budget_usd="0.5"), headers=as_a)
    batch_id = created.json()["id"]
    assert (await patch(service, batch_id, {"budget_usd": "1"}, **as_b)).status_code == 404
    mine = await service.client.get(f"/batches/{batch_id}", headers=as_a)
    assert mine.json()["budget"]["budget_usd"] == "0.5", "another tenant's PATCH changed nothing"
    assert (await patch(service, batch_id, {"budget_usd": "1"}, **as_a)).status_code == 200


async def test_an_estimate_says_what_a_budget_buys(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(database_url, workers_enabled=False)
    full = (await service.client.post("/batches/estimate", json=pr_batch(100))).json()
    assert full["budget_buys"] is None
    cost = exact(full["cost"])
    half = (await service.client.post("/batches/estimate", json=pr_batch(100, budget_usd=str(cost / 2)))).json()
    bought = half["budget_buys"]
    assert bought["based_on"] == "catalogue"
    assert exact(bought["cost"]) <= cost / 2 and exact(bought["cost"]) >= cost / 2 - Decimal("0.000000000001")
    assert 0 < bought["items"] < 100
    ample = (await service.client.post("/batches/estimate", json=pr_batch(100, budget_usd="10"))).json()
    assert ample["budget_buys"]["cost"] == full["cost"]
    assert abs(ample["budget_buys"]["items"] - 2 * bought["items"]) <= 0.2


async def test_a_retry_that_does_not_fit_goes_on_in_later_retry_passes(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(database_url, max_lines_per_provider_batch=5)
    submitted = await service.submit(pr_batch(ITEMS, strict=False))  # one tier: what fails, fails for good
    done = await service.wait(submitted["id"], within=120)
    failed = done["counts"]["failed"]
    assert failed >= 3, "the emulator fails some of the first tier's answers"
    budget = exact(done["cost"]) + Decimal("0.004")  # room for a few worst cases of the retry's model at a time
    assert (await patch(service, done["id"], {"budget_usd": str(budget)})).status_code == 200
    retried = await service.client.post(f"/batches/{done['id']}/retry", json={"model": "openai/gpt-oss-120b"})
    assert retried.status_code == 202, retried.text
    after = await service.wait(done["id"], within=120)

    retry_passes = [p for p in after["passes"] if p["kind"] == "retry"]
    assert len(retry_passes) > 1, "the retried items that did not fit went out in later retry passes"
    assert {p["model"] for p in retry_passes} == {"openai/gpt-oss-120b"}
    assert sum(p["items"] for p in retry_passes) == failed
    assert Decimal(after["budget"]["spent_usd"]) <= budget and after["budget"]["reserved_usd"] == "0"
    assert_each_item_once(await service.results(done["id"]), {f"pr-{n}" for n in range(1, ITEMS + 1)})


async def test_items_waiting_for_budget_are_counted_and_a_cancel_fails_them(
    start_service: Any, database_url: str
) -> None:
    service: Service = await start_service(
        database_url, emulator_config=fast_emulator_config(processing_seconds=3.0), max_lines_per_provider_batch=10
    )
    batch = await service.submit(pr_batch(ITEMS, strict=False, budget_usd="0.0008"))
    waiting = 0
    for _ in range(200):
        summary = (await service.client.get(f"/batches/{batch['id']}")).json()
        waiting = summary["budget"]["waiting_items"]
        if waiting:
            break
        await asyncio.sleep(0.05)
    assert 0 < waiting < ITEMS, "the status says how many items wait for budget"
    assert summary["counts"]["retrying"] >= waiting, "a waiting item is queued for a later pass"
    assert (await service.client.post(f"/batches/{batch['id']}/cancel")).status_code == 202
    done = await service.wait(batch["id"], within=60)
    assert done["status"] == "cancelled" and done["budget"]["waiting_items"] == 0
    rows = await service.results(batch["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, ITEMS + 1)})
    assert done["failure_reasons"].get("cancelled", 0) >= waiting
