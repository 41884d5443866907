"""Routing failures by cause, as a table: what each failure on each tier leads to."""

from __future__ import annotations

from typing import Any

import pytest

from service.pipeline.routing import FailedAttempt, Send, SentBecause, Stop, Tier, route

SMALL = Tier(0, "openai/gpt-oss-20b", max_completion_tokens=65536, context_window=131072, reasoning=True)
LARGE = Tier(1, "openai/gpt-oss-120b", max_completion_tokens=65536, context_window=131072, reasoning=True)
WIDE = Tier(2, "wide-model", max_completion_tokens=8192, context_window=1_000_000)
TIERS = [SMALL, LARGE]


def failed(code: str, tier: int = 0, **extra: Any) -> FailedAttempt:
    return FailedAttempt(code=code, tier=tier, **extra)


@pytest.mark.parametrize(
    ("failure", "tiers", "expected"),
    [
        # not the JSON asked for: the next tier, and nothing after the last one
        (failed("json_validate_failed"), TIERS, Send(1, "escalated:json_validate_failed")),
        (failed("invalid_json"), TIERS, Send(1, "escalated:invalid_json")),
        (failed("schema_mismatch"), TIERS, Send(1, "escalated:schema_mismatch")),
        (failed("schema_mismatch", tier=1), TIERS, Stop("schema_mismatch")),
        # out of tokens: the same tier with twice the budget and less reasoning, once; then the next tier
        (
            failed("max_tokens", max_tokens_sent=2048, reasoning_effort_sent="medium"),
            TIERS,
            Send(0, "raised_budget:max_tokens", {"max_completion_tokens": 4096, "reasoning_effort": "low"}),
        ),
        (
            failed("max_tokens", max_tokens_sent=2048, overrides={"max_completion_tokens": 2048}),
            TIERS,
            Send(1, "escalated:max_tokens"),
        ),
        (  # no budget sent: what the cut-off answer used is the budget to double
            failed("max_tokens", output_tokens=1000),
            TIERS,
            Send(0, "raised_budget:max_tokens", {"max_completion_tokens": 2000, "reasoning_effort": "low"}),
        ),
        (  # capped by the catalogue
            failed("max_tokens", max_tokens_sent=50000),
            TIERS,
            Send(0, "raised_budget:max_tokens", {"max_completion_tokens": 65536, "reasoning_effort": "low"}),
        ),
        (failed("max_tokens", max_tokens_sent=65536), TIERS, Send(1, "escalated:max_tokens")),  # already at the cap
        (  # not a reasoning model: the budget only
            failed("max_tokens", tier=2, max_tokens_sent=1000),
            [SMALL, LARGE, WIDE],
            Send(2, "raised_budget:max_tokens", {"max_completion_tokens": 2000}),
        ),
        # never ran: the same tier, at most max_resends times in a row, not counted as a model failure
        (failed("batch_expired"), TIERS, Send(0, "resent:batch_expired:1")),
        (failed("missing_result", sent_because="resent:batch_expired:1"), TIERS, Send(0, "resent:missing_result:2")),
        (failed("batch_expired", sent_because="resent:batch_expired:2"), TIERS, Send(1, "escalated:batch_expired")),
        (failed("provider_server_error", http_status=503), TIERS, Send(0, "resent:provider_server_error:1")),
        (failed("internal_error", http_status=500), TIERS, Send(0, "resent:internal_error:1")),
        (
            failed("batch_expired", overrides={"max_completion_tokens": 4096}),
            TIERS,
            Send(0, "resent:batch_expired:1", {"max_completion_tokens": 4096}),
        ),
        # the model is gone: the next tier
        (failed("model_decommissioned"), TIERS, Send(1, "escalated:model_decommissioned")),
        (failed("model_not_found", tier=1), TIERS, Stop("model_not_found")),
        # refused as asked: only a tier with a larger context window can take it
        (failed("context_length_exceeded", http_status=400), TIERS, Stop("context_length_exceeded")),
        (
            failed("context_length_exceeded", http_status=400),
            [SMALL, LARGE, WIDE],
            Send(2, "escalated:context_length_exceeded"),
        ),
        (failed("provider_error", http_status=400), TIERS, Stop("provider_error")),
        # final whatever the tiers
        (failed("cancelled"), TIERS, Stop("cancelled")),
        (failed("budget_exceeded"), TIERS, Stop("budget_exceeded")),
        # a retry outside the cascade does not move on
        (FailedAttempt(code="json_validate_failed", tier=None), TIERS, Stop("json_validate_failed")),
    ],
)
def test_a_failure_goes_where_its_cause_says(failure: FailedAttempt, tiers: list[Tier], expected: object) -> None:
    assert route(failure, tiers, max_resends=2) == expected


def test_an_unusable_tier_is_passed_over() -> None:
    gone = Tier(1, "llama-3.3-70b-versatile", usable=False)
    tiers = [SMALL, gone, Tier(2, "openai/gpt-oss-120b")]
    assert route(failed("json_validate_failed"), tiers) == Send(2, "escalated:json_validate_failed")
    assert route(failed("json_validate_failed"), [SMALL, gone]) == Stop("json_validate_failed")


def test_an_unusable_tier_neither_raises_its_budget_nor_resends() -> None:
    tiers = [Tier(0, "gone", usable=False), LARGE]
    assert route(failed("max_tokens", max_tokens_sent=100), tiers) == Send(1, "escalated:max_tokens")
    assert route(failed("batch_expired"), tiers) == Send(1, "escalated:batch_expired")


def test_resends_can_be_turned_off() -> None:
    assert route(failed("batch_expired"), TIERS, max_resends=0) == Send(1, "escalated:batch_expired")


@pytest.mark.parametrize("text", ["first", "retry", "escalated:json_validate_failed", "resent:batch_expired:2"])
def test_sent_because_round_trips(text: str) -> None:
    assert SentBecause.parse(text).text() == text
