"""A batch's record and its Batch object. The schedule and statuses are Groq's (``groq_emulator.lifecycle``:
validating, in_progress while lines finish evenly in file order, finalizing, completed; failed at the end of
validation; expired at ``expires_at``; cancelling then cancelled)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from groq_emulator.lifecycle import BatchRecord, Phase
from openai_emulator.behaviour import LineResult

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass
class OpenAIBatch(BatchRecord):
    model: str | None = None  # the snapshot of the file's one model, once validated
    prompt_tokens: list[int] = field(default_factory=list)  # per request, counted at validation
    output_expiry_seconds: int = 0
    lines: list[LineResult] = field(default_factory=list)  # simulated so far, file order; [] once finished
    usage: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # input, cached, output, reasoning so far


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def _usage(rec: OpenAIBatch) -> dict[str, Any]:
    given, cached, output, reasoning = rec.usage
    return {
        "input_tokens": given,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": given + output,
    }


def counts(rec: OpenAIBatch, phase: Phase) -> dict[str, int]:
    if phase.status in ("validating", "failed"):
        return {"total": 0, "completed": 0, "failed": 0}
    done = min(phase.processed, len(rec.ok_prefix) - 1)
    succeeded = rec.ok_prefix[done]
    failed = done - succeeded
    if phase.status in ("expired", "cancelled"):
        failed += rec.total - done  # never-run lines are in the error file too
    return {"total": rec.total, "completed": succeeded, "failed": failed}


def render(rec: OpenAIBatch, phase: Phase) -> dict[str, Any]:
    """The Batch object as OpenAI sends it: every key present, null where there is no value."""
    errors = None
    if phase.status == "failed" and rec.errors is not None:
        errors = {"object": "list", "data": rec.errors}
    return {
        "id": rec.id,
        "object": "batch",
        "endpoint": rec.endpoint,
        "model": rec.model if phase.status != "validating" else None,
        "errors": errors,
        "input_file_id": rec.input_file_id,
        "completion_window": rec.completion_window,
        "status": phase.status,
        "output_file_id": rec.output_file_id if rec.finished else None,
        "error_file_id": rec.error_file_id if rec.finished else None,
        "created_at": int(rec.created_at),
        "in_progress_at": _ts(phase.in_progress_at),
        "expires_at": int(rec.expires_at),
        "finalizing_at": _ts(phase.finalizing_at),
        "completed_at": _ts(phase.completed_at),
        "failed_at": _ts(phase.failed_at),
        "expired_at": _ts(phase.expired_at),
        "cancelling_at": _ts(phase.cancelling_at),
        "cancelled_at": _ts(phase.cancelled_at),
        "request_counts": counts(rec, phase),
        "usage": _usage(rec),
        "metadata": rec.metadata,
    }
