"""Anthropic-style identifiers: a prefix, ``01``, then 22 base58 characters (``msgbatch_01HkcTjaV5uD…``)."""

from __future__ import annotations

import random

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def new_id(prefix: str, rng: random.Random) -> str:
    return prefix + "01" + "".join(rng.choice(_BASE58) for _ in range(22))
