"""Exactly once and failures on every provider, checked from outside against the independent stand-ins
(tests/standin_provider.py, tests/standin_anthropic.py; none of them the emulators): a worker killed with SIGKILL
right after each provider's first create (the batch made, its answer held back) leaves one billed provider batch
per chunk, while the stand-ins answer calls 429 with retry-after, 500 and 529 all along; and a model Anthropic
retires while the service runs is routed past, then refused at submit."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.payloads import pr_batch
from tests.reliability.observe import eventually
from tests.reliability.processes import Processes, stop_cleanly
from tests.reliability.test_hostile_load import finished
from tests.reliability.test_three_standins import billed_usd, exported_rows, standins_env

ITEMS = 30
TIERS = {"groq": "groq:openai/gpt-oss-20b", "openai": "openai:gpt-5-mini", "anthropic": "anthropic:claude-haiku-4-5"}


async def _standins(processes: Processes, **options: Any) -> dict[str, str]:
    return {
        "groq": await processes.standin(**options),
        "openai": await processes.standin(wire="openai", **options),
        "anthropic": await processes.standin("tests.standin_anthropic", **options),
    }


async def test_a_worker_killed_after_each_providers_first_create_leaves_one_billed_batch_per_chunk(
    processes: Processes, database_url: str, tmp_path: Path
) -> None:
    urls = await _standins(processes, hold_first_create=True, faults=4, delay=0.3)
    env = standins_env(database_url, urls, tmp_path)
    api = await processes.api("api", env)  # no workers in it: only the processes below send
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        ids: dict[str, str] = {}
        for n, (name, tier) in enumerate(TIERS.items()):
            payload = pr_batch(ITEMS, start=1000 * n + 1, strict=False, cascade=[{"model": tier}])
            created = await client.post("/batches", json=payload)
            assert created.status_code == 202, created.text
            ids[name] = created.json()["id"]

        async def held() -> set[str]:
            return {name for name, url in urls.items() if (await client.get(f"{url}/_mischief")).json()["held"]}

        # One worker at a time is killed once another provider holds a create of it; each chunk is one batch.
        kills = 0
        while (before := await held()) != set(TIERS):
            doomed = processes.worker(f"doomed-{kills}", env)
            await eventually(held, lambda now: now > before, within=90, what=f"a create beyond {sorted(before)}")
            doomed.kill()
            kills += 1
        survivor = processes.worker("survivor", env)
        summaries = {name: await finished(client, batch_id, within=180) for name, batch_id in ids.items()}
        await stop_cleanly(survivor)

        for name, url in urls.items():
            summary, mischief = summaries[name], (await client.get(f"{url}/_mischief")).json()
            # One create reached the provider, the held one, and it is the batch the chunk recorded.
            assert mischief["created"] == [summary["passes"][0]["provider_batches"][0]["id"]], (name, mischief)
            rows = await exported_rows(client, summary["id"])
            assert len(rows) == ITEMS and {row["status"] for row in rows} == {"succeeded"}, name
            assert {row["provider"] for row in rows} == {name}
            # Billed once: what the provider charged, at its price, is the batch's cost to the last digit.
            bill = (await client.get(f"{url}/_bill")).json()
            assert sum(usage["requests"] for usage in bill.values()) == ITEMS, (name, bill)
            assert Decimal(summary["cost"]["usd_exact"]) == billed_usd(name, bill), name
            assert len(mischief["faulted"]) == 2, f"{name} answered both 429 and a server error: {mischief}"
        assert kills >= 1 and "adopting provider batch" in survivor.log()


async def test_a_model_anthropic_retires_meanwhile_is_routed_past_then_refused(
    processes: Processes, sqlite_url: str, tmp_path: Path
) -> None:
    urls = await _standins(processes, delay=0.3)
    api = await processes.api("api", standins_env(sqlite_url, urls, tmp_path), workers=True)
    cascade = [{"model": TIERS["anthropic"]}, {"model": TIERS["openai"]}]
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:

        async def model_list_reads() -> int:
            return int((await client.get(f"{urls['anthropic']}/_seen")).json().get("models.list", 0))

        await eventually(model_list_reads, bool, within=30, what="the workers read Anthropic's model list")
        await client.post(f"{urls['anthropic']}/_retire", json={"model": "claude-haiku-4-5"})
        created = await client.post("/batches", json=pr_batch(10, strict=False, cascade=cascade))
        assert created.status_code == 202, "the service has not heard of the retirement yet"
        summary = await finished(client, created.json()["id"], within=120)
        rows = await exported_rows(client, summary["id"])
        assert len(rows) == 10 and {row["status"] for row in rows} == {"succeeded"}
        assert {row["lineage"][0]["outcome"] for row in rows} == {"model_not_found"}
        assert {(row["provider"], row["lineage"][-1]["tier"]) for row in rows} == {("openai", 1)}

        again = await client.post("/batches", json=pr_batch(2, strict=False, cascade=cascade[:1]))
        assert again.status_code == 422, again.text
        assert "claude-haiku-4-5" in again.json()["detail"]
