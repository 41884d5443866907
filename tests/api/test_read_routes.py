"""The read side of the API: listing batches, one item with every attempt, result pages, health probes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest

from groq_emulator import ModelBehaviour
from tests.conftest import Service, fast_emulator_config
from tests.payloads import pr_batch

PRIMARY = "openai/gpt-oss-20b"
FALLBACK = "openai/gpt-oss-120b"
NEVER_FAILS = ModelBehaviour(0.0, 0.0, 0.0, 0.0)
FAILS_A_THIRD = ModelBehaviour(0.3, 0.0, 0.0, 0.0)


async def list_all_batches(service: Service, **query: Any) -> list[list[str]]:
    """Every page of GET /batches, as lists of ids, following next_cursor."""
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        params = {**query, **({"after": after} if after else {})}
        response = await service.client.get("/batches", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append([batch["id"] for batch in page["data"]])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return pages
        assert page["next_cursor"], page
        after = page["next_cursor"]
        assert len(pages) < 50, "pagination does not end"


async def test_submit_answers_202_with_location_of_the_new_batch(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    response = await service.client.post("/batches", json=pr_batch(3, metadata={"source": "backfill"}))
    assert response.status_code == 202, response.text
    created = response.json()
    assert response.headers["location"] == f"/batches/{created['id']}"
    assert created["status"] == "queued"
    assert created["counts"] == {"total": 3, "succeeded": 0, "failed": 0, "pending": 3, "retrying": 0}
    assert created["results_url"] == f"/batches/{created['id']}/results"

    followed = await service.client.get(response.headers["location"])
    assert followed.status_code == 200
    assert followed.json()["id"] == created["id"]
    assert followed.json()["metadata"] == {"source": "backfill"}


async def test_list_batches_newest_first_in_pages(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    submitted = [(await service.submit(pr_batch(1, start=n)))["id"] for n in range(5)]
    newest_first = list(reversed(submitted))

    assert await list_all_batches(service, limit=2) == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]
    assert await list_all_batches(service, limit=5) == [newest_first]
    assert await list_all_batches(service) == [newest_first]

    listing = (await service.client.get("/batches")).json()
    created_at = [batch["created_at"] for batch in listing["data"]]
    assert created_at == sorted(created_at, reverse=True)
    single = (await service.client.get(f"/batches/{submitted[2]}")).json()
    assert listing["data"][2] == single, "a listed batch is the same summary GET /batches/{id} shows"


async def test_list_batches_filters_by_status(sqlite_url: str, start_service: Any) -> None:
    config = fast_emulator_config(behaviours={PRIMARY: NEVER_FAILS})
    service: Service = await start_service(sqlite_url, emulator_config=config)
    done = [(await service.submit(pr_batch(2, start=10 * n)))["id"] for n in range(3)]
    for batch_id in done:
        assert (await service.wait(batch_id))["status"] == "completed"
    cancelled = (await service.submit(pr_batch(2, start=100)))["id"]
    assert (await service.client.post(f"/batches/{cancelled}/cancel")).status_code == 202
    assert (await service.wait(cancelled))["status"] == "cancelled"

    assert await list_all_batches(service, status="completed", limit=2) == [done[:0:-1], done[:1]]
    assert await list_all_batches(service, status="cancelled") == [[cancelled]]
    assert await list_all_batches(service, status="failed") == [[]]
    assert await list_all_batches(service) == [[cancelled, *reversed(done)]]
    listing = (await service.client.get("/batches", params={"status": "completed"})).json()
    assert {batch["status"] for batch in listing["data"]} == {"completed"}


async def test_item_shows_every_attempt_across_passes(database_url: str, start_service: Any) -> None:
    config = fast_emulator_config(behaviours={PRIMARY: FAILS_A_THIRD, FALLBACK: NEVER_FAILS})
    service: Service = await start_service(database_url, emulator_config=config)
    created = await service.submit(pr_batch(20, strict=False), fallback=True)
    summary = await service.wait(created["id"])
    assert summary["status"] == "completed"
    rows = {row["custom_id"]: row for row in await service.results(created["id"])}
    second_pass = [cid for cid, row in rows.items() if row["pass"] == 2]
    first_pass = [cid for cid, row in rows.items() if row["pass"] == 1]
    assert second_pass and first_pass, "some items should fail pass 1 and others pass it"

    response = await service.client.get(f"/batches/{created['id']}/items/{second_pass[0]}")
    assert response.status_code == 200, response.text
    item = response.json()
    assert item["custom_id"] == second_pass[0]
    assert item["status"] == "succeeded"
    assert item["body"]["messages"][1]["content"].startswith(f"PR #{second_pass[0].removeprefix('pr-')}:")
    first, second = item["attempts"]
    assert (first["pass"], first["model"], first["status"]) == (1, PRIMARY, "failed")
    assert (second["pass"], second["model"], second["status"]) == (2, FALLBACK, "succeeded")
    assert first["error"]["code"] == "json_validate_failed"
    assert second["error"] is None
    assert second["output"] is not None and second["content"]
    assert first["provider_batch_id"] and second["provider_batch_id"]
    assert first["provider_batch_id"] != second["provider_batch_id"]
    for attempt in (first, second):
        assert set(attempt["usage"]) == {"input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens"}
        assert attempt["provider"] == "groq"
        assert attempt["usage"]["input_tokens"] >= 0 and attempt["usage"]["output_tokens"] >= 0
        assert attempt["finished_at"] is not None
    assert second["usage"]["input_tokens"] > 0 and second["usage"]["output_tokens"] > 0
    assert item["result"] == rows[second_pass[0]]
    assert (item["result"]["pass"], item["result"]["model"], item["result"]["attempts"]) == (2, FALLBACK, 2)
    assert item["result"]["usage"] == second["usage"]
    assert item["result"]["cost_usd"] == pytest.approx(first["cost_usd"] + second["cost_usd"], abs=2e-8)

    passed_first_time = (await service.client.get(f"/batches/{created['id']}/items/{first_pass[0]}")).json()
    assert [(a["pass"], a["status"]) for a in passed_first_time["attempts"]] == [(1, "succeeded")]


async def test_item_of_a_batch_not_yet_run_has_no_attempts(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    created = await service.submit(pr_batch(3))
    item = (await service.client.get(f"/batches/{created['id']}/items/pr-2")).json()
    assert (item["custom_id"], item["status"], item["attempts"]) == ("pr-2", "pending", [])
    assert item["result"]["status"] == "pending"
    assert item["result"]["error"] is None and item["result"]["pass"] is None


async def results_pages(service: Service, batch_id: str, **query: Any) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    after: str | None = None
    while True:
        params = {**query, **({"after": after} if after else {})}
        response = await service.client.get(f"/batches/{batch_id}/results", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page["data"])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return pages
        after = page["next_cursor"]
        assert after, page
        assert len(pages) < 50, "pagination does not end"


async def test_results_pages_give_each_item_once_in_submission_order(sqlite_url: str, start_service: Any) -> None:
    config = fast_emulator_config(behaviours={PRIMARY: FAILS_A_THIRD})
    service: Service = await start_service(sqlite_url, emulator_config=config)
    payload = pr_batch(30, strict=False)
    payload["items"].reverse()  # submission order is not custom_id order
    created = await service.submit(payload)
    await service.wait(created["id"])
    submitted = [item["custom_id"] for item in payload["items"]]

    pages = await results_pages(service, created["id"], limit=7)
    assert [len(page) for page in pages] == [7, 7, 7, 7, 2]
    assert [row["custom_id"] for page in pages for row in page] == submitted

    failed = [row["custom_id"] for page in pages for row in page if row["status"] == "failed"]
    assert failed, "the emulator should fail some items"
    failed_pages = await results_pages(service, created["id"], limit=2, status="failed")
    assert [row["custom_id"] for page in failed_pages for row in page] == failed
    assert all(len(page) == 2 for page in failed_pages[:-1])

    whole = await results_pages(service, created["id"], limit=30)
    assert len(whole) == 1 and [row["custom_id"] for row in whole[0]] == submitted


async def test_results_of_a_batch_not_yet_run_are_pending(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    created = await service.submit(pr_batch(5))
    pages = await results_pages(service, created["id"], limit=3)
    rows = [row for page in pages for row in page]
    assert [row["custom_id"] for row in rows] == [f"pr-{n}" for n in range(1, 6)]
    assert {row["status"] for row in rows} == {"pending"}
    assert all(row["output"] is None and row["error"] is None for row in rows)


async def test_healthz_says_emulator_and_auth_off(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url)
    response = await service.client.get("/healthz")
    assert response.status_code == 200
    health = response.json()
    assert (health["status"], health["provider"], health["auth"]) == ("ok", "emulator", "off")
    assert any("GROQ_API_KEY" in warning for warning in health["warnings"]), health["warnings"]
    assert any("API_TOKENS" in warning for warning in health["warnings"]), health["warnings"]


async def test_readyz_is_200_when_the_database_answers(database_url: str, start_service: Any) -> None:
    service: Service = await start_service(database_url)
    response = await service.client.get("/readyz")
    assert response.status_code == 200, response.text
    ready = response.json()
    assert (ready["status"], ready["database"], ready["provider"]) == ("ok", "ok", "ok")
    assert ready["provider_last_error"] is None


async def test_item_whose_custom_id_has_a_slash_can_be_read(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    payload = pr_batch(2)
    payload["items"][0]["custom_id"] = "acme/payments#26313"
    created = await service.submit(payload)
    response = await service.client.get(f"/batches/{created['id']}/items/{quote('acme/payments#26313', safe='')}")
    assert response.status_code == 200, response.text
    assert response.json()["custom_id"] == "acme/payments#26313"


async def test_timestamps_say_utc_and_updated_after_honours_an_offset(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url)
    created = await service.submit(pr_batch(3))
    summary = await service.wait(created["id"])
    assert summary["created_at"].endswith("Z") and summary["finished_at"].endswith("Z")
    rows = await service.results(created["id"])
    changed = max(datetime.fromisoformat(row["updated_at"].replace("Z", "+00:00")) for row in rows)
    assert all(row["updated_at"].endswith("Z") for row in rows)
    path = f"/batches/{created['id']}/results"
    just_before = (changed - timedelta(seconds=1)).astimezone(timezone(timedelta(hours=2))).isoformat()
    after_it = (changed + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=-5))).isoformat()
    assert (await service.client.get(path, params={"updated_after": just_before})).json()["data"], "an hour is not lost"
    assert (await service.client.get(path, params={"updated_after": after_it})).json()["data"] == []
