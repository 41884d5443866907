"""The /metrics body: this process's counters and histograms, then the shared database's state as gauges."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from service.models import BatchStatus, ChunkState, ItemStatus
from service.observability.metrics import REGISTRY
from service.pipeline.cost import usd_float
from service.store import Session
from service.store import metrics as metrics_store
from service.store.metrics import DatabaseSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _batches(snapshot: DatabaseSnapshot) -> Metric:
    family = GaugeMetricFamily("llm_batch_batches", "Batches by status.", labels=["status"])
    for status in BatchStatus:
        family.add_metric([status.value], float(snapshot.batches.get(status.value, 0)))
    return family


def _items(snapshot: DatabaseSnapshot) -> Metric:
    family = GaugeMetricFamily(
        "llm_batch_items",
        "Items by status and, for failed items, the failure code of their final result.",
        labels=["status", "code"],
    )
    for item_status in (ItemStatus.SUCCEEDED, ItemStatus.PENDING, ItemStatus.RETRYING):
        family.add_metric([item_status.value, ""], float(snapshot.items.get((item_status.value, ""), 0)))
    for (status, code), count in sorted(snapshot.items.items()):
        if status == ItemStatus.FAILED:
            family.add_metric([status, code], float(count))
    return family


def _cost(snapshot: DatabaseSnapshot) -> Metric:
    family = CounterMetricFamily(
        "llm_batch_cost_usd",
        "Cost in USD of finished attempts, by model and pass kind (primary, cascade, retry).",
        labels=["model", "kind"],
    )
    for (model, kind), pico in sorted(snapshot.cost_pico.items()):
        family.add_metric([model, kind], usd_float(pico))
    return family


def _chunks(snapshot: DatabaseSnapshot) -> Metric:
    family = GaugeMetricFamily(
        "llm_batch_provider_chunks", "Pass chunks (one provider batch each) by state.", labels=["state"]
    )
    for state in ChunkState:
        family.add_metric([state.value], float(snapshot.chunks.get(state.value, 0)))
    return family


def _overdue(snapshot: DatabaseSnapshot) -> Metric:
    family = GaugeMetricFamily(
        "llm_batch_oldest_due_chunk_seconds",
        "How long the most overdue unfinished chunk has been waiting for a worker (0 when none is due).",
    )
    family.add_metric([], snapshot.oldest_due_seconds)
    return family


class SnapshotCollector:
    """Exposes one DatabaseSnapshot; ``snapshot=None`` means the database did not answer."""

    def __init__(self, snapshot: DatabaseSnapshot | None) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("llm_batch_database_up", "1 when the database answered this scrape.")
        up.add_metric([], 1.0 if self.snapshot is not None else 0.0)
        yield up
        if self.snapshot is not None:
            for family in (_batches, _items, _cost, _chunks, _overdue):
                yield family(self.snapshot)


def render(snapshot: DatabaseSnapshot | None) -> bytes:
    """This process's counters and histograms, then the database's state."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(SnapshotCollector(snapshot))
    return generate_latest(REGISTRY) + generate_latest(scrape)


async def database_snapshot(session: Session) -> DatabaseSnapshot:
    return await metrics_store.read_snapshot(session)
