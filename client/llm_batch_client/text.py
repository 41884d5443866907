"""Plain-text building blocks of the reports: aligned tables, amounts, counts by reason, a redrawn view."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import TextIO

CENT = Decimal("0.01")


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool], *, total: bool = True
) -> list[str]:
    """Columns padded to their widest cell, ``right[i]`` aligning column i to the right (numbers); with
    ``total``, the last row is ruled off as the total."""
    if not rows:
        return []
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(cells, widths, right, strict=True)
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    if not total:
        return [line(headers), rule, *(line(row) for row in rows)]
    return [line(headers), rule, *(line(row) for row in rows[:-1]), rule, line(rows[-1])]


def parse_usd(text: str) -> Decimal:
    """An amount in USD as typed on a command line (2.50, $2.50); ValueError says what is wrong."""
    try:
        amount = Decimal(text.strip().lstrip("$"))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount in USD (such as 2.50)") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError("must be more than 0")
    return amount


def usd(amount: Decimal) -> str:
    """An exact amount, at least to the cent: $0.0028719, $12.50, $1,234.00. Never rounded; trailing zeros
    past the cent dropped (a sum of amounts says the same as the service's own total)."""
    amount = amount.quantize(CENT) if amount == amount.to_integral_value() else amount.normalize()
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        amount = amount.quantize(CENT)
    return f"${amount:,f}"


def reasons_text(reasons: Mapping[str, int]) -> str:
    """`{"max_tokens": 3, "json_validate_failed": 31}` as "json_validate_failed 31, max_tokens 3"."""
    ordered = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{code} {count}" for code, count in ordered) or "-"


def count(n: int) -> str:
    return f"{n:,}"


def model_name(model: str, provider: str | None) -> str:
    """A model as the user names it in a cascade: `provider:model` when the service says which provider serves
    it (and the model's own name does not say so already), else the model alone."""
    if provider is None or model.startswith(f"{provider}:"):
        return model
    return f"{provider}:{model}"


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
