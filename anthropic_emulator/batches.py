"""A Message Batch's schedule and its status at any emulated time (pure), and its MessageBatch object.

Requests run evenly in order over ``processing_seconds`` from creation; the batch ends when the last one has
run, or at ``expires_at`` with the rest ``expired`` (or, picked by ``Faults.expire_next_batches``, when its
processing would have finished, after only its fraction of requests). A cancel moves it to ``canceling``: no
more requests run, and ``cancel_seconds`` later it ends with the rest ``canceled``. Counts are all
``processing`` until the batch ends.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from anthropic_emulator.behaviour import Outcome
from anthropic_emulator.requests import Item

KINDS = ("succeeded", "errored", "canceled", "expired")


def rfc3339(seconds: float) -> str:
    """RFC 3339 with microseconds, as Anthropic writes times: ``2024-09-24T18:37:24.100435Z``."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class MessageBatchRecord:
    id: str
    created_at: float
    expires_at: float
    archives_at: float
    processing_seconds: float
    cancel_seconds: float
    items: list[Item]
    expire_fraction: float | None = None
    cancel_requested_at: float | None = None
    outcomes: list[Outcome] = field(default_factory=list)  # run so far, in order
    finished: bool = False
    results: bytes = b""  # the results file, once ended
    tally: dict[str, int] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def total(self) -> int:
        return len(self.items)

    def run_time(self, index: int) -> float:
        return self.created_at + self.processing_seconds * (index + 1) / max(1, self.total)

    def ran_by(self, t: float) -> int:
        n = self.total
        if self.processing_seconds <= 0:
            count = n if t >= self.created_at else 0
        else:
            count = min(n, math.floor(n * (t - self.created_at) / self.processing_seconds + 1e-9))
        if self.expire_fraction is not None:
            count = min(count, math.floor(n * self.expire_fraction + 1e-9))
        return max(0, count)

    @property
    def natural_end(self) -> float:
        return min(self.expires_at, self.created_at + self.processing_seconds)


@dataclass(frozen=True)
class Phase:
    status: str  # in_progress | canceling | ended
    ran: int
    ended_at: float | None = None
    unrun: str = "expired"  # what the requests that never ran became


def phase_at(rec: MessageBatchRecord, now: float) -> Phase:
    end = rec.natural_end
    tc = rec.cancel_requested_at
    if tc is not None and tc < end:
        ran = rec.ran_by(tc)
        if now >= tc + rec.cancel_seconds:
            return Phase("ended", ran, tc + rec.cancel_seconds, "canceled")
        return Phase("canceling", ran)
    if now >= end:
        return Phase("ended", rec.ran_by(end), end, "expired")
    return Phase("in_progress", rec.ran_by(now))


def render(rec: MessageBatchRecord, phase: Phase, base_url: str, now: float) -> dict[str, Any]:
    if phase.status == "ended":
        counts = {"processing": 0, **{kind: rec.tally.get(kind, 0) for kind in KINDS}}
    else:
        counts = {"processing": rec.total, **dict.fromkeys(KINDS, 0)}
    ended = phase.status == "ended"
    return {
        "id": rec.id,
        "type": "message_batch",
        "processing_status": phase.status,
        "request_counts": counts,
        "ended_at": rfc3339(phase.ended_at) if phase.ended_at is not None else None,
        "created_at": rfc3339(rec.created_at),
        "expires_at": rfc3339(rec.expires_at),
        "archived_at": rfc3339(rec.archives_at) if now >= rec.archives_at else None,
        "cancel_initiated_at": rfc3339(rec.cancel_requested_at) if rec.cancel_requested_at is not None else None,
        "results_url": f"{base_url}/v1/messages/batches/{rec.id}/results" if ended else None,
    }
