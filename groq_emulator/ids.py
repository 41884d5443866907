"""Groq-style identifiers: a prefix plus 26 lowercase Crockford base32 characters (a ULID)."""

from __future__ import annotations

import random
import secrets

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase


def ulid_text(timestamp: float, rng: random.Random | None = None) -> str:
    """A lowercase ULID: 48 bits of milliseconds then 80 random bits.

    With ``rng`` the random part is drawn from it, so ids can be reproducible.
    """
    millis = max(0, int(timestamp * 1000)) & ((1 << 48) - 1)
    randomness = rng.getrandbits(80) if rng is not None else secrets.randbits(80)
    value = (millis << 80) | randomness
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str, timestamp: float, rng: random.Random | None = None) -> str:
    """``prefix`` + ULID, e.g. ``new_id("batch_", t)`` -> ``batch_01jh6xa7reempvjyh6n3yst2zw``."""
    return prefix + ulid_text(timestamp, rng)
