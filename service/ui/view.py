"""What the status page draws, computed from a batch summary (the API's GET /batches/{id} body): pure."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RUNNING_STATUSES = frozenset({"queued", "running"})
# Failure codes the team sees most, in colours people learn; any other code gets one from the palette.
REASON_COLOURS = {
    "json_validate_failed": "#e8590c",
    "max_tokens": "#f59f00",
    "invalid_json": "#d6336c",
    "schema_mismatch": "#ae3ec9",
    "batch_expired": "#7048e8",
    "batch_failed": "#c92a2a",
    "cancelled": "#868e96",
    "missing_result": "#1c7ed6",
    "provider_error": "#a61e4d",
    "malformed_result": "#5c940d",
}
PALETTE = ("#e67700", "#862e9c", "#c2255c", "#5f3dc4", "#d9480f", "#364fc7", "#087f5b")
SUCCEEDED_COLOUR = "#2f9e44"
PENDING_COLOUR = "#ced4da"
RETRYING_COLOUR = "#74c0fc"


def reason_colour(code: str) -> str:
    return REASON_COLOURS.get(code) or PALETTE[zlib.crc32(code.encode()) % len(PALETTE)]


@dataclass(frozen=True)
class Segment:
    label: str
    count: int
    percent: float
    colour: str
    kind: str  # succeeded | failed | pending: lets tests and CSS tell segments apart


def segments(
    succeeded: int, failure_reasons: Mapping[str, int], failed: int, pending: int, retrying: int = 0
) -> list[Segment]:
    """Succeeded, then failures by reason (largest first), then items a later pass will send again, then
    pending, as shares of the whole."""
    failed_parts = sorted(failure_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    unexplained = failed - sum(count for _, count in failed_parts)
    if unexplained > 0:
        failed_parts.append(("unknown", unexplained))
    total = succeeded + sum(count for _, count in failed_parts) + retrying + pending
    parts = [("succeeded", succeeded, SUCCEEDED_COLOUR, "succeeded")]
    parts += [(code, count, reason_colour(code), "failed") for code, count in failed_parts]
    parts.append(("retrying", retrying, RETRYING_COLOUR, "retrying"))
    parts.append(("pending", pending, PENDING_COLOUR, "pending"))
    return [
        Segment(label, count, round(count * 100.0 / total, 3) if total else 0.0, colour, kind)
        for label, count, colour, kind in parts
        if count > 0
    ]


def pass_segments(p: Mapping[str, Any]) -> list[Segment]:
    return segments(p["succeeded"], p.get("failure_reasons") or {}, p["failed"], p["pending"])


def batch_segments(summary: Mapping[str, Any]) -> list[Segment]:
    counts = summary["counts"]
    return segments(
        counts["succeeded"],
        summary.get("failure_reasons") or {},
        counts["failed"],
        counts["pending"],
        counts.get("retrying", 0),
    )


def sent_because(reasons: Mapping[str, int]) -> str:
    """Why a pass's items were sent, as people read it: "first 200", "escalated (json_validate_failed) 40"."""
    parts = []
    for reason, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        action, _, code = reason.partition(":")
        code = code.split(":")[0]
        label = action.replace("_", " ") + (f" ({code})" if code else "")
        parts.append(f"{label} {count:,}")
    return ", ".join(parts) or "-"


def cascade_text(summary: Mapping[str, Any]) -> str:
    return " → ".join(str(tier["model"]) for tier in summary.get("cascade") or [])


def is_running(summary: Mapping[str, Any]) -> bool:
    return summary["status"] in RUNNING_STATUSES


def when(value: str | None) -> str:
    """An API timestamp (ISO 8601, UTC) as people read it."""
    if not value:
        return "-"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC")


def when_short(value: str | None) -> str:
    """A timestamp for a table cell: to the minute, UTC (the column header says so)."""
    full = when(value)
    return full[:16] if full.endswith(" UTC") else full


def usd(value: float | int | None) -> str:
    return f"${float(value or 0):,.6f}"


def number(value: int | None) -> str:
    return f"{value or 0:,}"


def chunk_progress(chunk: Mapping[str, Any]) -> str:
    counts = chunk.get("request_counts") or {}
    done = int(counts.get("completed") or 0) + int(counts.get("failed") or 0)
    return f"{done:,}/{int(chunk.get('lines') or 0):,}"
