"""Prometheus metrics.

Events counted in this process (provider calls, polls, ingests, webhook deliveries): counters and histograms
that Prometheus sums over replicas. The state of the shared database is read at each scrape instead
(service/views/metrics.py), so every replica reports the same, right figures.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from service.kit.clock import utcnow

disable_created_metrics()  # type: ignore[no-untyped-call]  # `*_created` series double the output; unused
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

PROVIDER_REQUESTS = Counter(
    "llm_batch_provider_requests",
    "Calls to a provider by provider, endpoint and status (HTTP status code, ok, timeout, connection_error, "
    "interrupted).",
    ["provider", "endpoint", "status"],
    registry=REGISTRY,
)
PROVIDER_REQUEST_SECONDS = Histogram(
    "llm_batch_provider_request_duration_seconds",
    "Duration of calls to a provider by provider and endpoint, SDK retries included.",
    ["provider", "endpoint"],
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


def record_provider_call(endpoint: str, status: str, seconds: float, *, provider: str = "groq") -> None:
    """`provider` is the provider's name (`BatchProvider.name`); its default keeps groq.py's calls as they are."""
    PROVIDER_REQUESTS.labels(provider=provider, endpoint=endpoint, status=status).inc()
    PROVIDER_REQUEST_SECONDS.labels(provider=provider, endpoint=endpoint).observe(seconds)


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
