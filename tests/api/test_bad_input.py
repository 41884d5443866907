"""Bad requests get a clear 4xx problem+json that names what is wrong, and nothing is stored."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from groq_emulator import ModelBehaviour
from service.store.database import create_engine
from tests.conftest import Service, fast_emulator_config
from tests.payloads import pr_batch

PRIMARY = "openai/gpt-oss-20b"
PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:llm-batch:problem:"
UNKNOWN_BATCH = "lb_01jdoesnotexist0000000000"


def assert_problem(response: httpx.Response, status: int, *mentions: str) -> dict[str, Any]:
    """A problem+json response with `status`, whose detail names each of `mentions`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers["content-type"]
    problem: dict[str, Any] = response.json()
    assert problem["type"].startswith(PROBLEM_TYPE_PREFIX), problem
    assert problem["title"], problem
    assert problem["status"] == status, problem
    assert problem["detail"], problem
    for mention in mentions:
        assert mention in problem["detail"], f"detail should name {mention!r}: {problem['detail']!r}"
    return problem


async def stored_rows(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return {
                table: (await connection.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar_one()
                for table in ("batches", "items", "passes", "provider_batches", "attempts")
            }
    finally:
        await engine.dispose()


async def assert_nothing_stored(service: Service) -> None:
    listing = await service.client.get("/batches")
    assert listing.status_code == 200, listing.text
    assert listing.json()["data"] == []
    assert set((await stored_rows(service.settings.database_url)).values()) == {0}


def edit(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    payload = pr_batch(3)
    change(payload)
    return payload


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets payload[a][b]... (dotted path; digits index lists) to `value`."""

    def change(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = payload
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = copy.deepcopy(value)

    return change


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda payload: payload.pop(key)


# (id, payload, query params, words the detail must contain)
BAD_SUBMISSIONS: list[tuple[str, dict[str, Any], dict[str, str], tuple[str, ...]]] = [
    ("empty-items", edit(_set("items", [])), {}, ("items",)),
    ("missing-items", edit(_drop("items")), {}, ("items", "needs an items list")),
    ("duplicate-custom-id", edit(_set("items.2.custom_id", "pr-1")), {}, ("'pr-1'", "unique")),
    ("empty-custom-id", edit(_set("items.1.custom_id", "")), {}, ("items[1].custom_id",)),
    ("body-not-an-object", edit(_set("items.1.body", "hello")), {}, ("items[1].body", "JSON object")),
    ("model-in-item-body", edit(_set("items.1.body.model", PRIMARY)), {}, ("'pr-2'", '"model"')),
    ("empty-messages", edit(_set("items.0.body.messages", [])), {}, ("'pr-1'", "messages")),
    ("missing-messages", edit(lambda p: p["items"][0]["body"].pop("messages")), {}, ("'pr-1'", "messages")),
    ("message-without-role", edit(_set("items.0.body.messages", [{"content": "hi"}])), {}, ("role",)),
    ("stream-in-item-body", edit(_set("items.2.body.stream", True)), {}, ("'pr-3'", "stream")),
    ("invalid-output-schema", edit(_set("output_schema", {"type": "nonsense"})), {}, ("output_schema",)),
    (
        "invalid-response-format-schema",
        edit(_set("params.response_format.json_schema.schema", {"type": 12})),
        {},
        ("params.response_format", "JSON Schema"),
    ),
    ("unknown-response-format", edit(_set("params.response_format", {"type": "yaml"})), {}, ("response_format",)),
    ("unknown-top-level-field", edit(_set("temprature", 0)), {}, ("temprature",)),
    ("window-12h", edit(_set("completion_window", "12h")), {}, ("completion_window", "12h")),
    ("window-8d", edit(_set("completion_window", "8d")), {}, ("completion_window", "8d")),
    ("window-garbage", edit(_set("completion_window", "tomorrow")), {}, ("completion_window",)),
    ("model-in-params", edit(_set("params.model", PRIMARY)), {}, ("params", '"model"')),
    ("stream-in-params", edit(_set("params.stream", True)), {}, ("params", "stream")),
    ("n-in-params", edit(_set("params.n", 3)), {}, ("params", '"n"')),
    ("messages-in-params", edit(_set("params.messages", [])), {}, ("params", "messages")),
    ("model-in-fallback-params", edit(_set("fallback_params", {"model": "x"})), {}, ("fallback_params", '"model"')),
    ("unpriced-model", edit(_set("model", "acme/unknown-7b")), {}, ("'acme/unknown-7b'", "price")),
    (
        "unpriced-fallback-model",
        edit(_set("fallback_model", "acme/unknown-70b")),
        {"fallback": "true"},
        ("'acme/unknown-70b'", "price"),
    ),
]


@pytest.mark.parametrize(
    ("payload", "query", "mentions"),
    [pytest.param(payload, query, mentions, id=name) for name, payload, query, mentions in BAD_SUBMISSIONS],
)
async def test_bad_submission_is_refused_with_422_and_stores_nothing(
    sqlite_url: str, start_service: Any, payload: dict[str, Any], query: dict[str, str], mentions: tuple[str, ...]
) -> None:
    service: Service = await start_service(sqlite_url)
    response = await service.client.post("/batches", params=query, json=payload)
    assert_problem(response, 422, *mentions)
    assert "location" not in response.headers
    await assert_nothing_stored(service)


async def test_invalid_json_body_is_refused_with_422(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url)
    response = await service.client.post(
        "/batches", content=b'{"items": [{"custom_id": "pr-1",', headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "JSON")
    await assert_nothing_stored(service)


async def test_json_that_is_not_an_object_is_refused_with_422(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url)
    response = await service.client.post("/batches", json=[pr_batch(1)])
    assert_problem(response, 422)
    await assert_nothing_stored(service)


async def test_no_bad_submission_stores_anything(database_url: str, start_service: Any) -> None:
    """Every bad submission above, on SQLite and on PostgreSQL: no row in any table afterwards."""
    service: Service = await start_service(database_url)
    for name, payload, query, mentions in BAD_SUBMISSIONS:
        response = await service.client.post("/batches", params=query, json=payload)
        assert response.status_code == 422, f"{name}: {response.text}"
        assert_problem(response, 422, *mentions)
    await assert_nothing_stored(service)


async def test_a_good_submission_after_bad_ones_is_stored_whole(database_url: str, start_service: Any) -> None:
    """The counterpart of the checks above: the row counting sees what a valid submission stores."""
    service: Service = await start_service(database_url, workers_enabled=False)
    refused = await service.client.post("/batches", json=edit(_set("items.2.custom_id", "pr-1")))
    assert refused.status_code == 422
    created = await service.submit(pr_batch(3))
    assert [b["id"] for b in (await service.client.get("/batches")).json()["data"]] == [created["id"]]
    counts = await stored_rows(database_url)
    assert (counts["batches"], counts["items"], counts["passes"]) == (1, 3, 1)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/batches/{UNKNOWN_BATCH}"),
        ("GET", f"/batches/{UNKNOWN_BATCH}/results"),
        ("POST", f"/batches/{UNKNOWN_BATCH}/retry"),
        ("POST", f"/batches/{UNKNOWN_BATCH}/cancel"),
        ("GET", f"/batches/{UNKNOWN_BATCH}/items/x"),
    ],
)
async def test_unknown_batch_is_404(sqlite_url: str, start_service: Any, method: str, path: str) -> None:
    service: Service = await start_service(sqlite_url)
    response = await service.client.request(method, path)
    assert_problem(response, 404, UNKNOWN_BATCH)
    await assert_nothing_stored(service)


async def test_unknown_item_is_404(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    created = await service.submit(pr_batch(2))
    response = await service.client.get(f"/batches/{created['id']}/items/pr-404")
    problem = assert_problem(response, 404, "'pr-404'")
    assert problem["type"] == PROBLEM_TYPE_PREFIX + "not-found"


@pytest.mark.parametrize("cursor", ["abc", "-1", "pr-3", "1.5"])
async def test_bad_results_cursor_is_400(sqlite_url: str, start_service: Any, cursor: str) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    created = await service.submit(pr_batch(2))
    response = await service.client.get(f"/batches/{created['id']}/results", params={"after": cursor})
    assert_problem(response, 400, "after")


@pytest.mark.parametrize(
    ("path", "query", "mentions"),
    [
        ("/batches/{id}/results", {"limit": "0"}, ("limit",)),
        ("/batches/{id}/results", {"limit": "1001"}, ("limit",)),
        ("/batches/{id}/results", {"limit": "ten"}, ("limit",)),
        ("/batches/{id}/results", {"status": "maybe"}, ("status",)),
        ("/batches", {"limit": "0"}, ("limit",)),
        ("/batches", {"status": "sleeping"}, ("status",)),
    ],
)
async def test_bad_query_parameters_are_422(
    sqlite_url: str, start_service: Any, path: str, query: dict[str, str], mentions: tuple[str, ...]
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    created = await service.submit(pr_batch(2))
    response = await service.client.get(path.format(id=created["id"]), params=query)
    assert_problem(response, 422, *mentions)


async def finished_batch_with_failures(service: Service) -> tuple[str, list[str], list[str]]:
    created = await service.submit(pr_batch(20, strict=False))  # strict mode would leave nothing failed
    summary = await service.wait(created["id"])
    assert summary["status"] == "completed", summary
    rows = await service.results(created["id"])
    succeeded = [r["custom_id"] for r in rows if r["status"] == "succeeded"]
    failed = [r["custom_id"] for r in rows if r["status"] == "failed"]
    assert succeeded and failed, "the emulator should make some items fail and others pass"
    return created["id"], succeeded, failed


RetryBody = Callable[[list[str], list[str]], tuple[dict[str, Any], tuple[str, ...]]]

# (id, (succeeded ids, failed ids) -> (retry body, words the detail must contain))
BAD_RETRIES: list[tuple[str, RetryBody]] = [
    (
        "succeeded-item",
        lambda ok, failed: (
            {"custom_ids": [failed[0], ok[0]]},
            (repr(ok[0]), "not a failed item"),
        ),
    ),
    ("unknown-item", lambda ok, failed: ({"custom_ids": ["pr-999"]}, ("'pr-999'", "not a failed item"))),
    ("empty-custom-ids", lambda ok, failed: ({"custom_ids": []}, ("custom_ids",))),
    ("unpriced-model", lambda ok, failed: ({"model": "acme/unknown-7b"}, ("'acme/unknown-7b'", "price"))),
    ("model-in-params", lambda ok, failed: ({"params": {"model": PRIMARY}}, ("params", '"model"'))),
    ("stream-in-params", lambda ok, failed: ({"params": {"stream": True}}, ("params", "stream"))),
    ("unknown-field", lambda ok, failed: ({"modle": "openai/gpt-oss-120b"}, ("modle",))),
]


@pytest.mark.parametrize("make_body", [pytest.param(make, id=name) for name, make in BAD_RETRIES])
async def test_bad_retry_of_a_finished_batch_is_422_and_starts_no_pass(
    sqlite_url: str, start_service: Any, make_body: RetryBody
) -> None:
    config = fast_emulator_config(behaviours={PRIMARY: ModelBehaviour(0.3, 0.0, 0.0, 0.0)})
    service: Service = await start_service(sqlite_url, emulator_config=config)
    batch_id, succeeded, failed = await finished_batch_with_failures(service)
    body, mentions = make_body(succeeded, failed)

    response = await service.client.post(f"/batches/{batch_id}/retry", json=body)
    assert_problem(response, 422, *mentions)
    after = (await service.client.get(f"/batches/{batch_id}")).json()
    assert after["status"] == "completed"
    assert [p["number"] for p in after["passes"]] == [1]
    assert (await stored_rows(sqlite_url))["passes"] == 1


async def test_retry_with_invalid_json_body_is_422(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    created = await service.submit(pr_batch(2))
    response = await service.client.post(
        f"/batches/{created['id']}/retry", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "JSON")


async def test_item_too_large_for_a_provider_batch_file_is_refused_at_submission(
    sqlite_url: str, start_service: Any
) -> None:
    """A request line that can never fit in a provider batch file must be refused up front, not stored and
    left to fail in the worker."""
    service: Service = await start_service(sqlite_url, max_bytes_per_provider_batch=4096)
    payload = pr_batch(2)
    payload["items"][1]["body"]["messages"][1]["content"] = "x" * 8000
    response = await service.client.post("/batches", json=payload)
    assert_problem(response, 422, "'pr-2'", "4096")
    await assert_nothing_stored(service)


async def test_validation_error_names_a_field_called_body(sqlite_url: str, start_service: Any) -> None:
    """The item's own `body` field keeps its name: it is not the request body."""
    service: Service = await start_service(sqlite_url)
    response = await service.client.post("/batches", json=edit(_set("items.1.body", "hello")))
    problem = assert_problem(response, 422, "items[1].body")
    assert problem["errors"][0]["field"] == "items[1].body"


@pytest.mark.parametrize(
    ("field", "schema", "mentions"),
    [
        ("output_schema", {"$ref": "https://schemas.example.invalid/pr.json"}, ("output_schema", "$ref")),
        ("output_schema", {"$ref": "#/$defs/missing"}, ("output_schema", "#/$defs/missing")),
        (
            "output_schema",
            {"type": "object", "properties": {"a": {"$ref": "http://169.254.169.254/latest/meta-data"}}},
            ("output_schema", "169.254.169.254"),
        ),
        (
            "params.response_format.json_schema.schema",
            {"$ref": "https://schemas.example.invalid/pr.json"},
            ("params.response_format", "$ref"),
        ),
    ],
    ids=["remote-ref", "missing-local-ref", "metadata-service-ref", "remote-ref-in-response-format"],
)
async def test_schema_with_unresolvable_ref_is_refused_at_submission(
    sqlite_url: str, start_service: Any, field: str, schema: dict[str, Any], mentions: tuple[str, ...]
) -> None:
    """Only references inside the schema itself can be used. Anything else passes check_schema but fails
    (after fetching the URL from the worker, as jsonschema does by default) when outputs are validated."""
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    response = await service.client.post("/batches", json=edit(_set(field, schema)))
    assert_problem(response, 422, *mentions)
    await assert_nothing_stored(service)


async def test_schema_with_local_refs_is_accepted(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    schema = {
        "$defs": {"risk": {"enum": ["low", "high"]}},
        "type": "object",
        "properties": {"r": {"$ref": "#/$defs/risk"}},
    }
    await service.submit(edit(_set("output_schema", schema)))


@pytest.mark.parametrize("callback_url", ["not a url", "ftp://django.internal/hook", "file:///etc/passwd"])
async def test_callback_url_must_be_an_http_url(sqlite_url: str, start_service: Any, callback_url: str) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    response = await service.client.post("/batches", json=edit(_set("callback_url", callback_url)))
    assert_problem(response, 422, "callback_url")
    await assert_nothing_stored(service)


async def test_results_cursor_of_unicode_digits_is_400(sqlite_url: str, start_service: Any) -> None:
    """str.isdigit() is true for "\u00b2" (superscript two), which int() refuses."""
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    created = await service.submit(pr_batch(2))
    response = await service.client.get(f"/batches/{created['id']}/results", params={"after": "\u00b2"})
    assert_problem(response, 400, "after")


async def assert_cursor_is_no_server_error(service: Service, cursor: str) -> None:
    """A cursor no page ever returned: an empty page or a 400, never a 500."""
    created = await service.submit(pr_batch(2))
    response = await service.client.get(f"/batches/{created['id']}/results", params={"after": cursor})
    if response.status_code == 200:
        assert response.json() == {"data": [], "has_more": False, "next_cursor": None}
    else:
        assert_problem(response, 400, "after")


async def test_results_cursor_beyond_any_position_is_no_server_error(database_url: str, start_service: Any) -> None:
    service: Service = await start_service(database_url, workers_enabled=False)
    await assert_cursor_is_no_server_error(service, "99999999999999999999")


@pytest.mark.postgres
async def test_results_cursor_beyond_32_bits_is_no_server_error_on_postgres(
    postgres_url: str, start_service: Any
) -> None:
    service: Service = await start_service(postgres_url, workers_enabled=False)
    await assert_cursor_is_no_server_error(service, str(2**31))
