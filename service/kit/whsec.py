"""The format of a Standard Webhooks key (`whsec_` + base64 of 24 to 64 random bytes), checked at start-up."""

from __future__ import annotations

import base64
import binascii

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
