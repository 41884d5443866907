"""A budget is spent, not only guarded (issue #24), checked from outside against the independent stand-in
provider: 2,000 items with a budget of 40% of their estimate end with the bill at 85% of the budget or more and
never above it, every unsent item `budget_exceeded`, one row per item (SQLite with the API's workers;
PostgreSQL with three workers racing), and an ample budget costs no extra pass."""

from __future__ import annotations

import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.payloads import pr_batch
from tests.reliability.processes import Processes, service_env
from tests.reliability.test_hostile_load import finished

ITEMS = 2_000
SHARE = Decimal("0.40")
CHUNK_LINES = 100
WARM_UP = 100
MAX_TOKENS = int(__import__("os").environ.get("FILL_MAX_TOKENS", "128"))


async def _results(client: httpx.AsyncClient, batch_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000} | ({"after": after} if after else {})
        page = (await client.get(f"/batches/{batch_id}/results", params=params)).json()
        rows.extend(page["data"])
        if not page["has_more"]:
            return rows
        after = page["next_cursor"]


async def _start(processes: Processes, database_url: str, tmp_path: Path, workers: int, **standin_options: Any) -> str:
    standin = await processes.standin(delay=0.3, **standin_options)
    env = service_env(database_url, standin, tmp_path / "spool", MAX_LINES_PER_PROVIDER_BATCH=CHUNK_LINES)
    url = await processes.api("service", env, workers=True)
    for n in range(workers - 1):
        processes.worker(f"worker-{n}", env)
    return url


def _usd(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.000001"), rounding=ROUND_DOWN))


async def _run(
    client: httpx.AsyncClient, payload: dict[str, Any], *, fallback: bool = False
) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    created = await client.post("/batches", json=payload, params={"fallback": str(fallback).lower()})
    assert created.status_code == 202, created.text
    summary = await finished(client, created.json()["id"], within=600)
    return summary, time.monotonic() - started


async def _fill(
    processes: Processes, database_url: str, tmp_path: Path, workers: int, *, cascade: bool = False
) -> None:
    url = await _start(processes, database_url, tmp_path, workers, **({"fail_share": 0.2} if cascade else {}))
    query = {"fallback": str(cascade).lower()}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        # a like workload first, so that the estimate rests on history (the catalogue's priors overstate what the
        # stand-in answers, and a budget of 40% of them would be more than the whole batch costs)
        await _run(client, pr_batch(WARM_UP, start=100_000, max_tokens=MAX_TOKENS), fallback=cascade)
        estimate = (
            await client.post("/batches/estimate", json=pr_batch(ITEMS, max_tokens=MAX_TOKENS), params=query)
        ).json()
        assert {tier["based_on"] for tier in estimate["tiers"] if tier["items"]} == {"history"}
        budget = Decimal(_usd(Decimal(estimate["cost"]["usd_exact"]) * SHARE))
        summary, seconds = await _run(
            client, pr_batch(ITEMS, max_tokens=MAX_TOKENS, budget_usd=str(budget)), fallback=cascade
        )
        bill = Decimal(summary["cost"]["usd_exact"])
        rows = await _results(client, summary["id"])
    tiers = [(p["tier"], p["items"]) for p in summary["passes"]]
    print(
        f"\n{database_url.split(':')[0]} x{workers}{' cascade' if cascade else ''}: budget ${budget}, "
        f"bill ${bill} = {bill / budget:.1%}, {summary['counts']}, {len(summary['passes'])} passes "
        f"(tier, items): {tiers}, {seconds:.1f} s"
    )
    assert bill <= budget
    assert len(rows) == ITEMS and len({row["custom_id"] for row in rows}) == ITEMS, "one row per item"
    unsent = [row for row in rows if row["status"] != "succeeded"]
    assert all(row["error"]["code"] == "budget_exceeded" for row in unsent), unsent[:3]
    assert bill >= Decimal("0.85") * budget, f"only {bill / budget:.1%} of the budget was spent"
    assert summary["budget"]["waiting_items"] == 0 and summary["budget"]["reserved_usd"] == "0"
    if cascade:
        assert any(p["tier"] == 1 and p["items"] for p in summary["passes"]), "the second tier took its share"


async def test_a_budget_of_40_percent_is_filled_on_sqlite(
    processes: Processes, sqlite_url: str, tmp_path: Path
) -> None:
    await _fill(processes, sqlite_url, tmp_path, workers=1)


async def test_the_cascades_second_tier_shares_the_budget(
    processes: Processes, database_url: str, tmp_path: Path
) -> None:
    """A fifth of the first tier's answers are not the JSON asked for: their escalations compete for the same
    budget (the first tier goes first in each round), and every item not sent is budget_exceeded."""
    await _fill(processes, database_url, tmp_path, workers=1, cascade=True)


@pytest.mark.postgres
async def test_a_budget_of_40_percent_is_filled_by_three_racing_workers_on_postgres(
    processes: Processes, postgres_url: str, tmp_path: Path
) -> None:
    await _fill(processes, postgres_url, tmp_path, workers=3)


async def test_an_ample_budget_costs_no_extra_pass_through_the_cascade(
    processes: Processes, database_url: str, tmp_path: Path
) -> None:
    """A tenth of the first tier's answers are not the JSON asked for, so the cascade runs a second round."""
    url = await _start(processes, database_url, tmp_path, 1, fail_share=0.1)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        without, _ = await _run(client, pr_batch(ITEMS, max_tokens=MAX_TOKENS, reuse=False), fallback=True)
        cascade = {"fallback": "true"}
        estimate = (
            await client.post("/batches/estimate", json=pr_batch(ITEMS, max_tokens=MAX_TOKENS), params=cascade)
        ).json()
        ample = _usd(Decimal(estimate["upper_bound"]["usd_exact"]) * 2)
        budgeted, _ = await _run(
            client, pr_batch(ITEMS, max_tokens=MAX_TOKENS, budget_usd=ample, reuse=False), fallback=True
        )
    shape = [(p["kind"], p["tier"], p["items"]) for p in without["passes"]]
    print(f"\n{database_url.split(':')[0]}: passes without a budget {shape}")
    assert len(without["passes"]) > 1, "the cascade ran a second round"
    assert [(p["kind"], p["tier"], p["items"]) for p in budgeted["passes"]] == shape
    assert budgeted["budget"]["waiting_items"] == 0 and "budget_exceeded" not in budgeted["failure_reasons"]
