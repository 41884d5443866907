"""GET /metrics: process counters move with the work done; database gauges are right on every replica."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from groq_emulator import ModelBehaviour
from service.store.metrics import DatabaseSnapshot
from service.views.metrics import render
from tests.conftest import Service, fast_emulator_config
from tests.payloads import pr_batch

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(service: Service) -> Samples:
    response = await service.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, series), v in samples.items() if n == name and wanted <= set(series))


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


async def test_a_two_pass_run_shows_in_every_metric(start_service: Any, database_url: str) -> None:
    service: Service = await start_service(database_url)
    before = await scrape(service)
    created = await service.submit(pr_batch(150), fallback=True)
    summary = await service.wait(created["id"])
    after = await scrape(service)

    assert value(after, "llm_batch_database_up") == 1
    assert value(after, "llm_batch_batches", status="completed") == 1
    assert value(after, "llm_batch_batches", status="running") == 0
    assert value(after, "llm_batch_items", status="succeeded", code="") == summary["counts"]["succeeded"]
    assert value(after, "llm_batch_items", status="pending", code="") == 0
    for code, count in summary["failure_reasons"].items():
        assert value(after, "llm_batch_items", status="failed", code=code) == count
    assert total(after, "llm_batch_items") == 150
    cost_by_kind: Counter[tuple[str, str]] = Counter()
    for pass_ in summary["passes"]:
        cost_by_kind[pass_["model"], pass_["kind"]] += pass_["cost"]["usd"]
    for (model, kind), usd in cost_by_kind.items():
        assert value(after, "llm_batch_cost_usd_total", model=model, kind=kind) == pytest.approx(usd, abs=1e-8)
    assert value(after, "llm_batch_provider_chunks", state="done") == len(summary["passes"])
    assert value(after, "llm_batch_oldest_due_chunk_seconds") == 0

    attempts = sum(p["items"] for p in summary["passes"])
    assert delta(after, before, "llm_batch_ingested_lines_total") == attempts, "one result line per attempt"
    assert delta(after, before, "llm_batch_ingest_duration_seconds_count") == len(summary["passes"])
    assert delta(after, before, "llm_batch_poll_lag_seconds_count") >= len(summary["passes"])
    # Several passes may run on one model (an item out of tokens retried with a larger budget).
    attempts_by_model: Counter[str] = Counter()
    failures_by_model: Counter[tuple[str, str]] = Counter()
    for pass_ in summary["passes"]:
        attempts_by_model[pass_["model"]] += pass_["items"]
        for code, count in pass_["failure_reasons"].items():
            failures_by_model[pass_["model"], code] += count
    for model, count in attempts_by_model.items():
        assert delta(after, before, "llm_batch_attempts_total", model=model) == count
    for (model, code), count in failures_by_model.items():
        assert delta(after, before, "llm_batch_attempts_total", model=model, code=code) == count
    for endpoint in ("files.create", "batches.create", "batches.retrieve", "files.content"):
        assert delta(after, before, "llm_batch_provider_requests_total", endpoint=endpoint, status="ok") >= 2
        assert delta(after, before, "llm_batch_provider_request_duration_seconds_count", endpoint=endpoint) >= 2


async def test_webhook_delivery_counter_is_exposed(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    response = await service.client.get("/metrics")
    assert "# TYPE llm_batch_webhook_deliveries_total counter" in response.text


async def test_provider_errors_are_counted_by_status(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url, emulator_config=fast_emulator_config())
    before = await scrape(service)
    service.emulator.faults.rate_limit_next = 3
    created = await service.submit(pr_batch(5))
    await service.wait(created["id"])
    after = await scrape(service)
    assert delta(after, before, "llm_batch_provider_requests_total", status="429") >= 1


async def test_an_api_only_replica_reports_the_work_its_sibling_did(start_service: Any, database_url: str) -> None:
    worker: Service = await start_service(database_url)
    api_only: Service = await start_service(database_url, workers_enabled=False)
    created = await api_only.submit(pr_batch(40), fallback=True)
    summary = await api_only.wait(created["id"])

    samples = await scrape(api_only)
    assert value(samples, "llm_batch_batches", status="completed") == 1
    assert total(samples, "llm_batch_items") == 40
    assert sum(v for (n, _), v in samples.items() if n == "llm_batch_cost_usd_total") == pytest.approx(
        summary["cost"]["usd"], abs=1e-8
    )
    assert parse((await worker.client.get("/metrics")).text).keys() >= {
        ("llm_batch_batches", (("status", "completed"),))
    }


def test_a_scrape_without_the_database_still_answers_and_says_so() -> None:
    samples = parse(render(None).decode())
    assert value(samples, "llm_batch_database_up") == 0
    assert not any(name == "llm_batch_batches" for name, _ in samples)
    assert any(name == "process_cpu_seconds_total" for name, _ in samples), "process metrics are always there"


def test_snapshot_lists_every_status_even_at_zero() -> None:
    samples = parse(render(DatabaseSnapshot()).decode())
    for status in ("queued", "running", "completed", "failed", "cancelled"):
        assert value(samples, "llm_batch_batches", status=status) == 0


def cost_series(samples: Samples) -> set[tuple[tuple[str, str], ...]]:
    return {labels for name, labels in samples if name == "llm_batch_cost_usd_total"}


async def test_retries_add_no_series(start_service: Any, sqlite_url: str) -> None:
    """Cost was labelled by pass number: every retry added a series (8 -> 42 after 40 retries). By pass kind, the
    label sets are fixed: a retry after the first adds none."""
    config = fast_emulator_config(behaviours={"openai/gpt-oss-20b": ModelBehaviour(1.0, 0.0, 0.0, 0.0)})
    service: Service = await start_service(sqlite_url, emulator_config=config)
    created = await service.submit(pr_batch(3, strict=False))
    await service.wait(created["id"])
    series = []
    for _ in range(3):
        retried = await service.client.post(f"/batches/{created['id']}/retry", json={"model": "openai/gpt-oss-20b"})
        assert retried.status_code == 202, retried.text
        await service.wait(created["id"])
        series.append(cost_series(await scrape(service)))
    assert series[0] == series[1] == series[2], series
    assert all(dict(labels).keys() == {"model", "kind"} for labels in series[0])
    assert {dict(labels)["kind"] for labels in series[0]} <= {"primary", "cascade", "retry"}


ADMIN, TENANT = "admin-token-0123456789", "tenant-token-0123456789"


async def test_metrics_need_an_admin_token_when_authentication_is_on(start_service: Any, sqlite_url: str) -> None:
    """The figures are every tenant's: a tenant's token must not see another's activity and cost."""
    service: Service = await start_service(
        sqlite_url, api_tokens=[f"acme:{TENANT}"], admin_tokens=[ADMIN], workers_enabled=False
    )
    anonymous = await service.client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    tenant = await service.client.get("/metrics", headers={"Authorization": f"Bearer {TENANT}"})
    assert tenant.status_code == 403 and "ADMIN_TOKENS" in tenant.json()["detail"]
    admin = await service.client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
    assert admin.status_code == 200 and "llm_batch_database_up 1.0" in admin.text
