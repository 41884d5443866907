"""Prometheus metrics.

Two kinds:
- events counted in this process (provider calls, polls, ingests, webhook deliveries): counters and
  histograms that Prometheus sums over replicas;
- the state of the shared database (batches by status, items by outcome and failure code, cost by model and
  pass, chunks by state, how overdue the oldest due chunk is): read from the database at each scrape, so every
  replica reports the same, right figures.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import Attempt, Batch, BatchStatus, ChunkState, Item, ItemStatus, Pass, ProviderBatch, utcnow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

disable_created_metrics()  # type: ignore[no-untyped-call]  # `*_created` series double the output; unused
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

PROVIDER_REQUESTS = Counter(
    "llm_batch_provider_requests",
    "Calls to Groq by endpoint and status (HTTP status code, ok, timeout, connection_error, interrupted).",
    ["endpoint", "status"],
    registry=REGISTRY,
)
PROVIDER_REQUEST_SECONDS = Histogram(
    "llm_batch_provider_request_duration_seconds",
    "Duration of calls to Groq, SDK retries included.",
    ["endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
POLL_LAG_SECONDS = Histogram(
    "llm_batch_poll_lag_seconds",
    "How late a provider batch poll ran after its next_action_at.",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800),
    registry=REGISTRY,
)
INGESTED_LINES = Counter(
    "llm_batch_ingested_lines",
    "Result lines read from provider output and error files and ingested.",
    registry=REGISTRY,
)
INGEST_SECONDS = Histogram(
    "llm_batch_ingest_duration_seconds",
    "Time to ingest one provider batch's result files (parse, classify, write), after the download.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
ATTEMPTS = Counter(
    "llm_batch_attempts",
    "Finished attempts by model, outcome (succeeded, failed) and failure code.",
    ["model", "outcome", "code"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "llm_batch_webhook_deliveries",
    "Webhook delivery attempts by outcome (delivered, retry, gave_up, refused).",
    ["outcome"],
    registry=REGISTRY,
)


# -- recording (called by providers/ and workers/) ----------------------------------------------------


def record_provider_call(endpoint: str, status: str, seconds: float) -> None:
    PROVIDER_REQUESTS.labels(endpoint=endpoint, status=status).inc()
    PROVIDER_REQUEST_SECONDS.labels(endpoint=endpoint).observe(seconds)


def record_poll_lag(due_at: datetime, now: datetime | None = None) -> None:
    """``due_at`` and ``now`` are naive UTC, like every timestamp in the database."""
    POLL_LAG_SECONDS.observe(max(0.0, ((now or utcnow()) - due_at).total_seconds()))


def record_ingest(lines: int, seconds: float) -> None:
    INGESTED_LINES.inc(lines)
    INGEST_SECONDS.observe(seconds)


def record_attempts(model: str, outcomes: Iterable[tuple[bool, str | None]]) -> None:
    """``outcomes``: (succeeded, failure code) per finished attempt."""
    tally = Tally(("succeeded", "") if ok else ("failed", code or "unknown") for ok, code in outcomes)
    for (outcome, code), count in tally.items():
        ATTEMPTS.labels(model=model, outcome=outcome, code=code).inc(count)


def record_webhook_delivery(outcome: str) -> None:
    """One delivery attempt: ``delivered`` (2xx), ``retry`` (will be tried again), ``gave_up``, ``refused``."""
    WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()


# -- database state, read at scrape time ----------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseSnapshot:
    batches: Mapping[str, int] = field(default_factory=dict)
    items: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (status, failure code) -> count
    cost_usd: Mapping[tuple[str, int], float] = field(default_factory=dict)  # (model, pass number) -> USD
    chunks: Mapping[str, int] = field(default_factory=dict)
    oldest_due_seconds: float = 0.0


async def read_snapshot(session: AsyncSession) -> DatabaseSnapshot:
    batches = await session.execute(sa_select(col(Batch.status), func.count()).group_by(col(Batch.status)))
    items = await session.execute(
        sa_select(col(Item.status), col(Attempt.error_code), func.count())
        .select_from(Item)
        .outerjoin(Attempt, col(Attempt.id) == col(Item.deciding_attempt_id))
        .group_by(col(Item.status), col(Attempt.error_code))
    )
    cost = await session.execute(
        sa_select(col(Pass.model), col(Pass.number), func.coalesce(func.sum(col(Attempt.cost_usd)), 0.0))
        .join(Pass, col(Pass.id) == col(Attempt.pass_id))
        .group_by(col(Pass.model), col(Pass.number))
    )
    chunks = await session.execute(sa_select(col(ProviderBatch.state), func.count()).group_by(col(ProviderBatch.state)))
    now = utcnow()
    oldest_due = await session.scalar(
        sa_select(func.min(col(ProviderBatch.next_action_at))).where(
            col(ProviderBatch.state) != ChunkState.DONE, col(ProviderBatch.next_action_at) <= now
        )
    )
    item_counts: Tally[tuple[str, str]] = Tally()
    for status, code, count in items:
        item_counts[(status, (code or "unknown") if status == ItemStatus.FAILED else "")] += count
    return DatabaseSnapshot(
        batches={status: count for status, count in batches},
        items=dict(item_counts),
        cost_usd={(model, number): float(usd) for model, number, usd in cost},
        chunks={state: count for state, count in chunks},
        oldest_due_seconds=max(0.0, (now - oldest_due).total_seconds()) if oldest_due else 0.0,
    )


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
    for item_status in (ItemStatus.SUCCEEDED, ItemStatus.PENDING):
        family.add_metric([item_status.value, ""], float(snapshot.items.get((item_status.value, ""), 0)))
    for (status, code), count in sorted(snapshot.items.items()):
        if status == ItemStatus.FAILED:
            family.add_metric([status, code], float(count))
    return family


def _cost(snapshot: DatabaseSnapshot) -> Metric:
    family = CounterMetricFamily(
        "llm_batch_cost_usd", "Cost in USD of finished attempts, by model and pass number.", labels=["model", "pass"]
    )
    for (model, number), usd in sorted(snapshot.cost_usd.items()):
        family.add_metric([model, str(number)], usd)
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
