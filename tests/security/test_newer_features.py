"""Hostile input against the newer features (estimate, budget, reuse): each case was reproduced from outside
before it was fixed, and each would fail again if its fix went away."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from tests.conftest import Service
from tests.payloads import pr_batch

# Over gpt-oss's 131,072-token window in o200k tokens: 200,000 / 300,000 / 400,000 / 1,000,000 of them.
OVER_THE_WINDOW = {
    "digits": "1" * 600_000,
    "emoji": "\N{GRINNING FACE}" * 300_000,
    "cjk": "\u4e2d\u6587" * 400_000,
    "combining": "e\u0301" * 500_000,
}


def one_long_item(text: str, **header: Any) -> dict[str, Any]:
    payload = pr_batch(2, **header)
    payload["items"][0]["body"]["messages"][1]["content"] = text
    return payload


@pytest.mark.parametrize("text", OVER_THE_WINDOW.values(), ids=OVER_THE_WINDOW.keys())
async def test_a_message_over_the_context_window_is_422_naming_the_item(
    start_service: Any, sqlite_url: str, text: str
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    for path, header in (
        ("/batches/estimate", {}),
        ("/batches", {}),
        ("/batches", {"budget_usd": "5"}),
    ):
        response = await service.client.post(path, params={"fallback": "true"}, json=one_long_item(text, **header))
        assert response.status_code == 422, (path, header, response.text[:300])
        problem = response.json()
        assert problem["field"] == "items[0].body.messages"
        assert "'pr-1'" in problem["detail"] and "context window" in problem["detail"]
    assert (await service.client.get("/batches")).json()["data"] == []


async def test_a_million_characters_that_fit_are_estimated_sent_and_answered(
    start_service: Any, sqlite_url: str
) -> None:
    """A million `a`s is 125,000 o200k tokens: under the window. It used to make the tokenizer raise in the
    estimate (500), in the budget's worst case (a batch queued forever) and in the emulator (every poll)."""
    service: Service = await start_service(sqlite_url)
    payload = one_long_item("a" * 1_000_000, budget_usd="5")
    estimate = await service.client.post("/batches/estimate", params={"fallback": "true"}, json=payload)
    assert estimate.status_code == 200, estimate.text[:300]
    assert estimate.json()["tiers"][0]["input_tokens"] > 125_000
    created = await service.submit(payload, fallback=True)
    summary = await service.wait(created["id"], within=60)
    assert summary["status"] == "completed" and summary["counts"]["pending"] == 0
    rows = {row["custom_id"]: row for row in await service.results(created["id"])}
    assert rows["pr-1"]["usage"]["input_tokens"] > 125_000


OPTIONAL_A = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
NULLABLE_A = {
    "type": "object",
    "properties": {"a": {"type": ["string", "null"]}},
    "required": ["a"],
    "additionalProperties": False,
}


def schema_batch(count: int, schema: dict[str, Any], **header: Any) -> dict[str, Any]:
    payload = pr_batch(count, reuse=True, **header)
    payload["params"] = {"temperature": 0}
    payload["output_schema"] = schema
    return payload


async def test_reuse_never_hands_an_answer_to_a_schema_it_was_not_checked_against(
    start_service: Any, sqlite_url: str
) -> None:
    """`a` optional and `a` required but nullable derive the same strict line; `{}` is right for the first
    only. The second batch must send its own requests, and every answer it keeps satisfies its own schema."""
    service: Service = await start_service(sqlite_url)
    first = await service.wait((await service.submit(schema_batch(40, OPTIONAL_A)))["id"])
    assert first["counts"]["succeeded"] == 40
    second = await service.wait((await service.submit(schema_batch(40, NULLABLE_A)))["id"])
    assert second["passes"][0]["reused"] == 0
    validator = jsonschema_rs.validator_for(NULLABLE_A)
    for row in await service.results(second["id"]):
        assert row["status"] != "succeeded" or validator.is_valid(row["output"]), row
    again = await service.wait((await service.submit(schema_batch(40, OPTIONAL_A)))["id"])
    assert again["passes"][0]["reused"] == 40, "the same schema still reuses"


async def test_reuse_in_json_mode_is_judged_by_the_new_schema(start_service: Any, sqlite_url: str) -> None:
    """JSON mode with the schema checked only by us: the line is the same whatever the schema. A tightened
    schema (a const no answer has) must not get earlier answers as successes."""
    service: Service = await start_service(sqlite_url)
    loose = {"type": "object"}
    tight = {"type": "object", "required": ["verdict"], "properties": {"verdict": {"const": "never-answered"}}}
    json_mode = {"temperature": 0, "response_format": {"type": "json_object"}}
    first_payload = schema_batch(30, loose)
    first_payload["params"] = json_mode
    first = await service.wait((await service.submit(first_payload))["id"])
    assert first["counts"]["succeeded"] > 0
    tight_payload = schema_batch(30, tight)
    tight_payload["params"] = json_mode
    tightened = await service.wait((await service.submit(tight_payload))["id"])
    assert tightened["passes"][0]["reused"] == 0
    assert tightened["counts"]["succeeded"] == 0
