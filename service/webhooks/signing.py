"""Standard Webhooks signatures (the `standardwebhooks` reference package signs; we only check the key)."""

from __future__ import annotations

import base64
import binascii
import os
from datetime import UTC, datetime
from math import floor

from standardwebhooks import Webhook

WHSEC_PREFIX = "whsec_"
# The Standard Webhooks spec asks for keys of 24 to 64 random bytes.
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64
KEY_FORMAT_HINT = (
    f"WEBHOOK_SECRET must be a Standard Webhooks key: {WHSEC_PREFIX!r} followed by the base64 of "
    f"{MIN_KEY_BYTES} to {MAX_KEY_BYTES} random bytes"
)


def webhook_key_bytes(secret: str) -> bytes:
    """The raw HMAC key of a `whsec_...` secret; ValueError (never quoting the secret) when it is not one."""
    if not secret.startswith(WHSEC_PREFIX):
        raise ValueError(KEY_FORMAT_HINT)
    encoded = secret.removeprefix(WHSEC_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(KEY_FORMAT_HINT) from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(KEY_FORMAT_HINT)
    return key


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
