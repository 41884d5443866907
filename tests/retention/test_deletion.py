"""DELETE /batches/{id}: the batch's content is gone everywhere it was (the API, the database's rows, SQLite's
file and WAL, the spool directory, the provider's files), its tombstone keeps its counts and cost, and a purged
answer is never reused."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from service.workers.batch_steps import advance_batch
from tests.conftest import Service, fast_emulator_config, wait_until
from tests.emulator_inspection import provider_batches
from tests.retention.helpers import (
    database_files,
    files_mentioning,
    new_marker,
    provider_files_mentioning,
    rows_mentioning,
    secret_batch,
    spool_files,
    wait_purged,
)
from tests.workers import real_providers, work_until_finished, worker_context

KEPT = ("id", "status", "counts", "cost", "saved_usd_exact", "failure_reasons", "tiers", "created_at", "finished_at")


def tombstone(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: summary[key] for key in KEPT} | {
        "passes": [{k: v for k, v in p.items() if k != "provider_batches"} for p in summary["passes"]]
    }


async def assert_gone(service: Service, batch_id: str, custom_id: str, **headers: str) -> None:
    for path in (f"/batches/{batch_id}/results", f"/batches/{batch_id}/items/{custom_id}"):
        response = await service.client.get(path, headers=headers)
        assert response.status_code == 410, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith("gone")
    ndjson = await service.client.get(
        f"/batches/{batch_id}/results", headers={"Accept": "application/x-ndjson", **headers}
    )
    assert ndjson.status_code == 410
    retried = await service.client.post(f"/batches/{batch_id}/retry", headers=headers)
    assert retried.status_code == 410, retried.text
    rebudgeted = await service.client.patch(f"/batches/{batch_id}", json={"budget_usd": 5}, headers=headers)
    assert rebudgeted.status_code == 410, rebudgeted.text  # its budget_exceeded items have no body left to send


async def test_deleting_a_finished_batch_purges_its_content_everywhere_and_keeps_its_tombstone(
    start_service: Any, database_url: str
) -> None:
    service: Service = await start_service(database_url, max_lines_per_provider_batch=4, provider_file_cleanup=False)
    marker = new_marker()
    batch = await service.submit(secret_batch(10, marker))
    finished = await service.wait(batch["id"])
    rows = await service.results(batch["id"])
    assert any(marker in (row.get("content") or "") for row in rows), "the answers echo the marker"
    assert await rows_mentioning(database_url, marker), "the marker is stored before the purge"
    assert provider_files_mentioning(service, marker), "with cleanup off, the provider keeps the files"
    if database_url.startswith("sqlite"):
        assert files_mentioning(database_files(database_url), marker), "the marker is in the SQLite files"

    deleted = await service.client.delete(f"/batches/{batch['id']}")
    assert deleted.status_code in (200, 202), deleted.text
    assert deleted.json()["deleted_at"] is not None
    purged = await wait_purged(service, batch["id"])

    again = await service.client.delete(f"/batches/{batch['id']}")
    third = await service.client.delete(f"/batches/{batch['id']}")
    assert again.status_code == third.status_code == 200 and again.json() == third.json() == purged
    assert tombstone(purged) == tombstone(finished), "counts, cost, tiers and passes stay"
    assert Decimal(purged["cost"]["usd_exact"]) > 0
    await assert_gone(service, batch["id"], "pr-1")
    listed = (await service.client.get("/batches")).json()["data"]
    assert [summary["purged_at"] for summary in listed if summary["id"] == batch["id"]] == [purged["purged_at"]]

    assert await rows_mentioning(database_url, marker) == {}
    if database_url.startswith("sqlite"):
        assert files_mentioning(database_files(database_url), marker) == [], "SQLite's file or WAL keeps the text"
    assert spool_files(service, batch["id"], marker) == []
    assert provider_files_mentioning(service, marker) == []
    assert not [name for name in (f.filename for f in service.emulator.files.values()) if batch["id"] in name]


async def test_deleting_a_running_batch_cancels_it_then_purges_it(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(
        database_url,
        emulator_config=fast_emulator_config(processing_seconds=2.0),
        max_lines_per_provider_batch=5,
        provider_file_cleanup=False,  # the purge deletes the provider's files by itself
    )
    marker = new_marker()
    batch = await service.submit(secret_batch(10, marker))
    await wait_until(lambda: len(provider_batches(service.emulator)) > 0, what="a chunk at the provider")

    deleted = await service.client.delete(f"/batches/{batch['id']}")
    assert deleted.status_code == 202, deleted.text
    assert deleted.json()["cancel_requested"] is True and deleted.json()["purged_at"] is None
    await assert_gone(service, batch["id"], "pr-1")  # nothing is served from the DELETE on
    purged = await wait_purged(service, batch["id"])

    assert purged["status"] == "cancelled"
    assert purged["counts"]["total"] == 10 and purged["counts"]["pending"] == purged["counts"]["retrying"] == 0
    assert await rows_mentioning(database_url, marker) == {}
    assert spool_files(service, batch["id"], marker) == []
    assert provider_files_mentioning(service, marker) == []
    if database_url.startswith("sqlite"):
        assert files_mentioning(database_files(database_url), marker) == []


ACME = "acme-token-0123456789abcdef"
GLOBEX = "globex-token-0123456789abcdef"


async def test_another_tenant_cannot_delete_a_batch(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url, api_tokens=[f"acme:{ACME}", f"globex:{GLOBEX}"])
    acme = {"Authorization": f"Bearer {ACME}"}
    globex = {"Authorization": f"Bearer {GLOBEX}"}
    created = await service.client.post("/batches", json=secret_batch(2, new_marker()), headers=acme)
    batch_id = created.json()["id"]
    refused = await service.client.delete(f"/batches/{batch_id}", headers=globex)
    assert refused.status_code == 404 and refused.headers["content-type"].startswith("application/problem+json")
    summary = (await service.client.get(f"/batches/{batch_id}", headers=acme)).json()
    assert summary["deleted_at"] is None
    assert (await service.client.delete("/batches/lb_00000000000000000000000000", headers=acme)).status_code == 404


async def test_a_purged_answer_is_never_reused(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(database_url)
    marker = new_marker()
    first = await service.submit(secret_batch(6, marker, reuse=True))
    await service.wait(first["id"])
    sent_before = len(provider_batches(service.emulator))
    await service.client.delete(f"/batches/{first['id']}")
    await wait_purged(service, first["id"])
    estimate = await service.client.post("/batches/estimate", json=secret_batch(6, marker, reuse=True))
    assert estimate.json()["reusable_items"] == 0

    again = await service.wait((await service.submit(secret_batch(6, marker, reuse=True)))["id"])
    assert len(provider_batches(service.emulator)) > sent_before, "the items were sent again"
    first_pass = again["passes"][0]
    assert first_pass["reused"] == 0 and first_pass["sent_because"] == {"first": 6}
    rows = await service.results(again["id"])
    sources = {(step["reused_from"] or {}).get("batch_id") for row in rows for step in row["lineage"]}
    assert first["id"] not in sources, "an answer of the purged batch was reused"


@pytest.mark.parametrize("retention_seconds", [0.3])
async def test_the_retention_sweep_purges_a_batch_finished_longer_ago(
    start_service: Any, database_url: str, retention_seconds: float
) -> None:
    service: Service = await start_service(
        database_url, retention_seconds=retention_seconds, provider_file_cleanup=False
    )
    marker = new_marker()
    batch = await service.submit(secret_batch(3, marker))
    finished = await service.wait(batch["id"])
    purged = await wait_purged(service, batch["id"])
    assert tombstone(purged) == tombstone(finished)
    await assert_gone(service, batch["id"], "pr-1")
    assert await rows_mentioning(database_url, marker) == {}
    assert spool_files(service, batch["id"], marker) == []
    assert provider_files_mentioning(service, marker) == []
    if database_url.startswith("sqlite"):
        assert files_mentioning(database_files(database_url), marker) == []


async def test_retention_zero_keeps_a_finished_batch(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url, retention_seconds=0)
    marker = new_marker()
    batch = await service.submit(secret_batch(3, marker))
    await service.wait(batch["id"])
    # Sweeps run every WORKER_IDLE_SECONDS (0.02 s here): a second is fifty of them.
    later = await service.submit(secret_batch(1, new_marker()))
    await service.wait(later["id"])
    await asyncio.sleep(1.0)
    summary = (await service.client.get(f"/batches/{batch['id']}")).json()
    assert summary["purged_at"] is None and summary["deleted_at"] is None
    assert (await service.client.get(f"/batches/{batch['id']}/results")).status_code == 200
    assert await rows_mentioning(sqlite_url, marker)


async def test_a_large_purge_leaves_no_copy_in_sqlite_free_space(start_service: Any, sqlite_url: str) -> None:
    """Page splits during the ingests leave copies of answers in pages' free space, which `secure_delete` does not
    clear (5,000 answers left some without the VACUUM that follows a purge)."""
    service: Service = await start_service(sqlite_url)
    marker = new_marker()
    batch = await service.submit(secret_batch(5000, marker))
    await service.wait(batch["id"], within=120)
    assert (await service.client.delete(f"/batches/{batch['id']}")).status_code == 202
    await wait_purged(service, batch["id"], within=60)
    assert await rows_mentioning(sqlite_url, marker) == {}
    assert files_mentioning(database_files(sqlite_url), marker) == [], "SQLite's file or WAL keeps the text"


async def test_deleting_a_batch_on_openai_and_anthropic_deletes_what_they_keep(
    start_service: Any, sqlite_url: str
) -> None:
    service: Service = await start_service(sqlite_url, provider_file_cleanup=False)
    marker = new_marker()
    cascade = [{"model": "openai:gpt-5-mini"}]
    on_openai = await service.wait((await service.submit(secret_batch(4, marker, cascade=cascade)))["id"])
    on_anthropic = await service.wait(
        (await service.submit(secret_batch(4, marker, cascade=[{"model": "anthropic:claude-haiku-4-5"}])))["id"]
    )
    assert [f for f in service.openai.files.values() if marker.encode() in f.content], "OpenAI keeps the files"
    anthropic_ids = {chunk["id"] for p in on_anthropic["passes"] for chunk in p["provider_batches"]}
    assert anthropic_ids and not anthropic_ids & service.anthropic.deleted

    for batch in (on_openai, on_anthropic):
        assert (await service.client.delete(f"/batches/{batch['id']}")).status_code == 202
        await wait_purged(service, batch["id"])
    assert [f.id for f in service.openai.files.values() if marker.encode() in f.content] == []
    assert anthropic_ids <= service.anthropic.deleted, "Anthropic's batches (its copy of the results) are deleted"
    assert await rows_mentioning(sqlite_url, marker) == {}


async def test_a_deleted_batch_not_purged_yet_hands_no_answer_on(start_service: Any, database_url: str) -> None:
    """Between the DELETE and the purge, the deleted batch's answers (still stored) are not reused."""
    service: Service = await start_service(database_url, workers_enabled=False)
    marker = new_marker()
    ctx, engine = worker_context(service, real_providers(service), "worker-a")
    try:
        first = await service.submit(secret_batch(4, marker, reuse=True))
        await work_until_finished(service, ctx, first["id"])
        deleted = await service.client.delete(f"/batches/{first['id']}")
        assert deleted.status_code == 202 and deleted.json()["purged_at"] is None  # no worker has purged it
        again = await service.submit(secret_batch(4, marker, reuse=True))
        await advance_batch(ctx, again["id"])  # lays out its first pass: reuse is looked up here
    finally:
        await engine.dispose()
    laid_out = (await service.client.get(f"/batches/{again['id']}")).json()["passes"][0]
    assert laid_out["reused"] == 0 and laid_out["sent_because"] == {"first": 4}
    assert await rows_mentioning(database_url, marker), "the first batch is not purged yet"
