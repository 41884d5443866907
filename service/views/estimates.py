"""The answer of POST /batches/estimate, from the pipeline's forecast."""

from __future__ import annotations

from service.pipeline.cost import usd_float, usd_text
from service.pipeline.estimate import Forecast, budget_buys
from service.views.response_bodies import BudgetForecastOut, Estimate, Money, TierEstimate


def money(pico: int) -> Money:
    return Money(usd=usd_float(pico), usd_exact=usd_text(pico))


def estimate_out(forecast: Forecast, counted_with: str, budget_pico: int | None) -> Estimate:
    return Estimate(
        items=forecast.items,
        reusable_items=forecast.reusable_items,
        tiers=[
            TierEstimate(
                tier=tier.tier,
                model=tier.model,
                items=round(tier.attempts, 2),
                input_tokens=tier.input_tokens,
                output_tokens=tier.output_tokens,
                cost=money(tier.cost_pico),
                upper_bound=money(tier.upper_bound_pico),
                moves_on_share=round(tier.moves_on_share, 4),
                output_tokens_per_attempt=round(tier.output_tokens_per_attempt, 1),
                based_on=tier.based_on,
                history_attempts=tier.history_attempts,
            )
            for tier in forecast.tiers
        ],
        cost=money(forecast.cost_pico),
        floor=money(forecast.floor_pico),
        upper_bound=money(forecast.upper_bound_pico),
        input_tokens_counted_with=counted_with,
        budget_usd=usd_text(budget_pico) if budget_pico is not None else None,
        within_budget=forecast.cost_pico <= budget_pico if budget_pico is not None else None,
        budget_buys=_budget_buys(forecast, budget_pico) if budget_pico is not None else None,
    )


def _budget_buys(forecast: Forecast, budget_pico: int) -> BudgetForecastOut:
    bought = budget_buys(forecast, budget_pico)
    return BudgetForecastOut(items=round(bought.items, 1), cost=money(bought.cost_pico), based_on=bought.based_on)
