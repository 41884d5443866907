"""Idempotency-Key on POST /batches and POST /batches/{id}/retry: the same key and request answer the first
answer and create nothing more, across concurrent requests and replicas; another request with the key is
refused; a failed request gives its key back; keys expire."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import insert, text

from groq_emulator import ModelBehaviour
from service.api.errors import Problem
from service.api.idempotency import Idempotency, request_fingerprint
from service.kit.clock import utcnow
from service.models import DEFAULT_TENANT, Batch, IdempotencyKey, IdempotencyState
from service.store import transaction
from service.store.database import create_engine
from service.views.response_bodies import Health
from tests.api.test_bad_input import assert_problem, stored_rows
from tests.conftest import Service, fast_emulator_config
from tests.payloads import pr_batch

PRIMARY = "openai/gpt-oss-20b"


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def answer(response: httpx.Response) -> tuple[int, bytes, str | None]:
    return response.status_code, response.content, response.headers.get("location")


async def test_same_key_and_body_returns_the_first_answer_and_creates_nothing(
    database_url: str, start_service: Any
) -> None:
    service: Service = await start_service(database_url, workers_enabled=False)
    payload = pr_batch(3)
    first = await service.client.post("/batches", json=payload, headers=keyed("submit-1"))
    again = await service.client.post("/batches", json=payload, headers=keyed("submit-1"))
    assert first.status_code == 202, first.text
    assert answer(again) == answer(first)
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert first.headers["location"] == f"/batches/{first.json()['id']}"
    assert (await stored_rows(database_url))["batches"] == 1


async def test_without_a_key_each_submission_is_a_new_batch(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    await service.submit(pr_batch(2))
    await service.submit(pr_batch(2))
    assert (await stored_rows(sqlite_url))["batches"] == 2


@pytest.mark.parametrize(
    ("second_body", "second_query"),
    [(pr_batch(4), {}), (pr_batch(3, start=10), {}), (pr_batch(3), {"fallback": "true"})],
    ids=["other-items", "other-ids", "other-query"],
)
async def test_same_key_with_another_request_is_refused(
    sqlite_url: str, start_service: Any, second_body: dict[str, Any], second_query: dict[str, str]
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    first = await service.client.post("/batches", json=pr_batch(3), headers=keyed("k-1"))
    assert first.status_code == 202
    other = await service.client.post("/batches", json=second_body, params=second_query, headers=keyed("k-1"))
    problem = assert_problem(other, 422, "Idempotency-Key", "'k-1'", "different request")
    assert problem["type"] == "urn:llm-batch:problem:idempotency-key-reused"
    assert (await stored_rows(sqlite_url))["batches"] == 1


async def test_a_key_used_for_a_submission_cannot_be_used_for_a_retry(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    created = await service.client.post("/batches", json=pr_batch(2), headers=keyed("shared"))
    retry = await service.client.post(f"/batches/{created.json()['id']}/retry", headers=keyed("shared"))
    assert_problem(retry, 422, "Idempotency-Key", "POST /batches")


@pytest.mark.parametrize("replicas", [1, 2], ids=["one-replica", "two-replicas"])
async def test_concurrent_duplicates_create_one_batch_and_all_get_the_same_answer(
    database_url: str, start_service: Any, replicas: int
) -> None:
    """Five POSTs with one key at once (spread over `replicas` apps on one database): the winner creates the
    batch, the others wait for its answer."""
    services: list[Service] = [await start_service(database_url, workers_enabled=False) for _ in range(replicas)]
    body = orjson.dumps(pr_batch(50))
    headers = {**keyed("backfill-2026-11-28"), "content-type": "application/json"}
    responses = await asyncio.gather(
        *(services[n % replicas].client.post("/batches", content=body, headers=headers) for n in range(5))
    )
    answers = {answer(response) for response in responses}
    assert len(answers) == 1, [r.text[:200] for r in responses]
    assert responses[0].status_code == 202
    assert sum("idempotent-replayed" in response.headers for response in responses) == 4
    counts = await stored_rows(database_url)
    assert (counts["batches"], counts["items"], counts["passes"]) == (1, 50, 1)


async def test_a_refused_request_gives_its_key_back(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    bad = pr_batch(2)
    bad["items"][1]["custom_id"] = "pr-1"
    refused = await service.client.post("/batches", json=bad, headers=keyed("fix-and-resend"))
    assert_problem(refused, 422, "unique")
    fixed = await service.client.post("/batches", json=pr_batch(2), headers=keyed("fix-and-resend"))
    assert fixed.status_code == 202, fixed.text


async def test_retry_with_the_same_key_starts_one_pass(sqlite_url: str, start_service: Any) -> None:
    config = fast_emulator_config(behaviours={PRIMARY: ModelBehaviour(0.5, 0.0, 0.0, 0.0)})
    service: Service = await start_service(sqlite_url, emulator_config=config)
    created = await service.submit(pr_batch(10, strict=False))
    finished = await service.wait(created["id"])
    assert finished["counts"]["failed"] > 0
    path = f"/batches/{created['id']}/retry"
    first, again = await asyncio.gather(
        service.client.post(path, json={"model": "openai/gpt-oss-120b"}, headers=keyed("retry-1")),
        service.client.post(path, json={"model": "openai/gpt-oss-120b"}, headers=keyed("retry-1")),
    )
    assert first.status_code == 202, first.text
    assert answer(again) == answer(first)
    await service.wait(created["id"])
    late = await service.client.post(path, json={"model": "openai/gpt-oss-120b"}, headers=keyed("retry-1"))
    assert answer(late) == answer(first), "a retry sent again after the pass finished must not start another"
    assert (await stored_rows(sqlite_url))["passes"] == 2


async def test_keys_expire(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False, idempotency_key_ttl_seconds=0.2)
    first = await service.client.post("/batches", json=pr_batch(2), headers=keyed("short-lived"))
    await asyncio.sleep(0.3)
    later = await service.client.post("/batches", json=pr_batch(2), headers=keyed("short-lived"))
    assert later.status_code == 202 and later.json()["id"] != first.json()["id"]


async def hold_key(service: Service, key: str, body: bytes, *, for_seconds: float) -> None:
    """Another request holds `key` for the same request (it is still working on it)."""
    now = utcnow()
    async with transaction(service.app.state.llm_batch.sessions) as session:
        await session.execute(
            insert(IdempotencyKey).values(
                tenant=DEFAULT_TENANT,
                key=key,
                request_hash=request_fingerprint("POST", "/batches", [], hashlib.sha256(body).hexdigest()),
                method="POST",
                path="/batches",
                state=IdempotencyState.IN_PROGRESS,
                owner="another-request",
                locked_until=now + timedelta(seconds=for_seconds),
                created_at=now,
                expires_at=now + timedelta(hours=24),
            )
        )


async def test_key_still_in_progress_after_the_wait_is_409_with_retry_after(
    database_url: str, start_service: Any
) -> None:
    service: Service = await start_service(database_url, workers_enabled=False, idempotency_wait_seconds=0.2)
    body = orjson.dumps(pr_batch(2))
    await hold_key(service, "busy", body, for_seconds=60)
    headers = {**keyed("busy"), "content-type": "application/json"}
    response = await service.client.post("/batches", content=body, headers=headers)
    assert_problem(response, 409, "'busy'", "in progress")
    assert response.headers["retry-after"] == "1"
    assert (await stored_rows(database_url))["batches"] == 0


async def test_key_held_by_a_request_that_died_is_taken_over(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False, idempotency_wait_seconds=5)
    body = orjson.dumps(pr_batch(2))
    await hold_key(service, "orphan", body, for_seconds=0.3)
    headers = {**keyed("orphan"), "content-type": "application/json"}
    response = await service.client.post("/batches", content=body, headers=headers)
    assert response.status_code == 202, response.text


async def test_work_whose_claim_was_taken_over_is_not_committed(sqlite_url: str, start_service: Any) -> None:
    """A request slower than its claim: another took the key over, so its own batch must be rolled back."""
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    sessions = service.app.state.llm_batch.sessions
    await hold_key(service, "taken", b"{}", for_seconds=60)
    slow = Idempotency(key="taken", tenant=DEFAULT_TENANT, owner="the-slow-request", claimed=True)
    async with sessions() as session:
        session.add(Batch(id="lb_slow", tenant=DEFAULT_TENANT, tiers=[{"model": "m", "params": {}}]))
        with pytest.raises(Problem, match="taken over"):
            await slow.respond(session, Health(status="ok", provider="x", auth="off", warnings=[]), status_code=202)
    assert (await stored_rows(sqlite_url))["batches"] == 0


@pytest.mark.parametrize("key", ["", "a" * 256, "has space", "tab\tkey"], ids=["empty", "too-long", "space", "tab"])
async def test_malformed_key_is_422(sqlite_url: str, start_service: Any, key: str) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    response = await service.client.post("/batches", json=pr_batch(2), headers=keyed(key))
    assert_problem(response, 422, "Idempotency-Key")
    assert (await stored_rows(sqlite_url))["batches"] == 0


async def held_keys(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT key FROM idempotency_keys WHERE state = 'in_progress'"))
            return [row[0] for row in rows]
    finally:
        await engine.dispose()


async def test_concurrent_retries_start_one_pass_and_never_fail(database_url: str, start_service: Any) -> None:
    """Ten retries of one batch at once, each with its own key: one starts the pass (202), the others are 409,
    none 500 (SQLite's "database is locked"), and every refused request gives its key back."""
    config = fast_emulator_config(behaviours={PRIMARY: ModelBehaviour(0.5, 0.0, 0.0, 0.0)})
    service: Service = await start_service(database_url, emulator_config=config)
    created = await service.submit(pr_batch(20, strict=False))
    finished = await service.wait(created["id"])
    assert finished["counts"]["failed"] > 0
    path = f"/batches/{created['id']}/retry"
    responses = await asyncio.gather(
        *(
            service.client.post(path, json={"model": "openai/gpt-oss-120b"}, headers=keyed(f"retry-{n}"))
            for n in range(10)
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [202] + [409] * 9, [(r.status_code, r.text[:200]) for r in responses]
    assert await held_keys(database_url) == []
    refused = next(n for n, response in enumerate(responses) if response.status_code == 409)
    again = await service.client.post(path, json={"model": "openai/gpt-oss-120b"}, headers=keyed(f"retry-{refused}"))
    assert again.status_code == 409 and "in progress" not in again.text, again.text
    await service.wait(created["id"])
    assert (await stored_rows(database_url))["passes"] == 2
