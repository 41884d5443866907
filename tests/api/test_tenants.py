"""Each token's tenant sees only its own batches: another tenant's batch is 404 on every route (existence is not
revealed), absent from lists, /ui and results; Idempotency-Keys are per tenant; ADMIN_TOKENS see every tenant;
a bare token in API_TOKENS is tenant `default`, so earlier deployments keep working."""

from __future__ import annotations

from typing import Any

import pytest

from service.settings import Settings
from tests.api.test_bad_input import assert_problem
from tests.conftest import Service
from tests.payloads import pr_batch

ACME = "acme-token-0123456789abcdef"
GLOBEX = "globex-token-0123456789abcd"
BARE = "bare-token-0123456789abcdefg"
ADMIN = "admin-token-0123456789abcde"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def start(start_service: Any, url: str, **overrides: Any) -> Service:
    service: Service = await start_service(
        url, api_tokens=[f"acme:{ACME}", f"globex:{GLOBEX}", BARE], admin_tokens=[ADMIN], **overrides
    )
    return service


async def submit(service: Service, token: str, **extra: Any) -> str:
    response = await service.client.post("/batches", json=pr_batch(3, **extra), headers=bearer(token))
    assert response.status_code == 202, response.text
    batch_id: str = response.json()["id"]
    return batch_id


def every_route(batch_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/batches/{batch_id}"),
        ("GET", f"/batches/{batch_id}/results"),
        ("GET", f"/batches/{batch_id}/items/pr-1"),
        ("POST", f"/batches/{batch_id}/retry"),
        ("POST", f"/batches/{batch_id}/cancel"),
        ("POST", f"/batches/{batch_id}/webhook/redeliver"),
        ("GET", f"/ui/batches/{batch_id}"),
        ("GET", f"/ui/batches/{batch_id}/results.json"),
        ("GET", f"/ui/batches/{batch_id}/results.ndjson"),
    ]


async def test_another_tenants_batch_is_404_on_every_route(database_url: str, start_service: Any) -> None:
    service = await start(start_service, database_url, workers_enabled=False)
    theirs = await submit(service, ACME)
    unknown = "lb_01jdoesnotexist0000000000"
    for (method, path), (_m, unknown_path) in zip(every_route(theirs), every_route(unknown), strict=True):
        response = await service.client.request(method, path, headers=bearer(GLOBEX))
        missing = await service.client.request(method, unknown_path, headers=bearer(GLOBEX))
        assert response.status_code == missing.status_code == 404, (path, response.text)
        if not path.startswith("/ui"):
            assert_problem(response, 404, theirs)
    own = await service.client.get(f"/batches/{theirs}", headers=bearer(ACME))
    assert own.status_code == 200
    assert own.json()["status"] == "queued", "the other tenant's cancel did nothing"


async def test_lists_and_the_status_page_show_only_the_tenants_batches(sqlite_url: str, start_service: Any) -> None:
    service = await start(start_service, sqlite_url, workers_enabled=False)
    acme = {await submit(service, ACME) for _ in range(2)}
    globex = {await submit(service, GLOBEX)}
    default = {await submit(service, BARE)}

    async def listed(token: str) -> set[str]:
        page = (await service.client.get("/batches", headers=bearer(token))).json()
        return {batch["id"] for batch in page["data"]}

    assert await listed(ACME) == acme
    assert await listed(GLOBEX) == globex
    assert await listed(BARE) == default
    assert await listed(ADMIN) == acme | globex | default
    page = (await service.client.get("/ui", headers=bearer(GLOBEX))).text
    assert all(batch_id in page for batch_id in globex) and not any(batch_id in page for batch_id in acme)
    admin_page = (await service.client.get("/ui", headers=bearer(ADMIN))).text
    assert all(batch_id in admin_page for batch_id in acme | globex | default)


async def test_an_admin_reads_and_acts_on_any_tenants_batch(sqlite_url: str, start_service: Any) -> None:
    service = await start(start_service, sqlite_url, workers_enabled=False)
    batch_id = await submit(service, ACME)
    assert (await service.client.get(f"/batches/{batch_id}", headers=bearer(ADMIN))).status_code == 200
    cancelled = await service.client.post(f"/batches/{batch_id}/cancel", headers=bearer(ADMIN))
    assert cancelled.status_code == 202
    created_by_admin = await submit(service, ADMIN)
    assert (await service.client.get(f"/batches/{created_by_admin}", headers=bearer(BARE))).status_code == 200, (
        "an admin's own batches belong to tenant default"
    )


async def test_idempotency_keys_are_per_tenant(database_url: str, start_service: Any) -> None:
    service = await start(start_service, database_url, workers_enabled=False)
    key = {"Idempotency-Key": "nightly-2026-12-01"}
    first = await service.client.post("/batches", json=pr_batch(2), headers={**bearer(ACME), **key})
    other = await service.client.post("/batches", json=pr_batch(2), headers={**bearer(GLOBEX), **key})
    again = await service.client.post("/batches", json=pr_batch(2), headers={**bearer(ACME), **key})
    assert first.status_code == other.status_code == again.status_code == 202
    assert other.json()["id"] != first.json()["id"], "another tenant's key must not replay this tenant's answer"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"


@pytest.mark.parametrize(
    ("setting", "value", "mentions"),
    [
        ("api_tokens", ["tok_a"], ("API_TOKENS", "16")),
        ("api_tokens", ["acme:short"], ("API_TOKENS", "16", "'acme'")),
        ("admin_tokens", ["0123456789"], ("ADMIN_TOKENS", "16")),
        ("api_tokens", [f"bad name:{ACME}"], ("API_TOKENS", "tenant name")),
    ],
)
def test_tokens_that_are_too_short_or_badly_named_are_refused_at_start_up(
    setting: str, value: list[str], mentions: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError) as refused:
        Settings(**{setting: value})
    message = str(refused.value)
    for mention in mentions:
        assert mention in message, message
    for entry in value:
        assert entry.rpartition(":")[2] not in message, "the refusal quotes the token"


def test_tokens_come_from_the_environment_as_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKENS", f"acme:{ACME}, {BARE}")
    monkeypatch.setenv("ADMIN_TOKENS", ADMIN)
    grants = {(grant.tenant, grant.admin) for grant in Settings().token_grants()}
    assert grants == {("acme", False), ("default", False), ("default", True)}
