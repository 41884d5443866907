"""What the cascade costs against the floor and against the strong model alone, on the emulator's failure
profiles. Prints figures; asserts nothing.

    .venv/bin/python bench/cascade_cost.py [--items 3000]

For each profile (best effort: the seed's ~20% json_validate_failed and ~1.5% length on gpt-oss-20b; strict:
json_schema with strict on), the same items run three ways through the real service and the emulator:
the default cascade (gpt-oss-20b -> gpt-oss-120b), and gpt-oss-120b alone. The floor is every item's first
attempt on the cheapest tier (the cascade's pass 1). Also checked: no line went to a decommissioned model, and
every out-of-tokens item was sent again to the same model with a larger budget before any escalation.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
from asgi_lifespan import LifespanManager

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from groq_emulator import Emulator, EmulatorConfig, create_emulator_app
from service.app import create_app
from service.settings import Settings
from tests.payloads import pr_batch

SMALL, LARGE = "openai/gpt-oss-20b", "openai/gpt-oss-120b"


async def run(client: httpx.AsyncClient, payload: dict[str, Any], *, fallback: bool) -> dict[str, Any]:
    response = await client.post("/batches", params={"fallback": str(fallback).lower()}, json=payload)
    response.raise_for_status()
    batch_id = response.json()["id"]
    while True:
        summary: dict[str, Any] = (await client.get(f"/batches/{batch_id}")).json()
        if summary["status"] in ("completed", "failed", "cancelled"):
            return summary
        await asyncio.sleep(0.1)


async def rows_of(client: httpx.AsyncClient, batch_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/batches/{batch_id}/results", headers={"Accept": "application/x-ndjson"})
    return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]


def raised_before_escalating(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """(items that ran out of tokens on tier 0, of those the ones whose next attempt was tier 0 again)."""
    out_of_tokens = raised = 0
    for row in rows:
        steps = row["lineage"]
        for index, step in enumerate(steps[:-1]):
            if step["tier"] == 0 and step["outcome"] == "max_tokens" and step["sent_because"] == "first":
                out_of_tokens += 1
                following = steps[index + 1]
                raised += following["tier"] == 0 and following["sent_because"] == "raised_budget:max_tokens"
    return out_of_tokens, raised


async def profile(name: str, strict: bool, items: int, work: Path) -> None:
    emulator = Emulator(
        EmulatorConfig(seed=11, validating_seconds=0.05, processing_seconds=0.3, finalizing_seconds=0.05)
    )
    settings = Settings(
        database_url=f"sqlite:///{work}/{name}.db",
        groq_api_key=None,
        poll_interval_seconds=0.05,
        worker_idle_seconds=0.02,
        spool_dir=str(work / f"spool-{name}"),
        api_tokens=[],
    )
    app = create_app(settings, emulator=create_emulator_app(emulator=emulator))
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=300) as client:
            cascade = await run(client, pr_batch(items, strict=strict), fallback=True)
            strong = await run(client, pr_batch(items, start=100_000, strict=strict, model=LARGE), fallback=False)
            rows = await rows_of(client, cascade["id"])
    lines_by_model = Counter(
        str(request.body.get("model")) for record in emulator.batch_records.values() for request in record.requests
    )
    decommissioned = emulator.config.decommissioned_models
    models_sent = set(lines_by_model)
    cost = Decimal(cascade["cost"]["usd_exact"])
    floor = Decimal(cascade["passes"][0]["cost"]["usd_exact"])
    strong_cost = Decimal(strong["cost"]["usd_exact"])
    per_tier = {tier["model"]: tier["items"] for tier in cascade["tiers"]}
    out_of_tokens, raised = raised_before_escalating(rows)
    ok = cascade["counts"]["succeeded"]
    print(f"\n== {name} ({items} items, strict={strict})")
    print(
        f"cascade cost ${cost:.6f} = {cost / floor:.3f} x floor (${floor:.6f}); {strong_cost / cost:.2f}x cheaper than"
    )
    print(f"  {LARGE} alone (${strong_cost:.6f}, {strong['counts']['succeeded'] / items:.2%} succeeded)")
    print(f"succeeded {ok}/{items} = {ok / items:.2%}; final failures {cascade['failure_reasons'] or '{}'}")
    print(f"attempts per tier {per_tier}; passes {len(cascade['passes'])}")
    print(f"pass 1 failures {cascade['passes'][0]['failure_reasons']}")
    print(f"out of tokens on tier 0: {out_of_tokens}, sent again to tier 0 with a raised budget first: {raised}")
    print(
        f"lines the emulator received, by model: {dict(lines_by_model)}; to a decommissioned model: "
        f"{sorted(models_sent & decommissioned) or 'none'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llm-batch-cascade-") as tmp:
        asyncio.run(profile("best-effort", False, args.items, Path(tmp)))
        asyncio.run(profile("strict", True, args.items, Path(tmp)))


if __name__ == "__main__":
    main()
