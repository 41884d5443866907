"""A batch's schedule, and its status at any emulated time (pure; no I/O, no background tasks).

Schedule, in emulated seconds from ``created_at``:
``validating`` for ``validating_seconds``; then ``in_progress`` for ``processing_seconds +
per_line_seconds * lines`` while lines finish evenly in file order; then ``finalizing`` for
``finalizing_seconds``; then ``completed``. A batch whose input failed validation becomes ``failed``
when validation ends. Processing that would run past ``expires_at`` ends ``expired`` at
``expires_at``; a batch picked by ``Faults.expire_next_batches`` stops after its fraction of lines and
ends ``expired`` when its processing would have finished. A cancel request moves the batch to
``cancelling`` (no more lines run) and to ``cancelled`` ``cancel_seconds`` later.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

from groq_emulator.behaviour import LineResult
from groq_emulator.validation import InputRequest

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
CANCELLABLE = frozenset({"validating", "in_progress", "finalizing"})


@dataclass
class BatchRecord:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: Any
    created_at: float
    expires_at: float
    validating_seconds: float
    processing_seconds: float  # whole file, per-line part included
    finalizing_seconds: float
    cancel_seconds: float
    requests: list[InputRequest]
    errors: list[dict[str, Any]] | None = None  # set: the batch fails validation
    expire_fraction: float | None = None  # set: forced expiry after this fraction
    cancel_requested_at: float | None = None
    results: list[LineResult] = field(default_factory=list)  # simulated so far, file order; [] once finished
    ok_prefix: list[int] = field(default_factory=lambda: [0])  # successes among the first k results
    output_file_id: str | None = None
    error_file_id: str | None = None
    finished: bool = False  # result files written
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def total(self) -> int:
        return len(self.requests)

    @property
    def processing_start(self) -> float:
        return self.created_at + self.validating_seconds

    @property
    def processing_end(self) -> float:
        return self.processing_start + self.processing_seconds

    def line_time(self, index: int) -> float:
        """Emulated time at which line ``index`` (0-based, file order) finishes."""
        return self.processing_start + self.processing_seconds * (index + 1) / max(1, self.total)

    def processed_at(self, t: float) -> int:
        if t < self.processing_start:
            return 0
        n = self.total
        if self.processing_seconds <= 0:
            count = n
        else:
            count = min(n, math.floor(n * (t - self.processing_start) / self.processing_seconds + 1e-9))
        if self.expire_fraction is not None:
            count = min(count, math.floor(n * self.expire_fraction + 1e-9))
        return max(0, count)

    @property
    def will_expire(self) -> bool:
        return self.expire_fraction is not None or self.processing_end > self.expires_at

    @property
    def expiry_time(self) -> float:
        if self.expire_fraction is not None:
            return min(self.expires_at, self.processing_end)
        return self.expires_at


@dataclass
class Phase:
    status: str
    processed: int = 0
    in_progress_at: float | None = None
    finalizing_at: float | None = None
    completed_at: float | None = None
    failed_at: float | None = None
    expired_at: float | None = None
    cancelling_at: float | None = None
    cancelled_at: float | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def ended_at(self) -> float | None:
        return self.completed_at or self.failed_at or self.expired_at or self.cancelled_at


def phase_at(rec: BatchRecord, now: float) -> Phase:
    start = rec.processing_start
    tc = rec.cancel_requested_at
    if tc is not None:
        phase = Phase("cancelling", processed=rec.processed_at(tc), cancelling_at=tc)
        if tc >= start and rec.errors is None:
            phase.in_progress_at = start
            if not rec.will_expire and tc >= rec.processing_end:
                phase.finalizing_at = rec.processing_end
        if now >= tc + rec.cancel_seconds:
            phase.status, phase.cancelled_at = "cancelled", tc + rec.cancel_seconds
        return phase
    if now < start:
        return Phase("validating")
    if rec.errors is not None:
        return Phase("failed", failed_at=start)
    if rec.will_expire:
        end = rec.expiry_time
        if now < end:
            return Phase("in_progress", processed=rec.processed_at(now), in_progress_at=start)
        return Phase("expired", processed=rec.processed_at(end), in_progress_at=start, expired_at=end)
    done = rec.processing_end
    if now < done:
        return Phase("in_progress", processed=rec.processed_at(now), in_progress_at=start)
    phase = Phase("finalizing", processed=rec.total, in_progress_at=start, finalizing_at=done)
    if now >= done + rec.finalizing_seconds:
        phase.status, phase.completed_at = "completed", done + rec.finalizing_seconds
    return phase


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def render(rec: BatchRecord, phase: Phase) -> dict[str, Any]:
    """The Batch object exactly as Groq sends it: every key present, null where no value."""
    if phase.status in ("validating", "failed"):
        counts = {"total": 0, "completed": 0, "failed": 0}
    else:
        done = min(phase.processed, len(rec.ok_prefix) - 1)
        succeeded = rec.ok_prefix[done]
        failed = done - succeeded
        if phase.status in ("expired", "cancelled"):
            failed += rec.total - done  # never-run lines are in the error file too
        counts = {"total": rec.total, "completed": succeeded, "failed": failed}
    errors = None
    if phase.status == "failed" and rec.errors is not None:
        errors = {"object": "list", "data": rec.errors}
    return {
        "id": rec.id,
        "object": "batch",
        "endpoint": rec.endpoint,
        "errors": errors,
        "input_file_id": rec.input_file_id,
        "completion_window": rec.completion_window,
        "status": phase.status,
        "output_file_id": rec.output_file_id if rec.finished else None,
        "error_file_id": rec.error_file_id if rec.finished else None,
        "finalizing_at": _ts(phase.finalizing_at),
        "failed_at": _ts(phase.failed_at),
        "expired_at": _ts(phase.expired_at),
        "cancelled_at": _ts(phase.cancelled_at),
        "request_counts": counts,
        "metadata": rec.metadata,
        "created_at": int(rec.created_at),
        "expires_at": int(rec.expires_at),
        "cancelling_at": _ts(phase.cancelling_at),
        "completed_at": _ts(phase.completed_at),
        "in_progress_at": _ts(phase.in_progress_at),
    }
