"""Input limits: over one, a 413 or 422 problem+json naming the setting, and nothing stored. The body limit
holds before reading (Content-Length) and while reading (a chunked body)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from groq_emulator import ModelBehaviour
from service.settings import Settings
from tests.api.test_bad_input import assert_nothing_stored, assert_problem
from tests.conftest import Service, fast_emulator_config
from tests.conftest import test_settings as make_settings
from tests.payloads import ndjson_lines, pr_batch, pr_item

BACKFILL_ITEMS = 21_000
BACKFILL_ITEM_BYTES = 20 * 1024  # a PR prompt of ~20 KB: title, description, a trimmed diff


def limit_problem(response: Any, status: int, setting: str) -> dict[str, Any]:
    problem = assert_problem(response, status, setting)
    assert problem["limit"] == setting
    assert isinstance(problem["maximum"], int)
    return problem


def test_defaults_fit_a_21000_pr_backfill_in_one_request(tmp_path: Path) -> None:
    settings: Settings = make_settings("sqlite:///unused.db", tmp_path)
    item = pr_item(26313)
    item["body"]["messages"][1]["content"] = "x" * BACKFILL_ITEM_BYTES
    item_bytes = len(orjson.dumps(item))
    payload_bytes = BACKFILL_ITEMS * (item_bytes + 1) + len(orjson.dumps({**pr_batch(1), "items": []}))
    assert payload_bytes < settings.max_request_bytes, (payload_bytes, settings.max_request_bytes)
    assert settings.max_items_per_batch >= BACKFILL_ITEMS
    assert settings.max_request_bytes == 512 * 1024 * 1024
    assert (settings.max_metadata_keys, settings.max_metadata_bytes) == (16, 4096)
    assert (settings.max_custom_id_length, settings.max_output_schema_bytes) == (512, 65536)


async def test_body_over_the_limit_is_refused_from_content_length(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, max_request_bytes=10_000, workers_enabled=False)
    payload = pr_batch(40)
    assert len(orjson.dumps(payload)) > 10_000
    response = await service.client.post("/batches", json=payload)
    problem = limit_problem(response, 413, "MAX_REQUEST_BYTES")
    assert problem["maximum"] == 10_000
    await assert_nothing_stored(service)


async def test_chunked_body_over_the_limit_is_refused_while_streaming(sqlite_url: str, start_service: Any) -> None:
    """No Content-Length: the limit holds on what was read, and reading stops there."""
    service: Service = await start_service(sqlite_url, max_request_bytes=10_000, workers_enabled=False)
    body = orjson.dumps(pr_batch(40))
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            sent.append(start)
            yield body[start : start + 1000]

    response = await service.client.post("/batches", content=chunks(), headers={"content-type": "application/json"})
    limit_problem(response, 413, "MAX_REQUEST_BYTES")
    assert len(sent) <= 12, "the body is not read past the limit"
    await assert_nothing_stored(service)


async def test_body_at_the_limit_is_accepted(sqlite_url: str, start_service: Any) -> None:
    payload = pr_batch(3)
    size = len(orjson.dumps(payload))
    service: Service = await start_service(sqlite_url, max_request_bytes=size, workers_enabled=False)
    response = await service.client.post(
        "/batches", content=orjson.dumps(payload), headers={"content-type": "application/json"}
    )
    assert response.status_code == 202, response.text


async def test_too_many_items_is_422_naming_the_limit(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, max_items_per_batch=5, workers_enabled=False)
    problem = limit_problem(await service.client.post("/batches", json=pr_batch(6)), 422, "MAX_ITEMS_PER_BATCH")
    assert problem["field"] == "items" and "more than 5" in problem["detail"]
    await assert_nothing_stored(service)
    assert (await service.client.post("/batches", json=pr_batch(5))).status_code == 202


@pytest.mark.parametrize(
    ("change", "status", "setting_or_words"),
    [
        (lambda p: p["items"][1].update(custom_id="p" * 65), 422, "MAX_CUSTOM_ID_LENGTH"),
        (lambda p: p.update(metadata={f"k{n}": n for n in range(5)}), 422, "MAX_METADATA_KEYS"),
        (lambda p: p.update(metadata={"note": "x" * 300}), 422, "MAX_METADATA_BYTES"),
        (
            lambda p: p.update(output_schema={"type": "object", "description": "x" * 3000}),
            422,
            "MAX_OUTPUT_SCHEMA_BYTES",
        ),
        (
            lambda p: p["params"]["response_format"]["json_schema"]["schema"].update(description="x" * 2000),
            422,
            "MAX_OUTPUT_SCHEMA_BYTES",
        ),
    ],
    ids=["custom-id-length", "metadata-keys", "metadata-bytes", "output-schema-bytes", "response-format-schema-bytes"],
)
async def test_part_over_its_limit_is_422_naming_the_limit(
    sqlite_url: str, start_service: Any, change: Any, status: int, setting_or_words: str
) -> None:
    service: Service = await start_service(
        sqlite_url,
        workers_enabled=False,
        max_custom_id_length=64,
        max_metadata_keys=4,
        max_metadata_bytes=256,
        max_output_schema_bytes=2048,
    )
    payload = pr_batch(3)
    change(payload)
    limit_problem(await service.client.post("/batches", json=payload), status, setting_or_words)
    await assert_nothing_stored(service)


@pytest.mark.parametrize(
    "custom_id", ["pr 1", "pr\n1", "pr-1;drop", "prü-1", "<script>", "pr?1", "pr%201", "a\\b"], ids=repr
)
async def test_custom_id_with_other_characters_is_refused(sqlite_url: str, start_service: Any, custom_id: str) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    payload = pr_batch(2)
    payload["items"][0]["custom_id"] = custom_id
    assert_problem(await service.client.post("/batches", json=payload), 422, "items[0].custom_id")
    await assert_nothing_stored(service)


@pytest.mark.parametrize(
    "custom_id", ["pr-26313", "acme/payments#26313", "repo:pr.1_2", "x" * 512, "A-Z_0-9.:/#"], ids=lambda c: c[:20]
)
async def test_custom_id_of_the_allowed_characters_is_accepted(
    sqlite_url: str, start_service: Any, custom_id: str
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    payload = pr_batch(2)
    payload["items"][0]["custom_id"] = custom_id
    assert (await service.client.post("/batches", json=payload)).status_code == 202


def nested(depth: int) -> bytes:
    """A JSON Schema nesting `depth` objects: {"not": {"not": ... {}}}."""
    return b'{"not":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


@pytest.mark.parametrize(
    ("field", "depth"),
    [("output_schema", 65), ("output_schema", 200), ("metadata", 300), ("items[0].body", 100), ("params", 90)],
)
async def test_json_nested_too_deep_is_422_not_a_server_error(
    sqlite_url: str, start_service: Any, field: str, depth: int
) -> None:
    """Deep enough input would exhaust the recursion of the JSON Schema and JSON libraries (a 500)."""
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    payload = pr_batch(2)
    deep = orjson.loads(nested(depth))
    if field == "items[0].body":
        payload["items"][0]["body"]["extra"] = deep
    elif field == "params":
        payload["params"]["response_format"]["json_schema"]["schema"] = deep
    elif field == "metadata":
        payload["metadata"] = {"a": deep}
    else:
        payload[field] = deep
    response = await service.client.post("/batches", json=payload)
    problem = limit_problem(response, 422, "MAX_JSON_DEPTH")
    assert problem["maximum"] == 64 and problem["field"].startswith(field), problem  # the deepest level
    await assert_nothing_stored(service)


@pytest.mark.parametrize(
    ("field", "where"),
    [("metadata", "line 1, metadata"), ("output_schema", "line 1, output_schema"), ("items[0].body", "line 2")],
)
async def test_ndjson_nested_too_deep_is_422_naming_the_line(
    sqlite_url: str, start_service: Any, field: str, where: str
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    payload = pr_batch(2)
    deep = orjson.loads(nested(70))
    if field == "items[0].body":
        payload["items"][0]["body"]["extra"] = deep
    elif field == "metadata":
        payload["metadata"] = {"a": deep}
    else:
        payload[field] = deep
    response = await service.client.post(
        "/batches", content=b"\n".join(ndjson_lines(payload)), headers={"content-type": "application/x-ndjson"}
    )
    problem = limit_problem(response, 422, "MAX_JSON_DEPTH")
    assert problem["field"] == where, problem
    await assert_nothing_stored(service)


async def test_ndjson_with_many_brackets_in_its_strings_is_not_too_deep(sqlite_url: str, start_service: Any) -> None:
    """A line opening more than MAX_JSON_DEPTH brackets in all may still nest less: its value is walked."""
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    payload = pr_batch(2)
    payload["output_schema"] = orjson.loads(nested(64))
    payload["items"][0]["body"]["messages"][0]["content"] = "if (x) { return [1]; } " * 100
    response = await service.client.post(
        "/batches", content=b"\n".join(ndjson_lines(payload)), headers={"content-type": "application/x-ndjson"}
    )
    assert response.status_code == 202, response.text


async def test_json_schema_at_the_nesting_limit_is_accepted(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    payload = pr_batch(2)
    payload["output_schema"] = orjson.loads(nested(64))
    assert (await service.client.post("/batches", json=payload)).status_code == 202


async def test_json_nested_deeper_than_the_parser_allows_is_a_4xx(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    deep = b"[" * 5000 + b"1" + b"]" * 5000
    payload = orjson.dumps(pr_batch(2))[:-1] + b',"metadata":{"a":' + deep + b"}}"
    response = await service.client.post("/batches", content=payload, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    await assert_nothing_stored(service)


async def test_retry_params_nested_too_deep_is_422(sqlite_url: str, start_service: Any) -> None:
    config = fast_emulator_config(behaviours={"openai/gpt-oss-20b": ModelBehaviour(1.0, 0.0, 0.0, 0.0)})
    service: Service = await start_service(sqlite_url, emulator_config=config)
    created = await service.submit(pr_batch(2, strict=False))
    assert (await service.wait(created["id"]))["status"] == "failed"
    params = {
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": orjson.loads(nested(80))}}
    }
    response = await service.client.post(f"/batches/{created['id']}/retry", json={"params": params})
    limit_problem(response, 422, "MAX_JSON_DEPTH")
    assert len((await service.client.get(f"/batches/{created['id']}")).json()["passes"]) == 1
