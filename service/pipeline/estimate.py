"""What a batch will cost before it is sent (pure): the cascade's flow of items through its tiers, priced.

Each tier receives a share of the items. Of its first attempts, some run out of tokens and are sent once more on
the same tier with a raised max_completion_tokens (routing's rule), some fail in a way that moves them on to the
next tier, and the rest succeed. Those shares and the output tokens per attempt come from the service's own
history of the model (the same output schema first, then any) or, without history, from the catalogue's priors.
Input tokens are counted per item by the caller. Resends of requests that never ran cost nothing and are left out.

The upper bound is what the bill could reach if every item failed everywhere: every item on every tier, each
at its full max_completion_tokens, plus one raised-max-tokens resend per tier.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from service.pipeline import failure_codes as codes
from service.pipeline.catalogue import ModelEntry
from service.pipeline.routing import FINAL, NEVER_RAN

MIN_HISTORY_ATTEMPTS = 20  # fewer first attempts than this: the catalogue's priors instead
MIN_RAISED_HISTORY = 5
PRIOR_RAISED_FAILURE_SHARE = 0.1  # doubled max_completion_tokens with less reasoning cure most out-of-tokens answers
HISTORY = "history"
CATALOGUE = "catalogue"


@dataclass(frozen=True)
class TierHistory:
    """Finished attempts of one model, as the store counts them (reused answers and never-ran lines left out)."""

    first_attempts: int = 0  # every attempt that was not a raised-max-tokens resend
    first_billed: int = 0
    first_output_tokens: int = 0
    first_max_tokens: int = 0  # ... that ran out of tokens
    first_moved_on: int = 0  # ... that failed for a cause that moves an item to the next tier
    raised_attempts: int = 0
    raised_billed: int = 0
    raised_output_tokens: int = 0
    raised_failed: int = 0


@dataclass(frozen=True)
class OutcomeCount:
    """Past attempts with one outcome (what the store reads)."""

    raised: bool  # a raised-max-tokens resend
    status: str
    error_code: str | None
    attempts: int
    output_tokens: int
    billed: int  # attempts Groq billed (an answer that failed as an error line bills nothing)


def tier_history(groups: Iterable[OutcomeCount]) -> TierHistory:
    """Fold grouped past attempts into a tier's history (lines that never ran, or were stopped, left out)."""
    first: Counter[str] = Counter()
    raised: Counter[str] = Counter()
    for group in groups:
        failed = group.status == "failed"
        if failed and (group.error_code in NEVER_RAN or group.error_code in FINAL):
            continue
        tally = raised if group.raised else first
        tally["attempts"] += group.attempts
        tally["billed"] += group.billed
        tally["output_tokens"] += group.output_tokens
        if failed and not group.raised:
            tally["max_tokens" if group.error_code == codes.MAX_TOKENS else "moved_on"] += group.attempts
        elif failed:
            tally["failed"] += group.attempts
    return TierHistory(
        first_attempts=first["attempts"],
        first_billed=first["billed"],
        first_output_tokens=first["output_tokens"],
        first_max_tokens=first["max_tokens"],
        first_moved_on=first["moved_on"],
        raised_attempts=raised["attempts"],
        raised_billed=raised["billed"],
        raised_output_tokens=raised["output_tokens"],
        raised_failed=raised["failed"],
    )


@dataclass(frozen=True)
class TierOutcomes:
    """What an attempt on the tier is expected to do."""

    output_tokens_per_attempt: float
    billed_share: float  # of first attempts, billed (their input tokens count)
    max_tokens_share: float
    moves_on_share: float  # of first attempts, failing for another cause than running out of tokens
    raised_output_tokens_per_attempt: float
    raised_billed_share: float
    raised_failure_share: float
    based_on: str
    attempts: int


def outcomes(history: TierHistory, entry: ModelEntry, *, strict: bool, mean_max_tokens: float) -> TierOutcomes:
    """The tier's expected outcomes: its history when there is enough of it, else the catalogue's priors."""
    if history.first_attempts >= MIN_HISTORY_ATTEMPTS:
        first = history.first_attempts
        per_attempt = history.first_output_tokens / first
        billed_share = history.first_billed / first
        max_tokens_share = history.first_max_tokens / first
        moves_on_share = history.first_moved_on / first
        based_on, attempts = HISTORY, first + history.raised_attempts
    else:
        max_tokens_share = entry.prior_max_tokens_share
        moves_on_share = 0.0 if strict and entry.supports_strict else entry.prior_invalid_share
        # An answer cut off at its max_completion_tokens used all of them.
        per_attempt = (1 - max_tokens_share) * entry.prior_output_tokens + max_tokens_share * mean_max_tokens
        billed_share = 1 - moves_on_share  # an answer that is not the JSON asked for comes as an error line
        based_on, attempts = CATALOGUE, 0
    if history.raised_attempts >= MIN_RAISED_HISTORY:
        raised_per_attempt = history.raised_output_tokens / history.raised_attempts
        raised_billed = history.raised_billed / history.raised_attempts
        raised_failure = history.raised_failed / history.raised_attempts
    else:
        raised_per_attempt = (
            1.5 * mean_max_tokens
        )  # it needed more than its max_completion_tokens, less than twice as much
        raised_billed = 1.0
        raised_failure = PRIOR_RAISED_FAILURE_SHARE
    return TierOutcomes(
        output_tokens_per_attempt=per_attempt,
        billed_share=billed_share,
        max_tokens_share=max_tokens_share,
        moves_on_share=moves_on_share,
        raised_output_tokens_per_attempt=raised_per_attempt,
        raised_billed_share=raised_billed,
        raised_failure_share=raised_failure,
        based_on=based_on,
        attempts=attempts,
    )


@dataclass(frozen=True)
class TierWorkload:
    """One tier's lines, as counted from the submission."""

    tier: int
    entry: ModelEntry
    input_tokens: int  # summed over every item's line on this tier
    max_output_tokens: int  # the items' max_completion_tokens summed (the model's cap where a line sets none)
    raised_max_output_tokens: int  # the same after one raise (doubled, capped by the catalogue)
    outcomes: TierOutcomes


@dataclass(frozen=True)
class TierForecast:
    tier: int
    model: str
    attempts: float
    input_tokens: int
    output_tokens: int
    cost_pico: int
    upper_bound_pico: int
    moves_on_share: float
    output_tokens_per_attempt: float
    based_on: str
    history_attempts: int


@dataclass(frozen=True)
class Forecast:
    items: int
    reusable_items: int
    tiers: list[TierForecast]
    cost_pico: int
    floor_pico: int
    upper_bound_pico: int
    failing: float = 0.0  # items expected to fail on every tier

    @property
    def based_on(self) -> str:
        """What the tiers that take items rest on: history, catalogue, or both."""
        kinds = {tier.based_on for tier in self.tiers if tier.attempts} or {tier.based_on for tier in self.tiers}
        return " and ".join(sorted(kinds, reverse=True)) or CATALOGUE


@dataclass(frozen=True)
class BudgetForecast:
    """What a budget buys: the items it is expected to complete and the bill it is expected to come to."""

    items: float
    cost_pico: int
    based_on: str


def budget_buys(forecast: Forecast, budget_pico: int) -> BudgetForecast:
    """A budget spent as the lay-out spends it (filled to what is left, round after round) completes the share of
    the items its money pays for at the expected cost per item; what reuse answers costs nothing."""
    completing = max(0.0, forecast.items - forecast.failing)
    free = min(float(forecast.reusable_items), completing)
    share = 1.0 if forecast.cost_pico <= budget_pico else budget_pico / forecast.cost_pico
    return BudgetForecast(
        items=free + (completing - free) * share,
        cost_pico=min(forecast.cost_pico, budget_pico),
        based_on=forecast.based_on,
    )


def forecast(items: int, reusable_items: int, workloads: Sequence[TierWorkload]) -> Forecast:
    """Price the flow of `items` through the tiers; `reusable_items` start as answered (no cost, no flow)."""
    arriving = float(max(0, items - reusable_items))
    tiers: list[TierForecast] = []
    for workload in workloads:
        entry, seen = workload.entry, workload.outcomes
        mean_input = workload.input_tokens / items if items else 0.0
        raised = arriving * seen.max_tokens_share
        attempts = arriving + raised
        input_tokens = (arriving * seen.billed_share + raised * seen.raised_billed_share) * mean_input
        output_tokens = arriving * seen.output_tokens_per_attempt + raised * seen.raised_output_tokens_per_attempt
        moving_on = arriving * seen.moves_on_share + raised * seen.raised_failure_share
        cost = round(input_tokens * entry.input_pico_per_token + output_tokens * entry.output_pico_per_token)
        upper = (
            2 * workload.input_tokens * entry.input_pico_per_token
            + (workload.max_output_tokens + workload.raised_max_output_tokens) * entry.output_pico_per_token
        )
        tiers.append(
            TierForecast(
                tier=workload.tier,
                model=entry.id,
                attempts=attempts,
                input_tokens=round(input_tokens),
                output_tokens=round(output_tokens),
                cost_pico=cost,
                upper_bound_pico=upper,
                moves_on_share=moving_on / attempts if attempts else 0.0,
                output_tokens_per_attempt=seen.output_tokens_per_attempt,
                based_on=seen.based_on,
                history_attempts=seen.attempts,
            )
        )
        arriving = moving_on
    floor = 0
    if workloads:
        first = workloads[0]
        floor = round(
            first.input_tokens * first.outcomes.billed_share * first.entry.input_pico_per_token
            + items * first.outcomes.output_tokens_per_attempt * first.entry.output_pico_per_token
        )
    return Forecast(
        items=items,
        reusable_items=reusable_items,
        tiers=tiers,
        cost_pico=sum(tier.cost_pico for tier in tiers),
        floor_pico=floor,
        upper_bound_pico=sum(tier.upper_bound_pico for tier in tiers),
        failing=arriving if workloads else 0.0,
    )
