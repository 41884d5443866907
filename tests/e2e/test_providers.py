"""Cascade tiers on several providers (`provider:model`): one cascade across Groq, OpenAI and Anthropic routes each
failure by its cause, sends each provider lines in its own format, merges one row per item, bills each attempt at
its provider's price (cache tokens included), and keeps one provider's trouble to that provider."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest

import openai_emulator
from service.pipeline.catalogue import Catalogue
from service.pipeline.cost import Usage, usd_text
from tests.conftest import Service, fast_openai_config
from tests.e2e.test_cascade import assert_each_item_once
from tests.emulator_inspection import anthropic_batches, openai_batches, provider_batches
from tests.payloads import pr_batch

GROQ_SMALL = "openai/gpt-oss-20b"
THREE = ["groq:openai/gpt-oss-20b", "openai:gpt-5-mini", "anthropic:claude-haiku-4-5"]
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
CATALOGUE = Catalogue.build()


def three_provider_batch(count: int, **header: Any) -> dict[str, Any]:
    payload = pr_batch(count, strict=False, cascade=[{"model": name} for name in THREE], **header)
    payload["items"][0]["custom_id"] = "acme/api#1:pr." + "x" * 400  # no provider but Groq would take it as it is
    return payload


def step_cost(step: dict[str, Any]) -> Decimal:
    return Decimal(step["cost_usd_exact"])


def fickle_openai() -> Any:
    """gpt-5-mini answering off-schema or refusing far more often than it does, so the last tier has work."""
    models = openai_emulator.default_models()
    models["gpt-5-mini"] = dataclasses.replace(models["gpt-5-mini"], schema_break=0.3, refusal=0.1)
    return fast_openai_config(models=models)


async def test_a_three_provider_cascade_routes_by_cause_and_bills_each_provider_exactly(
    start_service: Any, database_url: str
) -> None:
    service: Service = await start_service(database_url, openai_config=fickle_openai())
    payload = three_provider_batch(120)
    summary = await service.wait((await service.submit(payload))["id"], within=120)
    rows = await service.results(summary["id"])
    assert_each_item_once(rows, {item["custom_id"] for item in payload["items"]})
    assert summary["counts"]["pending"] == summary["counts"]["retrying"] == 0

    providers_in_order = ["groq", "openai", "anthropic"]
    for row in rows:
        steps = row["lineage"]
        assert steps[0]["provider"] == "groq" and steps[0]["tier"] == 0
        for before, after in itertools.pairwise(steps):
            cause = before["outcome"]
            if cause == "max_tokens" and not before["sent_because"].startswith("raised_budget"):
                assert after["tier"] == before["tier"] and after["sent_because"] == "raised_budget:max_tokens"
            elif cause in ("json_validate_failed", "invalid_json", "schema_mismatch", "refused"):
                assert after["tier"] == before["tier"] + 1, row
                assert after["sent_because"] == f"escalated:{cause}"
            assert after["provider"] == providers_in_order[after["tier"]]
        if row["status"] == "succeeded":
            assert row["provider"] == steps[-1]["provider"] and row["model"] == summary["tiers"][row["tier"]]["model"]
    causes = Counter(step["outcome"] for row in rows for step in row["lineage"] if step["tier"] == 1)
    assert causes["schema_mismatch"] + causes["invalid_json"] > 0 and causes["refused"] > 0, causes
    assert {step["tier"] for row in rows for step in row["lineage"]} == {0, 1, 2}

    # Each provider got lines in its own format; the caller's ids never reached OpenAI or Anthropic.
    assert {custom_id for batch in provider_batches(service.emulator) for custom_id in batch.custom_ids} <= {
        item["custom_id"] for item in payload["items"]
    }
    for batch in [*openai_batches(service.openai), *anthropic_batches(service.anthropic)]:
        assert all(CUSTOM_ID.match(custom_id) for custom_id in batch.custom_ids), batch.custom_ids
    for record in service.anthropic.batch_records.values():
        for item in record.items:
            params = item.params
            assert isinstance(params["system"], str | list) and params["max_tokens"] >= 1
            assert all(message["role"] in ("user", "assistant") for message in params["messages"])

    # Cost: each attempt's usage times its provider's price, to the last digit, per tier, provider and total.
    by_tier: dict[int, Decimal] = defaultdict(Decimal)
    by_provider: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        item = (await service.client.get(f"/batches/{summary['id']}/items/{quote(row['custom_id'], safe='')}")).json()
        for attempt in item["attempts"]:
            usage = attempt["usage"]
            name = attempt["model"] if attempt["provider"] == "groq" else f"{attempt['provider']}:{attempt['model']}"
            pico = CATALOGUE.cost_pico(
                name,
                Usage(
                    usage["input_tokens"],
                    usage["output_tokens"],
                    usage["cached_input_tokens"],
                    usage["cache_write_tokens"],
                ),
            )
            assert attempt["cost_usd_exact"] == usd_text(pico), attempt
            by_tier[attempt["tier"]] += Decimal(usd_text(pico))
            by_provider[attempt["provider"]] += Decimal(usd_text(pico))
        assert Decimal(row["cost_usd_exact"]) == sum(Decimal(a["cost_usd_exact"]) for a in item["attempts"])
    for tier in summary["tiers"]:
        assert Decimal(tier["cost"]["usd_exact"]) == by_tier[tier["tier"]]
    assert Decimal(summary["cost"]["usd_exact"]) == sum(by_provider.values()) == sum(by_tier.values())
    assert set(by_provider) == {"groq", "openai", "anthropic"}


async def test_a_bare_model_name_is_groqs_and_every_row_says_its_provider(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    summary = await service.wait((await service.submit(pr_batch(10, model=GROQ_SMALL)))["id"])
    assert summary["model"] == GROQ_SMALL and summary["tiers"][0]["provider"] == "groq"
    assert summary["passes"][0]["provider"] == "groq"
    rows = await service.results(summary["id"])
    assert {(row["provider"], row["model"]) for row in rows} == {("groq", GROQ_SMALL)}
    models = {model["id"]: model for model in (await service.client.get("/models")).json()["data"]}
    assert models[GROQ_SMALL]["provider"] == "groq"
    assert models["openai:gpt-5-mini"]["cached_input_usd_per_million"] == "0.0125"
    assert models["anthropic:claude-haiku-4-5"]["cache_write_usd_per_million"] == "0.625"
    health = (await service.client.get("/healthz")).json()
    assert health["provider"] == "emulator"
    assert health["providers"] == {"groq": "emulator", "openai": "emulator", "anthropic": "emulator"}


async def test_once_a_key_is_set_a_provider_without_one_is_refused_naming_its_variable(
    start_service: Any, sqlite_url: str
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False, groq_api_key="gsk_test_only_0123456789")
    refused = await service.client.post(
        "/batches", json=pr_batch(2, cascade=[{"model": GROQ_SMALL}, {"model": THREE[1]}])
    )
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["field"] == "cascade[1].model" and problem["missing_variable"] == "OPENAI_API_KEY"
    assert "OPENAI_API_KEY" in problem["detail"]
    accepted = await service.client.post("/batches", json=pr_batch(2, model=GROQ_SMALL))
    assert accepted.status_code == 202, accepted.text
    health = (await service.client.get("/healthz")).json()
    assert health["providers"]["openai"] == "OPENAI_API_KEY is not set"
    assert health["providers"]["groq"] == "configured"


async def test_an_outage_of_one_provider_never_pauses_another(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(
        database_url, poll_interval_seconds=0.5, provider_max_retries=0, openai_max_lines_per_batch=5
    )
    service.openai.faults.server_error_next = 10**6
    on_openai = await service.submit(pr_batch(20, cascade=[{"model": "openai:gpt-5-mini"}]))
    on_groq = await service.submit(pr_batch(20, model=GROQ_SMALL))
    groq_done = await service.wait(on_groq["id"], within=60)
    assert groq_done["status"] == "completed" and groq_done["counts"]["succeeded"] > 0
    ready = (await service.client.get("/readyz")).json()
    assert ready["providers"]["openai"]["state"] == "degraded"
    assert ready["providers"]["groq"]["state"] == "ok"
    assert (await service.client.get(f"/batches/{on_openai['id']}")).json()["counts"]["pending"] == 20

    service.openai.faults.server_error_next = 0
    openai_done = await service.wait(on_openai["id"], within=90)
    assert openai_done["counts"]["pending"] == 0
    assert_each_item_once(await service.results(on_openai["id"]), {f"pr-{n}" for n in range(1, 21)})


async def test_provider_faults_are_survived(start_service: Any, sqlite_url: str) -> None:
    """429 and 529 with retry-after and 5xx on Anthropic and OpenAI delay work and lose nothing."""
    service: Service = await start_service(sqlite_url, provider_max_retries=0)
    service.anthropic.faults.overloaded_next = 2
    service.anthropic.faults.overloaded_retry_after = 0.2
    service.openai.faults.rate_limit_next = 2
    service.openai.faults.server_error_next = 1
    created = await service.submit(pr_batch(30, strict=False, cascade=[{"model": name} for name in THREE[1:]]))
    summary = await service.wait(created["id"], within=90)
    assert summary["counts"]["pending"] == 0
    rows = await service.results(created["id"])
    assert_each_item_once(rows, {f"pr-{n}" for n in range(1, 31)})
    assert Counter(row["status"] for row in rows)["succeeded"] >= 25


async def test_a_retired_anthropic_model_is_refused_and_one_retired_meanwhile_is_routed_past(
    start_service: Any, sqlite_url: str
) -> None:
    service: Service = await start_service(sqlite_url)
    refused = await service.client.post(
        "/batches", json=pr_batch(2, cascade=[{"model": "anthropic:claude-3-5-haiku-latest"}])
    )
    assert refused.status_code == 422 and refused.json()["replacement"] == "anthropic:claude-haiku-4-5"

    service.anthropic.retire("claude-haiku-4-5")
    cascade = [{"model": "anthropic:claude-haiku-4-5"}, {"model": "openai:gpt-5-mini"}]
    summary = await service.wait((await service.submit(pr_batch(10, cascade=cascade)))["id"], within=90)
    rows = await service.results(summary["id"])
    assert {row["lineage"][0]["outcome"] for row in rows} == {"model_not_found"}, rows[0]
    assert {row["provider"] for row in rows if row["status"] == "succeeded"} == {"openai"}, str(rows[0])
    again = await service.client.post("/batches", json=pr_batch(2, cascade=cascade[:1]))
    assert again.status_code == 422, "a model its provider answered model_not_found for is marked unusable"


@pytest.mark.parametrize("name", ["openai:gpt-5-mini", "anthropic:claude-haiku-4-5"])
async def test_reuse_keys_include_the_provider(start_service: Any, sqlite_url: str, name: str) -> None:
    service: Service = await start_service(sqlite_url)
    first = await service.wait((await service.submit(pr_batch(5, reuse=True, cascade=[{"model": name}])))["id"])
    again = await service.wait((await service.submit(pr_batch(5, reuse=True, cascade=[{"model": name}])))["id"])
    assert again["passes"][0]["reused"] == first["counts"]["succeeded"]
    on_groq = await service.wait((await service.submit(pr_batch(5, reuse=True, model=GROQ_SMALL)))["id"])
    assert on_groq["passes"][0]["reused"] == 0


DEEPINFRA = {
    "base_url": "https://api.deepinfra.com/v1/openai",
    "api_key_env": "DEEPINFRA_API_KEY",
    "models": {
        "meta-llama/Llama-3.3-70B-Instruct": {
            "input_usd_per_million": "0.115",
            "output_usd_per_million": "0.16",
            "structured_output": "json_object",
        }
    },
    "max_lines_per_batch": 7,
}


async def test_a_named_openai_compatible_endpoint_runs_tiers_with_its_own_models_and_limits(
    start_service: Any, sqlite_url: str
) -> None:
    service: Service = await start_service(sqlite_url, providers={"deepinfra": DEEPINFRA})
    name = "deepinfra:meta-llama/Llama-3.3-70B-Instruct"
    summary = await service.wait((await service.submit(pr_batch(20, cascade=[{"model": name}])))["id"], within=90)
    assert summary["tiers"][0]["provider"] == "deepinfra" and summary["counts"]["pending"] == 0
    assert len(summary["passes"][0]["provider_batches"]) == 3, "its own limit: 7 lines a batch"
    rows = await service.results(summary["id"])
    assert {row["provider"] for row in rows} == {"deepinfra"}
    cost = sum(Decimal(row["cost_usd_exact"]) for row in rows)
    assert cost == Decimal(summary["cost"]["usd_exact"]) > 0
    assert {model["id"] for model in (await service.client.get("/models")).json()["data"]} >= {name}


async def test_a_named_endpoint_without_its_key_is_refused_once_any_key_is_set(
    start_service: Any, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    service: Service = await start_service(
        sqlite_url, workers_enabled=False, providers={"deepinfra": DEEPINFRA}, openai_api_key="sk-test-0123456789"
    )
    refused = await service.client.post(
        "/batches", json=pr_batch(2, cascade=[{"model": "deepinfra:meta-llama/Llama-3.3-70B-Instruct"}])
    )
    assert refused.status_code == 422 and refused.json()["missing_variable"] == "DEEPINFRA_API_KEY"
