"""A three-provider cascade checked from outside: the service is a process whose SDKs' base-URL variables point at
independent stand-ins for Groq, OpenAI and Anthropic (tests/standin_provider.py, tests/standin_anthropic.py),
none of them the emulators. Each stand-in decides a request's fate from its model and text alone, so the route
of every item is predicted here before it runs; what each stand-in billed, times the published batch prices,
must be each tier's cost to the last digit."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.payloads import pr_batch
from tests.reliability.processes import Processes, service_env
from tests.reliability.test_hostile_load import finished
from tests.standin_provider import cause_of, last_user_text

ITEMS = 600
CASCADE = ["groq:openai/gpt-oss-20b", "openai:gpt-5-mini", "anthropic:claude-haiku-4-5"]
CATALOGUE = Path(__file__).resolve().parents[2] / "service" / "pipeline" / "catalogue.json"
MILLION = Decimal(1_000_000)

# The lineage each fate leads to: (tier, outcome) per attempt.
GROQ_ROUTE = {"ok": [(0, "succeeded")], "length": [(0, "max_tokens"), (0, "succeeded")]}
OPENAI_ROUTE = {
    "ok": [(1, "succeeded")],
    "off_schema": [(1, "schema_mismatch"), (2, "succeeded")],
    "refusal": [(1, "refused"), (2, "succeeded")],
}


def standins_env(database_url: str, urls: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A service process whose three providers are the stand-ins at `urls` (by provider name), keys set."""
    return service_env(
        database_url,
        urls["groq"],
        tmp_path / "spool",
        OPENAI_BASE_URL=f"{urls['openai']}/v1",
        OPENAI_API_KEY="sk-any",
        ANTHROPIC_BASE_URL=urls["anthropic"],
        ANTHROPIC_API_KEY="sk-ant-any",
    )


async def exported_rows(client: httpx.AsyncClient, batch_id: str) -> list[dict[str, Any]]:
    export = await client.get(f"/batches/{batch_id}/results", headers={"Accept": "application/x-ndjson"})
    return [json.loads(line) for line in export.text.splitlines() if line]


def predicted_route(text: str) -> list[tuple[int, str]]:
    first = cause_of("openai/gpt-oss-20b", text)
    if first != "not_json":
        return GROQ_ROUTE[first]
    return [(0, "json_validate_failed"), *OPENAI_ROUTE[cause_of("gpt-5-mini", text)]]


def price(provider: str, model: str, kind: str) -> Decimal:
    entry = json.loads(CATALOGUE.read_text())["providers"][provider]["models"][model]
    return Decimal(entry[f"{kind}_usd_per_million"]) / MILLION


def billed_usd(provider: str, bill: dict[str, dict[str, int]]) -> Decimal:
    """What a provider's bill comes to at its published batch prices (prompt tokens read from or written to the
    cache at theirs; OpenAI's prompt_tokens include the cached ones, Anthropic's input_tokens do not)."""
    total = Decimal(0)
    for model, usage in bill.items():
        plain = usage.get("input", 0) - usage.get("cached", 0)
        total += plain * price(provider, model, "input") + usage.get("output", 0) * price(provider, model, "output")
        if usage.get("cached"):
            total += usage["cached"] * price(provider, model, "cached_input")
        if usage.get("cache_read"):
            total += usage["cache_read"] * price(provider, model, "cached_input")
        if usage.get("cache_write"):
            total += usage["cache_write"] * price(provider, model, "cache_write")
    return total


async def test_a_three_provider_cascade_against_independent_standins(
    processes: Processes, database_url: str, tmp_path: Path
) -> None:
    groq = await processes.standin(causes=True, delay=0.3)
    openai = await processes.standin(wire="openai", causes=True, delay=0.3)
    anthropic = await processes.standin("tests.standin_anthropic", delay=0.3)
    env = standins_env(database_url, {"groq": groq, "openai": openai, "anthropic": anthropic}, tmp_path)
    service = await processes.api("api", env, workers=True)
    payload = pr_batch(ITEMS, strict=False, cascade=[{"model": name} for name in CASCADE])
    texts = {item["custom_id"]: last_user_text(item["body"]["messages"]) for item in payload["items"]}
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        created = await client.post("/batches", json=payload)
        assert created.status_code == 202, created.text
        summary = await finished(client, created.json()["id"], within=240)
        rows = await exported_rows(client, summary["id"])
        bills = {name: (await client.get(f"{url}/_bill")).json() for name, url in _urls(groq, openai, anthropic)}
        seen = {name: (await client.get(f"{url}/_seen")).json() for name, url in _urls(groq, openai, anthropic)}

    # One merged row per item, each on the route its text predicts, every one succeeded.
    assert sorted(row["custom_id"] for row in rows) == sorted(texts)
    routes = {row["custom_id"]: [(step["tier"], step["outcome"]) for step in row["lineage"]] for row in rows}
    assert routes == {custom_id: predicted_route(text) for custom_id, text in texts.items()}
    assert all(row["status"] == "succeeded" for row in rows)
    assert {route[-1][0] for route in routes.values()} == {0, 1, 2}, "every tier has work"
    for row in rows:
        assert [step["provider"] for step in row["lineage"]] == [
            ("groq", "openai", "anthropic")[tier] for tier, _outcome in routes[row["custom_id"]]
        ]

    # Each provider got lines in its own form: OpenAI's reasoning model max_completion_tokens and its default
    # temperature; Anthropic the system prompt as a parameter and max_tokens (a bad custom_id is a 400 there).
    assert seen["openai"]["lines"] == seen["openai"]["body.max_completion_tokens"] > 0
    assert "body.max_tokens" not in seen["openai"] and "body.temperature" not in seen["openai"]
    assert seen["anthropic"]["requests"] == seen["anthropic"]["params.system"] == seen["anthropic"]["params.max_tokens"]

    # The cost of each tier is what its provider billed, at its published price, to the last digit.
    tiers = {tier["tier"]: Decimal(tier["cost"]["usd_exact"]) for tier in summary["tiers"]}
    expected = {tier: billed_usd(name, bills[name]) for tier, name in enumerate(("groq", "openai", "anthropic"))}
    assert tiers == expected
    assert Decimal(summary["cost"]["usd_exact"]) == sum(expected.values())
    assert all(bill for bill in bills.values())


def _urls(groq: str, openai: str, anthropic: str) -> list[tuple[str, str]]:
    return [("groq", groq), ("openai", openai), ("anthropic", anthropic)]
