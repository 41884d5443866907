"""Checking a webhook of the service (Standard Webhooks signatures) and reading its event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from llm_batch_client.data import Batch
from llm_batch_client.decoding import timestamp
from llm_batch_client.errors import UnexpectedAnswer

EVENT_TYPES = frozenset({"batch.completed", "batch.failed", "batch.cancelled"})


@dataclass(frozen=True)
class WebhookEvent:
    """A verified event. `webhook_id` is the same on every delivery of one event (a redelivery included):
    what a receiver drops duplicates by. `batch` is the batch as it was when it finished."""

    webhook_id: str
    type: str  # batch.completed | batch.failed | batch.cancelled
    timestamp: datetime
    batch: Batch
    raw: Mapping[str, Any]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def verify_webhook(headers: Mapping[str, str], body: bytes | str, secret: str) -> WebhookEvent:
    """The event, once its signature (`webhook-signature` over webhook-id, webhook-timestamp and the raw
    `body`) matches `secret` (the service's WEBHOOK_SECRET, `whsec_...`) and its timestamp is within 5 minutes.
    `headers`: any mapping (Django's request.headers as is). Raises WebhookVerificationError otherwise."""
    payload = Webhook(secret).verify(body, {name.lower(): value for name, value in headers.items()})
    webhook_id = _header(headers, "webhook-id")
    if not isinstance(payload, dict) or webhook_id is None:
        raise WebhookVerificationError("the webhook body is not a JSON object")
    try:
        return WebhookEvent(
            webhook_id=webhook_id,
            type=str(payload["type"]),
            timestamp=timestamp(payload["timestamp"]),
            batch=Batch.from_json(payload["data"]),
            raw=payload,
        )
    except (KeyError, TypeError, ValueError, UnexpectedAnswer) as error:
        raise WebhookVerificationError(f"the webhook event cannot be read: {error}") from None
