"""When a request is sent again: after no answer or a "not now" answer, for requests that cannot do harm twice
(reads, estimates, and POSTs with an Idempotency-Key, which the service answers once)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_batch_client.errors import parse_retry_after

if TYPE_CHECKING:
    from llm_batch_client.calls import Call

# Answers that say "not now" rather than "no". 409 only with a Retry-After: the same Idempotency-Key is still
# being worked on (the first send of this very request, whose answer was lost).
RESEND_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """`sends`: how often one request is sent at most, the first time included (1: never again).
    Waits double from `backoff_seconds` up to `max_backoff_seconds`; a Retry-After is followed up to
    `max_retry_after_seconds` (longer than that, the answer is final)."""

    sends: int = 5
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    max_retry_after_seconds: float = 60.0

    def backoff(self, sends: int) -> float:
        return float(min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (sends - 1)))

    def delay(self, call: Call, sends: int, reply: Any) -> float | None:
        """Seconds to wait before sending `call` again after its `sends`-th reply, or None: that reply is final."""
        if sends >= self.sends or not call.resendable:
            return None
        status = getattr(reply, "status", None)
        if status is None:  # no answer
            return self.backoff(sends)
        retry_after = parse_retry_after(reply.headers.get("retry-after"))
        in_progress = status == 409 and call.idempotency_key is not None and retry_after is not None
        if status not in RESEND_STATUSES and not in_progress:
            return None
        if retry_after is None:
            return self.backoff(sends)
        return retry_after if retry_after <= self.max_retry_after_seconds else None


NEVER_AGAIN = RetryPolicy(sends=1)
