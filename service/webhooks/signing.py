"""Standard Webhooks signatures (the `standardwebhooks` reference package signs; we only check the key)."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from math import floor

from standardwebhooks import Webhook

from service.kit.whsec import WHSEC_PREFIX, webhook_key_bytes


def new_webhook_secret() -> str:
    return WHSEC_PREFIX + base64.b64encode(os.urandom(32)).decode("ascii")


class WebhookSigner:
    """Signs `id.timestamp.body` with HMAC-SHA256; every attempt gets a fresh timestamp, the same id and body."""

    def __init__(self, secret: str) -> None:
        webhook_key_bytes(secret)
        self._webhook = Webhook(secret)

    def headers(self, message_id: str, body: bytes, at: datetime | None = None) -> dict[str, str]:
        moment = (at or datetime.now(UTC)).astimezone(UTC)
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(floor(moment.timestamp())),
            "webhook-signature": self._webhook.sign(message_id, moment, body.decode("utf-8")),
        }
