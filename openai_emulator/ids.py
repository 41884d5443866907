"""OpenAI-style identifiers, drawn from a seeded ``random.Random`` so that a run can be reproduced.

Batch, batch-request, response and message ids begin with the creation time in hex (as observed:
``batch_69c3c347…`` was created at 0x69c3c347), then random hex; file and chat ids are base62.
"""

from __future__ import annotations

import random
import string
import uuid

_BASE62 = string.ascii_letters + string.digits


def timed_hex(prefix: str, at: float, rng: random.Random, length: int = 32) -> str:
    head = f"{max(0, int(at)) & 0xFFFFFFFF:08x}"
    return prefix + head + f"{rng.getrandbits(4 * (length - 8)):0{length - 8}x}"


def base62(prefix: str, rng: random.Random, length: int) -> str:
    return prefix + "".join(rng.choice(_BASE62) for _ in range(length))


def file_id(rng: random.Random) -> str:
    return base62("file-", rng, 22)


def request_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
