"""Filling a budget: which of a pass's items go out now, which wait for room, which fail for good.

Each item going out reserves its worst case (every max_completion_tokens at the output price), so while answers
are out the budget looks spent long before it is; most of it comes back when they are ingested at their actual
cost. An item that does not fit therefore waits for a later round while anything is reserved, and fails with
`budget_exceeded` only when nothing is reserved (no answer can free room) and its worst case alone is more than
what is left. Items are placed in queue order; a smaller one after one that waits may still go out now. Each
round sends an item or refuses one, so the rounds end; a budget that fits every worst case costs none.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Fit(StrEnum):
    SEND = "send"  # reserved now: it goes out in this pass
    WAIT = "wait"  # queued for the next round: reservations in flight will free room
    REFUSE = "refuse"  # budget_exceeded, final: nothing in flight, and its worst case is more than what is left


@dataclass
class BudgetPlan:
    """What is left of a budget while the passes of one round are laid out (a pass is laid out only when no
    other pass of its batch is running, so nothing is in flight when a round begins). `left_pico` None: no
    budget, everything is sent. `in_flight`: this round has reserved something already. `waiting`: how many
    items this round left waiting."""

    left_pico: int | None
    in_flight: bool = False
    waiting: int = 0
    smallest_pico: int | None = None  # the smallest worst case placed so far

    @classmethod
    def of(cls, budget_pico: int | None, cost_pico: int, reserved_pico: int) -> BudgetPlan:
        if budget_pico is None:
            return cls(None)
        return cls(max(0, budget_pico - cost_pico - reserved_pico))

    def place(self, worst_case_pico: int) -> Fit:
        """Decide one item by its worst case (taken from what is left when it is sent)."""
        if self.left_pico is None:
            return Fit.SEND
        if self.smallest_pico is None or worst_case_pico < self.smallest_pico:
            self.smallest_pico = worst_case_pico
        if worst_case_pico <= self.left_pico:
            self.left_pico -= worst_case_pico
            self.in_flight = self.in_flight or worst_case_pico > 0
            return Fit.SEND
        if self.in_flight:
            self.waiting += 1
            return Fit.WAIT
        return Fit.REFUSE

    def full(self) -> bool:
        """Nothing seen so far would fit what is left while this round has something in flight: the next items
        wait without being built (at worst, an item that would have fit goes out one round later)."""
        return (
            self.left_pico is not None
            and self.in_flight
            and self.smallest_pico is not None
            and self.left_pico < self.smallest_pico
        )

    def wait(self) -> Fit:
        """An item left waiting without being placed (see `full`)."""
        self.waiting += 1
        return Fit.WAIT
