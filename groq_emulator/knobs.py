"""Numeric knobs (an emulator's faults) changed at run time, in-process or over HTTP."""

from __future__ import annotations

import dataclasses
from typing import Any


def staged_numbers(knobs: Any, changes: dict[str, Any]) -> dict[str, int | float]:
    """Check a partial update of the dataclass ``knobs``' numeric fields: known names, numbers, ``>= 0``, an
    integer where the field holds one. Returns the converted values; raises ValueError (nothing is changed)."""
    fields = {f.name for f in dataclasses.fields(knobs)}
    staged: dict[str, int | float] = {}
    for name, value in changes.items():
        if name not in fields:
            raise ValueError(f"unknown fault field {name!r}")
        current = getattr(knobs, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"fault field {name!r} must be a number")
        if isinstance(current, int) and not isinstance(current, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"fault field {name!r} must be an integer")
            value = int(value)
        else:
            value = float(value)
        if value < 0:
            raise ValueError(f"fault field {name!r} must be >= 0")
        staged[name] = value
    return staged


def check_fractions(staged: dict[str, int | float], *names: str) -> None:
    for name in names:
        if name in staged and staged[name] > 1:
            raise ValueError(f"{name} must be between 0 and 1")


def reset_fields(knobs: Any) -> None:
    """Every field back to its default."""
    for name, value in dataclasses.asdict(type(knobs)()).items():
        setattr(knobs, name, value)
