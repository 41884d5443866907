"""Plain-text reports of a batch summary (GET /batches/{id}), shared by `make demo` and the `llm-batch` CLI:
the per-pass table, a progress bar per pass, and a view that redraws them in place on a terminal."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

TERMINAL_STATUSES = ("completed", "failed", "cancelled")
BAR_WIDTH = 24


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool], *, total: bool = True
) -> list[str]:
    """Columns padded to their widest cell, ``right[i]`` aligning column i to the right (numbers); with
    ``total``, the last row is ruled off as the total."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(cells, widths, right, strict=True)
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    if not rows:
        return []
    if not total:
        return [line(headers), rule, *(line(row) for row in rows)]
    return [line(headers), rule, *(line(row) for row in rows[:-1]), rule, line(rows[-1])]


def money(usd: float) -> str:
    return f"${usd:,.6f}"


def price(usd_per_million: float) -> str:
    """$0.30, $0.0375: at least two decimals, more when the price has them."""
    text = f"{usd_per_million:.6f}".rstrip("0")
    decimals = max(2, len(text.split(".")[1]))
    return f"${usd_per_million:.{decimals}f}"


def reasons_text(reasons: Mapping[str, int]) -> str:
    ordered = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{code} {count}" for code, count in ordered) or "-"


def pass_table(summary: Mapping[str, Any]) -> list[str]:
    """One row per pass, then the merged outcome: final counts and failures, total tokens and cost."""
    headers = ["pass", "model", "items", "succeeded", "failed", "failures by reason", "input tok", "output tok"]
    headers += ["cost USD"]
    rows: list[list[str]] = []
    for p in sorted(summary["passes"], key=lambda p: p["number"]):
        rows.append(
            [
                str(p["number"]),
                p["model"],
                str(p["items"]),
                str(p["succeeded"]),
                str(p["failed"]),
                reasons_text(p["failure_reasons"]),
                f"{p['cost']['input_tokens']:,}",
                f"{p['cost']['output_tokens']:,}",
                money(p["cost"]["usd"]),
            ]
        )
    counts, cost = summary["counts"], summary["cost"]
    rows.append(
        [
            "total",
            "(merged, one result per item)",
            str(counts["total"]),
            str(counts["succeeded"]),
            str(counts["failed"]),
            reasons_text(summary.get("failure_reasons") or {}),
            f"{cost['input_tokens']:,}",
            f"{cost['output_tokens']:,}",
            money(cost["usd"]),
        ]
    )
    right = [False, False, True, True, True, False, True, True, True]
    return format_table(headers, rows, right)


def final_line(summary: Mapping[str, Any]) -> str:
    counts = summary["counts"]
    reasons = summary.get("failure_reasons")
    return (
        f"Final: {counts['succeeded']} of {counts['total']} items succeeded, {counts['failed']} failed"
        + (f" ({reasons_text(reasons)})" if reasons else "")
        + (f", {counts['pending']} pending" if counts["pending"] else "")
        + "."
    )


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    filled = width if total <= 0 else min(width, done * width // total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def pass_progress_line(p: Mapping[str, Any], model_width: int) -> str:
    """pass 2  llama-3.3-70b-versatile  [######..........]   12/40 done  3 failed (max_tokens 3)  $0.000123"""
    done = p["succeeded"] + p["failed"]
    count = f"{done}/{p['items']}"
    failed = f"{p['failed']} failed" + (f" ({reasons_text(p['failure_reasons'])})" if p["failed"] else "")
    provider = sorted({c.get("status") or c.get("state") or "?" for c in p.get("provider_batches") or []})
    return (
        f"pass {p['number']}  {p['model'].ljust(model_width)}  {bar(done, p['items'])} {count:>13} done"
        f"  {failed}  {money(p['cost']['usd'])}  {p['status']}" + (f" [{'/'.join(provider)}]" if provider else "")
    )


def progress_bars(summary: Mapping[str, Any]) -> list[str]:
    """A header line, then a bar per pass: items done, failures by reason, cost so far."""
    passes = sorted(summary["passes"], key=lambda p: p["number"])
    models = [summary.get("model") or "", summary.get("fallback_model") or "", *(p["model"] for p in passes)]
    width = max(len(model) for model in models)
    counts = summary["counts"]
    header = (
        f"batch {summary['id']}  {summary['status']}  {counts['succeeded']} succeeded, {counts['failed']} failed,"
        f" {counts['pending']} pending of {counts['total']}  cost {money(summary['cost']['usd'])}"
    )
    return [header, *(pass_progress_line(p, width) for p in passes)]


class ProgressView:
    """On a terminal: the lines are redrawn in place. Otherwise: a line is printed whenever it changes."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.shown: list[str] = []

    def update(self, lines: list[str]) -> None:
        if self.tty:
            if lines == self.shown:
                return
            columns = shutil.get_terminal_size().columns - 1  # a wrapped line would break the redraw
            if self.shown:
                self.out.write(f"\x1b[{len(self.shown)}F")
            for line in lines:
                self.out.write(f"\x1b[2K{line[:columns]}\n")
        else:
            previous = set(self.shown)
            for line in lines:
                if line not in previous:
                    self.out.write(line + "\n")
        self.out.flush()
        self.shown = lines
