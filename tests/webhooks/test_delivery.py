"""Webhook delivery: at least once, the same webhook-id on every attempt, back-off, every attempt recorded and
shown on GET /batches/{id}, redelivery, and a restart in the middle. Receivers are real uvicorn servers on
127.0.0.1; signatures are checked with the `standardwebhooks` reference package."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select
from standardwebhooks import Webhook

from groq_emulator import ModelBehaviour, create_emulator_app
from service.app import create_app
from service.models import WebhookDelivery
from service.store.database import create_engine, session_factory
from tests import conftest
from tests.conftest import Service, fast_emulator_config
from tests.payloads import pr_batch
from tests.webhooks.helpers import SECRET, wait_for_webhook, webhook_settings
from tests.webhooks.receiver import HANG, Receiver

PRIMARY = "openai/gpt-oss-20b"


async def submit_with_callback(
    service: Service, url: str, *, count: int = 3, fallback: bool = False, strict: bool = True
) -> str:
    created = await service.submit({**pr_batch(count, strict=strict), "callback_url": url}, fallback=fallback)
    batch_id: str = created["id"]
    return batch_id


def verified(request: Any) -> dict[str, Any]:
    """The payload, after the reference implementation checked the signature and the timestamp."""
    payload: dict[str, Any] = Webhook(SECRET).verify(request.body, request.headers)
    return payload


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (workers) running, and a client on it; stopped on exit like a process."""
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://llm-batch.test") as client,
    ):
        yield client


async def delivery_rows(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return int((await session.execute(select(func.count()).select_from(WebhookDelivery))).scalar_one())
    finally:
        await engine.dispose()


async def test_receiver_that_fails_then_times_out_then_accepts_gets_one_webhook_id_until_delivered(
    database_url: str, start_service: Any
) -> None:
    with Receiver([500, HANG]) as receiver:
        service: Service = await start_service(database_url, **webhook_settings())
        batch_id = await submit_with_callback(service, receiver.url())
        batch = await wait_for_webhook(service, batch_id, "delivered")

    requests = receiver.received
    assert len(requests) == 3
    assert len({request.headers["webhook-id"] for request in requests}) == 1
    assert [request.body for request in requests] == [requests[0].body] * 3, "the body is the same on every attempt"
    for request in requests:
        payload = verified(request)
        assert payload["type"] == "batch.completed"
        assert payload["data"]["id"] == batch_id
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-signature"].startswith("v1,")
    webhook = batch["webhook"]
    assert webhook["webhook_id"] == requests[0].headers["webhook-id"]
    assert (webhook["state"], webhook["attempts"], webhook["last_status"], webhook["last_error"]) == (
        "delivered",
        3,
        204,
        None,
    )
    assert webhook["delivered_at"] is not None and webhook["next_attempt_at"] is None
    assert webhook["url"] == receiver.url() and webhook["event"] == "batch.completed"
    log = webhook["attempt_log"]
    assert [attempt["number"] for attempt in log] == [3, 2, 1]
    assert [attempt["status_code"] for attempt in log] == [204, None, 500]
    assert "timed out" in log[1]["error"] and log[2]["error"] == "HTTP 500"
    assert all(attempt["finished_at"] >= attempt["started_at"] for attempt in log)


async def test_event_payload_is_the_batch_summary_with_an_absolute_results_url(
    sqlite_url: str, start_service: Any
) -> None:
    with Receiver() as receiver:
        service: Service = await start_service(
            sqlite_url, **webhook_settings(public_base_url="https://llm-batch.internal/")
        )
        batch_id = await submit_with_callback(service, receiver.url(), count=4, fallback=True)
        batch = await wait_for_webhook(service, batch_id, "delivered")
    data = verified(receiver.received[0])["data"]
    assert data["results_url"] == f"https://llm-batch.internal/batches/{batch_id}/results"
    assert "webhook" not in data
    for key in ("status", "counts", "cost", "passes", "metadata", "failure_reasons", "finished_at"):
        assert data[key] == batch[key], key
    assert data["counts"]["total"] == 4 and data["counts"]["pending"] == 0
    assert data["passes"][0]["cost"] == batch["passes"][0]["cost"]


async def test_results_url_is_a_path_without_public_base_url(sqlite_url: str, start_service: Any) -> None:
    with Receiver() as receiver:
        service: Service = await start_service(sqlite_url, **webhook_settings())
        batch_id = await submit_with_callback(service, receiver.url())
        await wait_for_webhook(service, batch_id, "delivered")
    assert verified(receiver.received[0])["data"]["results_url"] == f"/batches/{batch_id}/results"


async def test_batch_whose_items_all_fail_sends_batch_failed(sqlite_url: str, start_service: Any) -> None:
    config = fast_emulator_config(behaviours={PRIMARY: ModelBehaviour(1.0, 0.0, 0.0, 0.0)})
    with Receiver() as receiver:
        service: Service = await start_service(sqlite_url, emulator_config=config, **webhook_settings())
        batch_id = await submit_with_callback(service, receiver.url(), strict=False)
        batch = await wait_for_webhook(service, batch_id, "delivered")
    assert batch["status"] == "failed"
    assert verified(receiver.received[0])["type"] == "batch.failed"


async def test_cancelled_batch_sends_batch_cancelled(sqlite_url: str, start_service: Any) -> None:
    config = fast_emulator_config(processing_seconds=30.0, cancel_seconds=0.1)
    with Receiver() as receiver:
        service: Service = await start_service(sqlite_url, emulator_config=config, **webhook_settings())
        batch_id = await submit_with_callback(service, receiver.url())
        assert (await service.client.post(f"/batches/{batch_id}/cancel")).status_code == 202
        batch = await wait_for_webhook(service, batch_id, "delivered")
    assert batch["status"] == "cancelled"
    assert verified(receiver.received[0])["type"] == "batch.cancelled"


async def test_a_retry_pass_that_finishes_sends_a_new_event(sqlite_url: str, start_service: Any) -> None:
    config = fast_emulator_config(behaviours={PRIMARY: ModelBehaviour(0.5, 0.0, 0.0, 0.0)})
    with Receiver() as receiver:
        service: Service = await start_service(sqlite_url, emulator_config=config, **webhook_settings())
        batch_id = await submit_with_callback(service, receiver.url(), count=10, strict=False)
        first = await wait_for_webhook(service, batch_id, "delivered")
        assert first["counts"]["failed"] > 0, "the emulator should fail some pass-1 items"
        retried = await service.client.post(f"/batches/{batch_id}/retry")
        assert retried.status_code == 202, retried.text
        await service.wait(batch_id)
        second = await wait_for_webhook(service, batch_id, "delivered")
    assert second["webhook"]["webhook_id"] != first["webhook"]["webhook_id"]
    assert len(receiver.received) == 2
    events = [verified(request) for request in receiver.received]
    assert [len(event["data"]["passes"]) for event in events] == [1, 2]
    assert await delivery_rows(sqlite_url) == 2


async def test_webhook_gives_up_after_max_attempts_and_redeliver_sends_it_again(
    database_url: str, start_service: Any
) -> None:
    with Receiver(then=503) as receiver:
        service: Service = await start_service(database_url, **webhook_settings(webhook_max_attempts=3))
        batch_id = await submit_with_callback(service, receiver.url())
        failed = await wait_for_webhook(service, batch_id, "failed")
        assert (failed["webhook"]["attempts"], failed["webhook"]["last_status"]) == (3, 503)
        assert failed["webhook"]["next_attempt_at"] is None
        assert len(receiver.received) == 3

        receiver.then = 200
        redelivered = await service.client.post(f"/batches/{batch_id}/webhook/redeliver")
        assert redelivered.status_code == 202, redelivered.text
        assert redelivered.json()["webhook_id"] == failed["webhook"]["webhook_id"]
        delivered = await wait_for_webhook(service, batch_id, "delivered")
    assert delivered["webhook"]["attempts"] == 4
    assert [r.headers["webhook-id"] for r in receiver.received] == [failed["webhook"]["webhook_id"]] * 4
    verified(receiver.received[-1])


async def test_redeliver_of_a_delivered_webhook_sends_it_once_more(sqlite_url: str, start_service: Any) -> None:
    with Receiver() as receiver:
        service: Service = await start_service(sqlite_url, **webhook_settings())
        batch_id = await submit_with_callback(service, receiver.url())
        await wait_for_webhook(service, batch_id, "delivered")
        response = await service.client.post(f"/batches/{batch_id}/webhook/redeliver")
        assert response.status_code == 202
        await receiver.wait_for(2)
        await wait_for_webhook(service, batch_id, "delivered")
    assert receiver.received[0].headers["webhook-id"] == receiver.received[1].headers["webhook-id"]
    assert receiver.received[0].body == receiver.received[1].body


async def test_redeliver_is_404_without_callback_and_409_before_the_batch_finishes(
    sqlite_url: str, start_service: Any
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False, **webhook_settings())
    without = (await service.submit(pr_batch(2)))["id"]
    response = await service.client.post(f"/batches/{without}/webhook/redeliver")
    assert response.status_code == 404 and "callback_url" in response.json()["detail"]
    unknown = await service.client.post("/batches/lb_nope/webhook/redeliver")
    assert unknown.status_code == 404
    with Receiver() as receiver:
        running = await submit_with_callback(service, receiver.url())
        response = await service.client.post(f"/batches/{running}/webhook/redeliver")
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert receiver.received == []


async def test_redirect_is_not_followed_and_counts_as_a_failed_attempt(sqlite_url: str, start_service: Any) -> None:
    with Receiver() as target, Receiver([307], headers={"location": target.url("/elsewhere")}) as receiver:
        service: Service = await start_service(sqlite_url, **webhook_settings())
        batch_id = await submit_with_callback(service, receiver.url())
        batch = await wait_for_webhook(service, batch_id, "delivered")
    log = batch["webhook"]["attempt_log"]
    assert [attempt["status_code"] for attempt in log] == [204, 307]
    assert "redirects are not followed" in log[1]["error"]
    assert target.received == []


async def test_pending_webhook_survives_a_restart_with_the_same_webhook_id(database_url: str, tmp_path: Any) -> None:
    """The first process fails to deliver and stops; the second one, on the same database, delivers."""
    settings = conftest.test_settings(database_url, tmp_path, **webhook_settings(webhook_max_attempts=50))
    with Receiver(then=500) as receiver:
        app = create_app(settings, emulator=create_emulator_app(fast_emulator_config()))
        async with running(app) as client:
            created = await client.post("/batches", json={**pr_batch(2), "callback_url": receiver.url()})
            batch_id = created.json()["id"]
            await receiver.wait_for(2)
        attempts_before = len(receiver.received)
        receiver.then = 204

        restarted = create_app(settings, emulator=create_emulator_app(fast_emulator_config()))
        async with running(restarted) as client:
            service = Service(client, None, settings, None, restarted)  # type: ignore[arg-type]
            batch = await wait_for_webhook(service, batch_id, "delivered")
    ids = {request.headers["webhook-id"] for request in receiver.received}
    assert len(ids) == 1
    assert len(receiver.received) >= attempts_before + 1
    webhook = batch["webhook"]
    assert webhook["attempts"] >= len(receiver.received), "every request that arrived was an attempt on record"
    assert [attempt["number"] for attempt in webhook["attempt_log"]] == list(
        range(webhook["attempts"], max(webhook["attempts"] - 10, 0), -1)
    ), "the second process goes on counting where the first stopped"
    assert receiver.received[-1].body == receiver.received[0].body
