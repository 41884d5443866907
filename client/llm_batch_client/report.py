"""Reports of a batch as text: the cost report (per pass and per tier, exact from Decimal), the one-line
progress of a running batch, and an estimate's table. Used by the `llm-batch` CLI, the Django command and
`make demo`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from llm_batch_client.data import Batch, Cost, Estimate, Pass
from llm_batch_client.text import count, format_table, model_name, reasons_text, usd

__all__ = ["cascade_text", "cost_report", "estimate_report", "progress_line", "retry_text"]

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
            model_name(p.model, p.provider),
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


@dataclass(frozen=True)
class _TierLine:
    """A row of the tiers table: a cascade tier, or a model a retry ran on outside the cascade."""

    tier: str
    model: str
    passes: int
    items: int
    succeeded: int
    failed: int
    failure_reasons: dict[str, int]
    cost: Cost

    def cells(self) -> list[str]:
        counts = [count(n) for n in (self.passes, self.items, self.succeeded, self.failed)]
        return [self.tier, self.model, *counts, reasons_text(self.failure_reasons), *_cost_cells(self.cost)]


def tiers_table(batch: Batch) -> list[str]:
    """A row per cascade tier (its attempts over every pass on it), a row per model a retry ran on outside the
    cascade, and their total: the batch's."""
    lines = [
        _TierLine(str(t.tier), model_name(t.model, t.provider), t.passes, t.items, t.succeeded, t.failed,
                  t.failure_reasons, t.cost)
        for t in batch.tiers
    ]  # fmt: skip
    lines += [_outside_line(model, passes) for model, passes in _outside_cascade(batch.passes).items()]
    total = _TierLine(
        "total",
        "",
        sum(line.passes for line in lines),
        sum(line.items for line in lines),
        sum(line.succeeded for line in lines),
        sum(line.failed for line in lines),
        {},
        _cost_sum(line.cost for line in lines),
    )
    return format_table(_TIER_HEADERS, [line.cells() for line in [*lines, total]], _TIER_RIGHT)


_PROVIDER_HEADERS = ["provider", "passes", "items", "succeeded", "failed", "input tok", "output tok", "cost USD"]
_PROVIDER_RIGHT = [False, True, True, True, True, True, True, True]


def providers_table(batch: Batch) -> list[str]:
    """A row per provider the batch's passes ran on (a cascade may cross providers), and their total: the
    batch's."""
    grouped: dict[str, list[Pass]] = {}
    for p in sorted(batch.passes, key=lambda p: p.number):
        grouped.setdefault(p.provider or "-", []).append(p)
    rows = [(name, passes, _cost_sum(p.cost for p in passes)) for name, passes in grouped.items()]
    rows.append(("total", list(batch.passes), _cost_sum(p.cost for p in batch.passes)))
    cells = [
        [name, count(len(passes)), count(sum(p.items for p in passes)), count(sum(p.succeeded for p in passes)),
         count(sum(p.failed for p in passes)), *_cost_cells(cost)]
        for name, passes, cost in rows
    ]  # fmt: skip
    return format_table(_PROVIDER_HEADERS, cells, _PROVIDER_RIGHT)


def _outside_cascade(passes: Iterable[Pass]) -> dict[str, list[Pass]]:
    """The passes of retries on a model outside the cascade (tier None), by model, in pass order."""
    grouped: dict[str, list[Pass]] = {}
    for p in sorted(passes, key=lambda p: p.number):
        if p.tier is None:
            grouped.setdefault(model_name(p.model, p.provider), []).append(p)
    return grouped


def _outside_line(model: str, passes: list[Pass]) -> _TierLine:
    reasons: dict[str, int] = {}
    for p in passes:
        for code, n in p.failure_reasons.items():
            reasons[code] = reasons.get(code, 0) + n
    return _TierLine(
        "- (retry)",
        model,
        len(passes),
        sum(p.items for p in passes),
        sum(p.succeeded for p in passes),
        sum(p.failed for p in passes),
        reasons,
        _cost_sum(p.cost for p in passes),
    )


def _cost_sum(costs: Iterable[Cost]) -> Cost:
    usd_total, input_tokens, output_tokens = Decimal(0), 0, 0
    for cost in costs:
        usd_total += cost.usd
        input_tokens += cost.input_tokens
        output_tokens += cost.output_tokens
    return Cost(usd=usd_total, input_tokens=input_tokens, output_tokens=output_tokens)


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
    if batch.tiers or batch.passes:
        lines += ["", *tiers_table(batch)]
    if any(p.provider is not None for p in batch.passes):
        lines += ["", *providers_table(batch)]
    lines += ["", f"Total: {usd(batch.cost.usd)}"]
    lines.append(f"Saved by reuse: {usd(batch.saved_usd)}")
    if batch.budget is not None:
        budget = batch.budget
        lines.append(
            f"Budget: {usd(budget.budget_usd)}; spent {usd(budget.spent_usd)}, reserved {usd(budget.reserved_usd)}"
            + (f"; {budget.waiting_items:,} items wait for room in it" if budget.waiting_items else "")
        )
    return "\n".join(lines)


def cascade_text(batch: Batch) -> str:
    """The batch's tiers as submitted, `openai/gpt-oss-20b -> openai/gpt-oss-120b` (a tier named
    `provider:model` stays so)."""
    names = [model_name(str(tier.get("model")), tier.get("provider")) for tier in batch.cascade]
    return " -> ".join(names) or batch.model


def retry_text(batch: Batch) -> str:
    """What a retry just did: `Retrying 12 failed items of lb_... as pass 4 on openai/gpt-oss-120b.`"""
    latest = max(batch.passes, key=lambda p: p.number)
    where = model_name(latest.model, latest.provider)
    return f"Retrying {latest.items} failed items of {batch.id} as pass {latest.number} on {where}."


def progress_line(batch: Batch) -> str:
    """lb_01...  running  228/300 done: 228 succeeded, 0 failed, 72 retrying, 0 pending  pass 2 cascade on ...  $0.01"""
    counts = batch.counts
    latest = max(batch.passes, key=lambda p: p.number, default=None)
    where = (
        f"  pass {latest.number} {latest.kind} on {model_name(latest.model, latest.provider)} {latest.status}"
        if latest
        else ""
    )
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
            model_name(t.model, t.provider),
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
        if estimate.budget_buys is not None:
            bought = estimate.budget_buys
            lines.append(
                f"It buys about {bought.items:,.0f} completed items for {usd(bought.cost)} (from {bought.based_on})"
            )
    return "\n".join(lines)
