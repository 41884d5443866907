"""What a batch should do next, decided from its passes and item counts alone."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NextStep(StrEnum):
    WAIT = "wait"  # a pass is still planned or running
    PLAN_FALLBACK = "plan_fallback"
    FINISH_COMPLETED = "finish_completed"
    FINISH_FAILED = "finish_failed"
    FINISH_CANCELLED = "finish_cancelled"


@dataclass(frozen=True)
class BatchProgress:
    has_active_pass: bool
    has_fallback_pass: bool
    fallback_enabled: bool
    cancel_requested: bool
    succeeded: int
    failed: int
    pending: int


def next_step(progress: BatchProgress) -> NextStep:
    if progress.has_active_pass:
        return NextStep.WAIT
    if progress.cancel_requested:
        return NextStep.FINISH_CANCELLED
    if progress.fallback_enabled and not progress.has_fallback_pass and progress.failed > 0:
        return NextStep.PLAN_FALLBACK
    if progress.succeeded == 0 and progress.failed > 0:
        return NextStep.FINISH_FAILED
    return NextStep.FINISH_COMPLETED
