"""Input an attacker or a buggy monolith sends: values JSON has no place for, junk by the million, bodies that
stop arriving, a batch cancelled before it ran. Each answer is a 4xx problem+json that names the field, and
nothing is stored; every item still ends with one merged row."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import pytest

from groq_emulator import ModelBehaviour
from tests.api.test_bad_input import assert_nothing_stored, assert_problem
from tests.conftest import Service, fast_emulator_config
from tests.payloads import ndjson_lines, pr_batch

BIG_INT = "1" * 401


def submission_with(fragment: str, where: str) -> bytes:
    """A valid two-item submission with raw JSON text `fragment` placed at `where`."""
    payload = pr_batch(2)
    marker = "__FRAGMENT__"
    if where == "content":
        payload["items"][1]["body"]["messages"][1]["content"] = marker
    elif where == "max_completion_tokens":
        payload["items"][0]["body"]["max_completion_tokens"] = marker
    elif where == "metadata":
        payload["items"][0]["metadata"] = {"note": marker}
    elif where == "params":
        payload["params"]["temperature"] = marker
    return orjson.dumps(payload).replace(orjson.dumps(marker), fragment.encode())


NOT_JSON_VALUES = [
    ('"x\\udc00y"', "content", "items[1].body.messages[1].content", "unpaired surrogate"),
    ('"\\ud800"', "metadata", "items[0].metadata.note", "unpaired surrogate"),
    (BIG_INT, "max_completion_tokens", "items[0].body.max_completion_tokens", "too large"),
    ("NaN", "params", "params.temperature", "not a JSON value"),
    ("Infinity", "max_completion_tokens", "items[0].body.max_completion_tokens", "not a JSON value"),
    ("-Infinity", "params", "params.temperature", "not a JSON value"),
    ("1e999", "params", "params.temperature", "too large"),
    ("18446744073709551616", "max_completion_tokens", "items[0].body.max_completion_tokens", "too large"),
]


@pytest.mark.parametrize(("fragment", "where", "field", "reason"), NOT_JSON_VALUES)
async def test_values_json_has_no_place_for_are_422_naming_the_field(
    sqlite_url: str, start_service: Any, fragment: str, where: str, field: str, reason: str
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    body = submission_with(fragment, where)
    response = await service.client.post("/batches", content=body, headers={"content-type": "application/json"})
    problem = assert_problem(response, 422, field, reason)
    assert problem["field"] == field
    await assert_nothing_stored(service)


@pytest.mark.parametrize(("fragment", "where", "field", "reason"), NOT_JSON_VALUES)
async def test_the_same_values_in_ndjson_are_422_naming_the_line_and_field(
    sqlite_url: str, start_service: Any, fragment: str, where: str, field: str, reason: str
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    payload = orjson.loads(submission_with('"placeholder"', where))
    lines = ndjson_lines(payload)
    target = 0 if where == "params" else (2 if where == "content" else 1)
    lines[target] = lines[target].replace(b'"placeholder"', fragment.encode())
    response = await service.client.post(
        "/batches", content=b"\n".join(lines), headers={"content-type": "application/x-ndjson"}
    )
    problem = assert_problem(response, 422, f"line {target + 1}", reason)
    assert problem["field"].endswith(field.split(".")[-1]), problem
    await assert_nothing_stored(service)


@pytest.mark.parametrize(
    ("fragment", "field"),
    [('"x\\udc00y"', "params.stop"), (BIG_INT, "params.max_completion_tokens"), ("NaN", "params.temperature")],
)
async def test_retry_params_json_has_no_place_for_are_422(
    sqlite_url: str, start_service: Any, fragment: str, field: str
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    created = await service.submit(pr_batch(2))
    key = field.split(".")[-1]
    body = b'{"params": {"' + key.encode() + b'": ' + fragment.encode() + b"}}"
    response = await service.client.post(
        f"/batches/{created['id']}/retry", content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, field)
    assert len((await service.client.get(f"/batches/{created['id']}")).json()["passes"]) == 1


async def test_a_million_junk_items_are_refused_at_the_first(sqlite_url: str, start_service: Any) -> None:
    """Refused as soon as the first item is read, in memory bounded by what is read, not by the body."""
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    consumed = 0
    junk = b"0," * 100_000

    async def body() -> AsyncIterator[bytes]:
        nonlocal consumed
        yield b'{"items":['
        for _ in range(10):
            consumed += len(junk)
            yield junk
        yield b"0]}"

    response = await service.client.post("/batches", content=body(), headers={"content-type": "application/json"})
    problem = assert_problem(response, 422, "items[0]")
    assert problem["field"] == "items[0]"
    await assert_nothing_stored(service)


async def test_a_bad_item_deep_in_a_large_submission_is_named_and_nothing_is_stored(
    database_url: str, start_service: Any
) -> None:
    service: Service = await start_service(database_url, workers_enabled=False)
    payload = pr_batch(5000)
    payload["items"][4321]["body"]["messages"] = "not a list"
    response = await service.client.post("/batches", json=payload)
    assert_problem(response, 422, "'pr-4322'", "messages")
    await assert_nothing_stored(service)


async def test_a_body_that_stops_arriving_is_408_and_stores_nothing(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False, request_body_timeout_seconds=0.3)

    async def stalls() -> AsyncIterator[bytes]:
        yield orjson.dumps(pr_batch(3))[:200]
        await asyncio.sleep(2)
        yield b"never read"

    response = await service.client.post("/batches", content=stalls(), headers={"content-type": "application/json"})
    assert_problem(response, 408, "REQUEST_BODY_TIMEOUT_SECONDS")
    await assert_nothing_stored(service)


async def test_a_text_body_is_415_saying_what_to_send(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    response = await service.client.post("/batches", content=b"hello", headers={"content-type": "text/plain"})
    problem = assert_problem(response, 415, "'text/plain'", "application/json", "application/x-ndjson")
    assert problem["field"] == "Content-Type"


async def test_retry_with_an_empty_model_is_422(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    created = await service.submit(pr_batch(2))
    response = await service.client.post(f"/batches/{created['id']}/retry", json={"model": ""})
    assert_problem(response, 422, "model")


@pytest.mark.parametrize("cursor", ["abc", "lb_short", "lb_" + "0" * 27])
async def test_a_list_cursor_no_page_returned_is_400(sqlite_url: str, start_service: Any, cursor: str) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    problem = assert_problem(await service.client.get("/batches", params={"after": cursor}), 400, "after")
    assert problem["type"].endswith(":bad-cursor")


async def test_ndjson_results_honour_after_and_limit(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    created = await service.submit(pr_batch(30))
    path = f"/batches/{created['id']}/results"
    ndjson = {"Accept": "application/x-ndjson"}
    whole = [orjson.loads(line) for line in (await service.client.get(path, headers=ndjson)).content.splitlines()]
    assert [row["custom_id"] for row in whole] == [f"pr-{n}" for n in range(1, 31)]
    first_page = (await service.client.get(path, params={"limit": 7})).json()
    rest = await service.client.get(path, params={"after": first_page["next_cursor"], "limit": 10}, headers=ndjson)
    assert [orjson.loads(line)["custom_id"] for line in rest.content.splitlines()] == [f"pr-{n}" for n in range(8, 18)]
    assert_problem(await service.client.get(path, params={"after": "nope"}, headers=ndjson), 400, "after")


async def test_cancelling_a_queued_batch_fails_every_item_as_cancelled(database_url: str, start_service: Any) -> None:
    """Invariant 1: every item ends with one merged row, also when nothing was ever sent."""
    config = fast_emulator_config(validating_seconds=5.0)
    service: Service = await start_service(database_url, emulator_config=config)
    created = await service.submit(pr_batch(50), fallback=True)
    cancelled = await service.client.post(f"/batches/{created['id']}/cancel")
    assert cancelled.status_code == 202
    summary = await service.wait(created["id"])
    assert summary["status"] == "cancelled"
    assert summary["counts"] == {"total": 50, "succeeded": 0, "failed": 50, "pending": 0, "retrying": 0}
    rows = await service.results(created["id"])
    assert len(rows) == 50 and {(row["status"], row["error"]["code"]) for row in rows} == {("failed", "cancelled")}
    assert summary["failure_reasons"] == {"cancelled": 50}
    retried = await service.client.post(f"/batches/{created['id']}/retry")
    assert retried.status_code == 202, "the cancelled items are failed items a retry can take"
    assert retried.json()["counts"]["retrying"] == 50


# --- issue #25 finding 7: numbers and times out of range, fields that would be ignored, lax values ---------------

TOO_LARGE_NUMBERS = [str(2**63), str(2**31), "99999999999999999999999"]


@pytest.mark.parametrize("name", ["pass", "tier", "since_pass"])
@pytest.mark.parametrize("number", TOO_LARGE_NUMBERS, ids=["2^63", "2^31", "huge"])
async def test_result_filters_beyond_a_database_integer_are_422(
    database_url: str, start_service: Any, name: str, number: str
) -> None:
    service: Service = await start_service(database_url, workers_enabled=False)
    created = await service.submit(pr_batch(2))
    for accept in ("application/json", "application/x-ndjson"):
        response = await service.client.get(
            f"/batches/{created['id']}/results", params={name: number}, headers={"Accept": accept}
        )
        problem = assert_problem(response, 422, name)
        assert problem["field"].endswith(name), problem
    largest = await service.client.get(f"/batches/{created['id']}/results", params={name: str(2**31 - 1)})
    assert largest.status_code == 200 and largest.json()["data"] == []


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"], ids=["late", "early"])
async def test_an_updated_after_outside_the_calendar_in_utc_is_422(
    database_url: str, start_service: Any, moment: str
) -> None:
    service: Service = await start_service(database_url, workers_enabled=False)
    created = await service.submit(pr_batch(2))
    response = await service.client.get(f"/batches/{created['id']}/results", params={"updated_after": moment})
    assert assert_problem(response, 422, "updated_after")["field"] == "updated_after"
    fine = await service.client.get(
        f"/batches/{created['id']}/results", params={"updated_after": "9999-12-31T23:59:59+14:00"}
    )
    assert fine.status_code == 200 and fine.json()["data"] == []


def cascade(*models: str) -> list[dict[str, Any]]:
    return [{"model": model} for model in models]


IGNORED_FIELDS = [
    ("model-with-cascade", {"cascade": cascade("openai/gpt-oss-20b"), "model": "openai/gpt-oss-120b"}, {}, "model"),
    (
        "fallback-model-with-cascade",
        {"cascade": cascade("openai/gpt-oss-20b"), "fallback_model": "openai/gpt-oss-120b"},
        {"fallback": "true"},
        "fallback_model",
    ),
    (
        "fallback-params-with-cascade",
        {"cascade": cascade("openai/gpt-oss-20b"), "fallback_params": {"temperature": 1}},
        {},
        "fallback_params",
    ),
    ("fallback-params-without-fallback", {"fallback_params": {"temperature": 1}}, {}, "fallback_params"),
    (
        "a-model-twice-in-the-cascade",
        {"cascade": cascade("openai/gpt-oss-20b", "openai/gpt-oss-120b", "groq:openai/gpt-oss-20b")},
        {},
        "cascade[2].model",
    ),
    (
        "fallback-model-the-same-as-model",
        {"model": "openai/gpt-oss-20b", "fallback_model": "openai/gpt-oss-20b"},
        {"fallback": "true"},
        "fallback_model",
    ),
]


@pytest.mark.parametrize(
    ("header", "query", "field"), [case[1:] for case in IGNORED_FIELDS], ids=[c[0] for c in IGNORED_FIELDS]
)
async def test_fields_that_would_be_ignored_are_422(
    sqlite_url: str, start_service: Any, header: dict[str, Any], query: dict[str, str], field: str
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    for path in ("/batches", "/batches/estimate"):
        response = await service.client.post(path, params=query, json=pr_batch(2, **header))
        assert assert_problem(response, 422, field)["field"] == field
    await assert_nothing_stored(service)


def _over_cap_in(where: str) -> tuple[dict[str, Any], dict[str, str], str]:
    """A max_completion_tokens of 100,000, above gpt-oss-20b's 65,536 (and under the 10^7 any model takes)."""
    payload = pr_batch(3)
    if where == "item":
        payload["items"][2]["body"]["max_completion_tokens"] = 100_000
        return payload, {}, "items[2].body.max_completion_tokens"
    if where == "params":
        for item in payload["items"]:
            del item["body"]["max_completion_tokens"]
        payload["params"]["max_tokens"] = 100_000
        return payload, {}, "params.max_tokens"
    payload["cascade"] = [{"model": "openai/gpt-oss-20b", "params": {"max_completion_tokens": 100_000}}]
    return payload, {}, "cascade[0].params.max_completion_tokens"


@pytest.mark.parametrize("where", ["item", "params", "tier"])
async def test_max_completion_tokens_above_the_models_cap_is_422(
    sqlite_url: str, start_service: Any, where: str
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    payload, query, field = _over_cap_in(where)
    response = await service.client.post("/batches", params=query, json=payload)
    problem = assert_problem(response, 422, field, "65536")
    assert problem["field"] == field
    await assert_nothing_stored(service)


async def test_a_tier_with_a_larger_cap_takes_a_larger_budget(sqlite_url: str, start_service: Any) -> None:
    """The cap is each tier's own: a tier's max_completion_tokens overrides the items' on that tier."""
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    payload = pr_batch(2, cascade=[{"model": "openai/gpt-oss-20b", "params": {"max_completion_tokens": 65_536}}])
    payload["items"][0]["body"]["max_completion_tokens"] = 100_000
    response = await service.client.post("/batches", json=payload)
    assert response.status_code == 202, response.text


async def test_a_retry_above_its_models_cap_is_422(sqlite_url: str, start_service: Any) -> None:
    config = fast_emulator_config(behaviours={"openai/gpt-oss-20b": ModelBehaviour(1.0, 0.0, 0.0, 0.0)})
    service: Service = await start_service(sqlite_url, emulator_config=config)
    created = await service.submit(pr_batch(2, strict=False))
    assert (await service.wait(created["id"]))["counts"]["failed"] == 2
    response = await service.client.post(
        f"/batches/{created['id']}/retry",
        json={"model": "openai/gpt-oss-20b", "params": {"max_completion_tokens": 100_000}},
    )
    problem = assert_problem(response, 422, "65536")
    assert problem["field"] == "params.max_completion_tokens"


@pytest.mark.parametrize("value", ["1", '"true"', "null", '"false"', "0"])
async def test_stream_other_than_false_is_422(sqlite_url: str, start_service: Any, value: str) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    body = orjson.dumps(pr_batch(2)).replace(
        b'"max_completion_tokens"', b'"stream":' + value.encode() + b',"max_completion_tokens"', 1
    )
    response = await service.client.post("/batches", content=body, headers={"content-type": "application/json"})
    assert assert_problem(response, 422, "stream")["field"] == "items[0].body.stream"
    await assert_nothing_stored(service)
    fine = orjson.dumps(pr_batch(2)).replace(b'"max_completion_tokens"', b'"stream":false,"max_completion_tokens"', 1)
    accepted = await service.client.post("/batches", content=fine, headers={"content-type": "application/json"})
    assert accepted.status_code == 202, accepted.text


@pytest.mark.parametrize(
    "budget",
    ['"1_000"', '"\u0663"', '"\uff15"', '" 5 "', '"5 "', '"1e3"', '"NaN"', '"+5"', '"5."', '".5"', "true", '"5\\n"'],
)
async def test_budget_usd_is_a_number_or_a_plain_decimal_string(
    sqlite_url: str, start_service: Any, budget: str
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    body = orjson.dumps(pr_batch(2, budget_usd="__B__")).replace(b'"__B__"', budget.encode())
    for path in ("/batches", "/batches/estimate"):
        response = await service.client.post(path, content=body, headers={"content-type": "application/json"})
        assert assert_problem(response, 422, "budget_usd")["field"] == "budget_usd"
    await assert_nothing_stored(service)


@pytest.mark.parametrize(
    ("budget", "stored"), [('"25.50"', "25.5"), ("25.5", "25.5"), ("3", "3"), ('"0.000001"', "0.000001")]
)
async def test_budget_usd_as_a_number_or_a_decimal_string_is_taken(
    sqlite_url: str, start_service: Any, budget: str, stored: str
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    body = orjson.dumps(pr_batch(2, budget_usd="__B__")).replace(b'"__B__"', budget.encode())
    response = await service.client.post("/batches", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 202, response.text
    assert Decimal(response.json()["budget"]["budget_usd"]) == Decimal(stored)
