"""Bearer tokens (API_TOKENS) on every /batches route, health endpoints open, 401 problem+json with
WWW-Authenticate; an empty API_TOKENS turns auth off, with a warning."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml

from service.api.principals import TokenTable
from service.operator_cli import openapi_yaml
from service.settings import parse_tokens
from tests.api.test_bad_input import assert_problem
from tests.conftest import Service
from tests.payloads import pr_batch

TOKENS = ["monolith-token-0123456789", "cli-token-abcdefghij"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def start_with_auth(start_service: Any, url: str, **overrides: Any) -> Service:
    service: Service = await start_service(url, api_tokens=TOKENS, workers_enabled=False, **overrides)
    return service


def assert_unauthorized(response: httpx.Response, *mentions: str) -> dict[str, Any]:
    problem = assert_problem(response, 401, *mentions)
    assert problem["type"] == "urn:llm-batch:problem:unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    return problem


def batch_routes(service: Service) -> list[tuple[str, str]]:
    routes = []
    for path, operations in service.app.openapi()["paths"].items():
        if path.startswith("/batches"):
            concrete = path.replace("{batch_id}", "lb_x").replace("{custom_id}", "pr-1")
            routes.extend((method.upper(), concrete) for method in operations)
    return routes


async def test_every_batches_route_needs_a_token(sqlite_url: str, start_service: Any) -> None:
    service = await start_with_auth(start_service, sqlite_url)
    routes = batch_routes(service)
    assert ("POST", "/batches/lb_x/webhook/redeliver") in routes and len(routes) >= 8
    for method, path in routes:
        response = await service.client.request(method, path)
        assert_unauthorized(response, "bearer token")


@pytest.mark.parametrize(
    ("authorization", "mentions", "error"),
    [
        ("Bearer not-a-token", ("not valid",), 'error="invalid_token"'),
        (f"Bearer {TOKENS[0]}x", ("not valid",), 'error="invalid_token"'),
        (f"Bearer {TOKENS[0][:-1]}", ("not valid",), 'error="invalid_token"'),
        (f"Basic {TOKENS[0]}", ("Bearer <token>",), 'error="invalid_request"'),
        ("Bearer ", ("Bearer <token>",), 'error="invalid_request"'),
        (TOKENS[0], ("Bearer <token>",), 'error="invalid_request"'),
    ],
)
async def test_wrong_authorization_is_401(
    sqlite_url: str, start_service: Any, authorization: str, mentions: tuple[str, ...], error: str
) -> None:
    service = await start_with_auth(start_service, sqlite_url)
    response = await service.client.get("/batches", headers={"Authorization": authorization})
    assert_unauthorized(response, *mentions)
    assert error in response.headers["www-authenticate"]


async def test_any_configured_token_is_accepted(sqlite_url: str, start_service: Any) -> None:
    service = await start_with_auth(start_service, sqlite_url)
    for token in TOKENS:
        assert (await service.client.get("/batches", headers=bearer(token))).status_code == 200
    created = await service.client.post("/batches", json=pr_batch(2), headers={"authorization": f"bearer {TOKENS[1]}"})
    assert created.status_code == 202, created.text
    read = await service.client.get(f"/batches/{created.json()['id']}", headers=bearer(TOKENS[0]))
    assert read.status_code == 200


async def test_health_endpoints_stay_open_and_say_auth_is_on(sqlite_url: str, start_service: Any) -> None:
    service = await start_with_auth(start_service, sqlite_url)
    health = await service.client.get("/healthz")
    assert health.status_code == 200 and health.json()["auth"] == "on"
    assert not any("API_TOKENS" in warning for warning in health.json()["warnings"])
    assert (await service.client.get("/readyz")).status_code == 200


async def test_empty_api_tokens_turns_auth_off_with_a_warning(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, api_tokens=[], workers_enabled=False)
    assert (await service.client.get("/batches")).status_code == 200
    health = (await service.client.get("/healthz")).json()
    assert health["auth"] == "off"
    assert any("API_TOKENS is empty" in warning for warning in health["warnings"])


async def test_unauthenticated_request_is_refused_before_its_body_is_read(sqlite_url: str, start_service: Any) -> None:
    """A caller without a token cannot make the service read (and parse) a large body."""
    service = await start_with_auth(start_service, sqlite_url)
    chunks_read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        for _ in range(1000):
            chunks_read += 1
            yield b" " * 65536

    response = await service.client.post("/batches", content=body(), headers={"content-type": "application/json"})
    assert_unauthorized(response)
    assert chunks_read <= 1


def test_tokens_are_compared_whole() -> None:
    table = TokenTable.of(parse_tokens(TOKENS, setting="API_TOKENS", admin=False))
    assert table.match(TOKENS[0]) and table.match(TOKENS[1])
    for wrong in ("", TOKENS[0][:-1], TOKENS[0] + " ", TOKENS[0].upper(), TOKENS[0] + TOKENS[1]):
        assert table.match(wrong) is None, wrong
    assert TokenTable.of([]).match(TOKENS[0]) is None


def test_openapi_documents_the_bearer_scheme_on_batches_models_and_metrics_only() -> None:
    document = yaml.safe_load(openapi_yaml())
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for operation in operations.values():
            secured = {"bearer": []} in operation.get("security", [])
            expected = path.startswith(("/batches", "/models")) or path == "/metrics"  # metrics: an admin's
            assert secured == expected, (path, operation.get("security"))
