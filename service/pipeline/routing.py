"""Where a failed attempt's item goes next in the cascade, decided by the cause of the failure (pure).

- out of output tokens (`max_tokens`): once more on the same tier with `max_completion_tokens` doubled (capped by
  the catalogue) and, on a reasoning model, `reasoning_effort` one step lower; then the next tier;
- the answer was not the JSON asked for (`json_validate_failed`, `invalid_json`, `schema_mismatch`), or the model
  refused (`refused`): the next tier (which may be another provider's);
- the request never really ran (`batch_expired`, `missing_result`, `batch_failed`, a provider 5xx or 429 on the line):
  the same tier again, not counted as a model failure, at most `max_resends` times; then the next tier;
- the model is gone (`model_decommissioned`, `model_not_found`): the next tier (and the caller marks it unusable);
- the request itself was refused (context too long, invalid request): a later tier with a larger context
  window if there is one, else final;
- cancelled, or stopped by the batch's budget: final.

A tier may be unusable (decommissioned, not on the account): routing passes over it. The budget is the one
seam that stops an item outright: `Stop("budget_exceeded")`, applied where a chunk would be sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.pipeline import failure_codes as codes
from service.pipeline.catalogue import lower_effort

NOT_THE_JSON_ASKED_FOR = frozenset({codes.JSON_VALIDATE_FAILED, codes.INVALID_JSON, codes.SCHEMA_MISMATCH})
NEVER_RAN = frozenset({codes.BATCH_EXPIRED, codes.MISSING_RESULT, codes.BATCH_FAILED, codes.PROVIDER_SERVER_ERROR})
MODEL_GONE = frozenset({codes.MODEL_DECOMMISSIONED, codes.MODEL_NOT_FOUND})
REQUEST_REFUSED = frozenset({codes.CONTEXT_LENGTH_EXCEEDED, codes.PROVIDER_ERROR})
FINAL = frozenset({codes.CANCELLED, codes.BUDGET_EXCEEDED})
# Failures reuse may replay for an identical request (the model's own answer to it, not a mishap of delivery).
REPLAYABLE = frozenset({*NOT_THE_JSON_ASKED_FOR, codes.MAX_TOKENS})

FIRST = "first"
RETRY = "retry"
REUSED = "reused"
# The action of an attempt sent again with twice its max_completion_tokens. Stored and answered as
# "raised_budget:max_tokens" since the first version: the word stays so that every row reads the same.
RAISED_MAX_TOKENS = "raised_budget"


@dataclass(frozen=True)
class Tier:
    """A tier as routing sees it."""

    index: int
    model: str
    usable: bool = True
    max_completion_tokens: int = 8192
    context_window: int = 131072
    reasoning: bool = False


@dataclass(frozen=True)
class SentBecause:
    """Why an attempt was sent: `first`, `retry`, `reused`, or what the cascade did after a failure
    (`escalated`, `raised_budget` for a raised max_completion_tokens, `resent`) with the failure's code and, for
    resends, how many so far."""

    action: str
    code: str | None = None
    count: int = 0

    def text(self) -> str:
        if self.code is None:
            return self.action
        return f"{self.action}:{self.code}" + (f":{self.count}" if self.count else "")

    @classmethod
    def parse(cls, text: str) -> SentBecause:
        action, _, rest = text.partition(":")
        code, _, count = rest.partition(":")
        return cls(action, code or None, int(count) if count.isdigit() else 0)


@dataclass(frozen=True)
class FailedAttempt:
    """What routing needs to know of the attempt that failed."""

    code: str
    tier: int | None  # None: a retry on a model outside the cascade
    sent_because: str = FIRST
    overrides: Mapping[str, Any] = field(default_factory=dict)
    max_tokens_sent: int | None = None  # the max_completion_tokens the line carried (None: the model's default)
    output_tokens: int = 0  # what the attempt used (a cut-off answer used all of its max_completion_tokens)
    reasoning_effort_sent: str | None = None
    http_status: int | None = None


@dataclass(frozen=True)
class Send:
    tier: int
    reason: str  # SentBecause text
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stop:
    """The item's failure is final."""

    code: str
    message: str | None = None


Route = Send | Stop


def route(failure: FailedAttempt, tiers: Sequence[Tier], *, max_resends: int = 2) -> Route:
    """The next step for the item whose attempt failed with `failure.code` on `failure.tier`."""
    code = failure.code
    if code in FINAL or failure.tier is None:
        return Stop(code)
    current = failure.tier
    if code == codes.MAX_TOKENS:
        return _raise_max_tokens(failure, tiers) or _escalate(failure, tiers, lambda tier: True)
    if code in NEVER_RAN or (
        failure.http_status is not None and (failure.http_status >= 500 or failure.http_status == 429)
    ):
        return _resend(failure, tiers, max_resends) or _escalate(failure, tiers, lambda tier: True)
    if code in NOT_THE_JSON_ASKED_FOR or code in MODEL_GONE or code == codes.REFUSED:
        return _escalate(failure, tiers, lambda tier: True)
    if code in REQUEST_REFUSED or (failure.http_status is not None and 400 <= failure.http_status < 500):
        window = tiers[current].context_window if current < len(tiers) else 0
        return _escalate(failure, tiers, lambda tier: tier.context_window > window)
    return _escalate(failure, tiers, lambda tier: True)


def _escalate(failure: FailedAttempt, tiers: Sequence[Tier], fits: Any) -> Route:
    assert failure.tier is not None
    for tier in tiers[failure.tier + 1 :]:
        if tier.usable and fits(tier):
            return Send(tier.index, SentBecause("escalated", failure.code).text())
    return Stop(failure.code)


def _raise_max_tokens(failure: FailedAttempt, tiers: Sequence[Tier]) -> Send | None:
    """Once per tier: the same model with twice the max_completion_tokens (and less reasoning); None when
    already done."""
    assert failure.tier is not None
    if failure.tier >= len(tiers) or not tiers[failure.tier].usable:
        return None
    if "max_completion_tokens" in failure.overrides:
        return None  # this tier already had its raise
    tier = tiers[failure.tier]
    spent = max(failure.max_tokens_sent or 0, failure.output_tokens)
    if spent <= 0 or spent >= tier.max_completion_tokens:
        return None  # nothing to raise from, or already at the model's cap
    overrides: dict[str, Any] = {
        **failure.overrides,
        "max_completion_tokens": min(spent * 2, tier.max_completion_tokens),
    }
    if tier.reasoning:
        overrides["reasoning_effort"] = lower_effort(failure.reasoning_effort_sent)
    return Send(tier.index, SentBecause(RAISED_MAX_TOKENS, codes.MAX_TOKENS).text(), overrides)


def _resend(failure: FailedAttempt, tiers: Sequence[Tier], max_resends: int) -> Send | None:
    """The same request to the same tier; None once `max_resends` resends were made in a row."""
    assert failure.tier is not None
    if failure.tier >= len(tiers) or not tiers[failure.tier].usable:
        return None
    previous = SentBecause.parse(failure.sent_because)
    done = previous.count if previous.action == "resent" else 0
    if done >= max_resends:
        return None
    return Send(failure.tier, SentBecause("resent", failure.code, done + 1).text(), dict(failure.overrides))
