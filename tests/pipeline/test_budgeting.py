"""The budget's fill decision: send what fits, let the rest wait while something is in flight, refuse (final)
only when nothing is."""

from __future__ import annotations

from service.pipeline.budgeting import BudgetPlan, Fit
from service.pipeline.estimate import BudgetForecast, Forecast, TierForecast, budget_buys


def test_no_budget_sends_everything() -> None:
    plan = BudgetPlan.of(None, 10, 10)
    assert [plan.place(10**15) for _ in range(3)] == [Fit.SEND] * 3
    assert plan.waiting == 0


def test_what_is_left_is_the_budget_less_spent_and_reserved() -> None:
    assert BudgetPlan.of(100, 30, 20).left_pico == 50
    assert BudgetPlan.of(100, 90, 20).left_pico == 0


def test_items_that_fit_are_sent_and_the_others_wait_while_something_is_in_flight() -> None:
    plan = BudgetPlan.of(100, 0, 0)
    assert plan.place(60) == Fit.SEND
    assert plan.place(50) == Fit.WAIT  # 40 left: the 60 reserved will mostly come back
    assert plan.place(40) == Fit.SEND  # a smaller one later still fits
    assert plan.place(1) == Fit.WAIT
    assert plan.left_pico == 0 and plan.waiting == 2


def test_with_nothing_in_flight_an_item_that_does_not_fit_is_refused() -> None:
    plan = BudgetPlan.of(100, 70, 0)
    assert plan.place(40) == Fit.REFUSE  # nothing can free room for it
    assert plan.place(20) == Fit.SEND
    assert plan.place(40) == Fit.WAIT  # the 20 out may come back
    assert plan.waiting == 1


def test_a_budget_that_fits_every_worst_case_leaves_nothing_waiting() -> None:
    plan = BudgetPlan.of(1000, 0, 0)
    assert all(plan.place(100) == Fit.SEND for _ in range(10))
    assert plan.waiting == 0 and plan.left_pico == 0


def test_every_round_sends_or_refuses_something() -> None:
    """A round begins with nothing in flight: its first item is sent or refused, never left waiting, so the
    rounds come to an end."""
    for left, worst in [(0, 1), (5, 5), (5, 6), (1000, 1)]:
        first = BudgetPlan.of(left, 0, 0).place(worst)
        assert first in (Fit.SEND, Fit.REFUSE)


def _forecast(cost: int, *, items: int = 100, reusable: int = 0, failing: float = 10.0) -> Forecast:
    tier = TierForecast(0, "m", 100.0, 1, 1, cost, 3 * cost, 0.1, 50.0, "history", 500)
    return Forecast(items, reusable, [tier], cost, cost // 2, 3 * cost, failing)


def test_a_budget_above_the_expected_bill_buys_every_item_that_succeeds() -> None:
    bought = budget_buys(_forecast(1000), 5000)
    assert bought == BudgetForecast(items=90.0, cost_pico=1000, based_on="history")


def test_a_budget_below_the_expected_bill_buys_its_share_and_is_spent() -> None:
    bought = budget_buys(_forecast(1000), 400)
    assert bought.cost_pico == 400 and abs(bought.items - 36.0) < 1e-9


def test_items_reuse_answers_cost_nothing_within_a_budget() -> None:
    bought = budget_buys(_forecast(1000, reusable=50), 500)
    assert abs(bought.items - (50 + 40 * 0.5)) < 1e-9


def test_once_nothing_seen_would_fit_the_rest_waits_unbuilt() -> None:
    plan = BudgetPlan.of(100, 0, 0)
    assert not plan.full()
    assert plan.place(20) == Fit.SEND and not plan.full()  # 80 left, the smallest seen is 20
    assert plan.place(70) == Fit.SEND  # 10 left
    assert plan.full()
    assert plan.wait() == Fit.WAIT and plan.waiting == 1
    refusing = BudgetPlan.of(10, 0, 0)
    assert refusing.place(20) == Fit.REFUSE and not refusing.full(), "with nothing in flight every item is decided"
