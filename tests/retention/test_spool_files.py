"""Finding 5: a chunk given up before it was sent (over budget, or its batch cancelled first) leaves no spool file
behind; before, every such chunk kept its laid-out lines on disk for ever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.workers.batch_steps import advance_batch
from tests.conftest import Service
from tests.payloads import pr_batch
from tests.workers import real_providers, work_until_finished, worker_context


def spooled(service: Service) -> list[Path]:
    return sorted(path for path in Path(service.settings.spool_dir).rglob("*") if path.is_file())


async def test_items_the_budget_refused_leave_no_spool_file(start_service: Any, database_url: str) -> None:
    """Since items wait for room in the budget, the ones that never fit are marked without being laid out; the
    spool stays empty all the same (a chunk abandoned at send is the cancelled case below)."""
    service: Service = await start_service(database_url, max_lines_per_provider_batch=25)
    # The whole batch costs about $0.013: the budget lets part of it run, the rest ends budget_exceeded unsent.
    batch = await service.submit(pr_batch(200, strict=False, budget_usd="0.006"))
    summary = await service.wait(batch["id"])
    assert summary["failure_reasons"].get("budget_exceeded", 0) > 0, "the budget refused some chunks"
    assert spooled(service) == []


async def test_chunks_of_a_batch_cancelled_before_upload_leave_no_spool_file(
    start_service: Any, database_url: str
) -> None:
    service: Service = await start_service(database_url, workers_enabled=False, max_lines_per_provider_batch=10)
    batch = await service.submit(pr_batch(50, strict=False))
    ctx, engine = worker_context(service, real_providers(service), "worker-a")
    try:
        await advance_batch(ctx, batch["id"])  # laid out: five chunks spooled, none sent
        assert len(spooled(service)) == 5
        cancelled = await service.client.post(f"/batches/{batch['id']}/cancel")
        assert cancelled.status_code == 202, cancelled.text
        summary = await work_until_finished(service, ctx, batch["id"])
    finally:
        await engine.dispose()
    assert summary["status"] == "cancelled" and summary["failure_reasons"] == {"cancelled": 50}
    assert spooled(service) == []
