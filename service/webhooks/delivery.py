"""One delivery attempt over HTTP, and when to try again.

An attempt succeeds only on a 2xx answer. Anything else (another status, a redirect, which is never
followed, a timeout, a refused connection, an address the SSRF guard refuses) is a failed attempt that is
tried again later with the same webhook-id and body, and a fresh timestamp and signature.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import timedelta

import httpx

from service.webhooks.signing import WebhookSigner
from service.webhooks.ssrf import CallbackGuard, CallbackRefused, PinnedTransport

USER_AGENT = "llm-batch-webhooks/0.1"
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class AttemptResult:
    delivered: bool
    status_code: int | None
    error: str | None
    refused: bool = False  # by the SSRF guard, before any connection


@dataclass(frozen=True)
class RetrySchedule:
    max_attempts: int
    base_seconds: float
    max_seconds: float

    def delay_after(self, failed_attempts: int) -> timedelta | None:
        """Exponential back-off, each step jittered down by up to a quarter (so receivers that failed together
        are not all retried at the same moment); None: give up."""
        if failed_attempts >= self.max_attempts:
            return None
        step = min(self.base_seconds * 2 ** (failed_attempts - 1), self.max_seconds)
        return timedelta(seconds=random.uniform(0.75 * step, step))

    def total_hours(self) -> float:
        """How long the schedule keeps trying at most (without jitter), for the documentation."""
        steps = (min(self.base_seconds * 2 ** (n - 1), self.max_seconds) for n in range(1, self.max_attempts))
        return float(sum(steps)) / 3600


async def attempt_delivery(
    *, url: str, message_id: str, body: bytes, signer: WebhookSigner, guard: CallbackGuard, timeout_seconds: float
) -> AttemptResult:
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signer.headers(message_id, body),
    }
    # A new client per attempt: no connection (nor TLS session) made for one host is reused for another that
    # resolves to the same address; trust_env=False so no proxy from the environment bypasses the guard.
    client = httpx.AsyncClient(
        transport=PinnedTransport(guard), timeout=timeout_seconds, follow_redirects=False, trust_env=False
    )
    try:
        # httpx times each read; this bounds the whole attempt against a receiver that trickles bytes.
        async with asyncio.timeout(timeout_seconds * 2), client.stream("POST", url, content=body, headers=headers) as r:
            status = r.status_code
            location = r.headers.get("location")
    except CallbackRefused as error:
        return AttemptResult(False, None, _short(f"refused: {error}"), refused=True)
    except (httpx.TimeoutException, TimeoutError):
        return AttemptResult(False, None, f"timed out after {timeout_seconds:g}s")
    except httpx.HTTPError as error:
        return AttemptResult(False, None, _short(f"{type(error).__name__}: {error}"))
    finally:
        await client.aclose()
    if 200 <= status < 300:
        return AttemptResult(True, status, None)
    if 300 <= status < 400:
        return AttemptResult(False, status, _short(f"HTTP {status}: redirects are not followed (to {location})"))
    return AttemptResult(False, status, f"HTTP {status}")


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"
