"""Reports of a batch as text: the cost report (per pass and per tier, exact from Decimal), the one-line
progress of a running batch, and an estimate's table. Used by the `llm-batch` CLI, the Django command and
`make demo`.
"""

from __future__ import annotations

from llm_batch_client.data import Batch, Cost, Estimate
from llm_batch_client.text import count, format_table, reasons_text, usd

__all__ = ["cost_report", "estimate_report", "progress_line"]

_PASS_HEADERS = ["pass", "kind", "tier", "model", "why sent", "items", "succeeded", "failed", "reused"]
_PASS_HEADERS += ["input tok", "output tok", "cost USD"]
_PASS_RIGHT = [False, False, False, False, False, *[True] * 7]
_TIER_HEADERS = ["tier", "model", "passes", "items", "succeeded", "failed", "failures by reason"]
_TIER_HEADERS += ["input tok", "output tok", "cost USD"]
_TIER_RIGHT = [False, False, True, True, True, True, False, True, True, True]


def _tier_name(tier: int | None) -> str:
    return "-" if tier is None else str(tier)


def _cost_cells(cost: Cost) -> list[str]:
    return [count(cost.input_tokens), count(cost.output_tokens), usd(cost.usd)]


def passes_table(batch: Batch) -> list[str]:
    """A row per pass (why its items were sent, what came of them, its tokens and cost), then the batch's
    outcome: one result per item, the bill."""
    rows = [
        [
            str(p.number),
            p.kind,
            _tier_name(p.tier),
            p.model,
            reasons_text(p.sent_because),
            count(p.items),
            count(p.succeeded),
            count(p.failed),
            count(p.reused),
            *_cost_cells(p.cost),
        ]
        for p in sorted(batch.passes, key=lambda p: p.number)
    ]
    counts, cost = batch.counts, batch.cost
    rows.append(
        [
            "total",
            "",
            "",
            "one result per item",
            "",
            count(counts.total),
            count(counts.succeeded),
            count(counts.failed),
            count(sum(p.reused for p in batch.passes)),
            *_cost_cells(cost),
        ]
    )
    return format_table(_PASS_HEADERS, rows, _PASS_RIGHT)


def tiers_table(batch: Batch) -> list[str]:
    """A row per cascade tier: its attempts over every pass on it."""
    rows = [
        [
            str(t.tier),
            t.model,
            count(t.passes),
            count(t.items),
            count(t.succeeded),
            count(t.failed),
            reasons_text(t.failure_reasons),
            *_cost_cells(t.cost),
        ]
        for t in batch.tiers
    ]
    return format_table(_TIER_HEADERS, rows, _TIER_RIGHT, total=False)


def outcome_line(batch: Batch) -> str:
    counts = batch.counts
    text = f"{counts.succeeded} of {counts.total} items succeeded, {counts.failed} failed"
    if batch.failure_reasons:
        text += f" ({reasons_text(batch.failure_reasons)})"
    if counts.pending or counts.retrying:
        text += f", {counts.pending} pending, {counts.retrying} retrying"
    return text


def cost_report(batch: Batch) -> str:
    """The cost report of a batch: passes, tiers, total, what reuse saved, the budget if it has one."""
    lines = [f"Batch {batch.id} {batch.status}: {outcome_line(batch)}.", ""]
    lines += passes_table(batch)
    if batch.tiers:
        lines += ["", *tiers_table(batch)]
    lines += ["", f"Total: {usd(batch.cost.usd)}"]
    lines.append(f"Saved by reuse: {usd(batch.saved_usd)}")
    if batch.budget is not None:
        budget = batch.budget
        lines.append(
            f"Budget: {usd(budget.budget_usd)}; spent {usd(budget.spent_usd)}, reserved {usd(budget.reserved_usd)}"
        )
    return "\n".join(lines)


def progress_line(batch: Batch) -> str:
    """lb_01...  running  228/300 done: 228 succeeded, 0 failed, 72 retrying, 0 pending  pass 2 cascade on ...  $0.01"""
    counts = batch.counts
    latest = max(batch.passes, key=lambda p: p.number, default=None)
    where = f"  pass {latest.number} {latest.kind} on {latest.model} {latest.status}" if latest else ""
    return (
        f"{batch.id}  {batch.status}  {counts.done}/{counts.total} done: {counts.succeeded} succeeded,"
        f" {counts.failed} failed, {counts.retrying} retrying, {counts.pending} pending{where}  {usd(batch.cost.usd)}"
    )


def estimate_report(estimate: Estimate) -> str:
    """A row per tier (expected attempts, tokens, cost and worst case), then the expected total and bounds."""
    headers = ["tier", "model", "items", "input tok", "output tok", "cost USD", "upper bound", "moves on", "based on"]
    rows = [
        [
            str(t.tier),
            t.model,
            f"{t.items:,.1f}",
            count(t.input_tokens),
            count(t.output_tokens),
            usd(t.cost),
            usd(t.upper_bound),
            f"{t.moves_on_share:.1%}",
            t.based_on + (f" ({t.history_attempts:,} attempts)" if t.based_on == "history" else ""),
        ]
        for t in estimate.tiers
    ]
    right = [False, False, True, True, True, True, True, True, False]
    lines = [f"Estimate for {estimate.items:,} items ({estimate.reusable_items:,} answered by reuse at no cost):", ""]
    lines += format_table(headers, rows, right, total=False)
    lines += [
        "",
        f"Expected: {usd(estimate.cost)}  (floor {usd(estimate.floor)}, upper bound {usd(estimate.upper_bound)})",
        f"Input tokens counted with: {estimate.input_tokens_counted_with}",
    ]
    if estimate.budget_usd is not None:
        verdict = "within it" if estimate.within_budget else "expected to exceed it"
        lines.append(f"Budget: {usd(estimate.budget_usd)}: {verdict}")
    return "\n".join(lines)
