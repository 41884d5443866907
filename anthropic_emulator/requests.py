"""What ``POST /v1/messages/batches`` checks at once: the envelope and the custom_ids (a 400 naming the first
violation in the SDK-observed shape ``requests.N.custom_id: ...``) and the batch's size (413). The ``params``
are only checked once the batch runs (``params.py``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from anthropic_emulator.errors import ApiError, invalid

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Item:
    """One request of a batch; its params kept as JSON bytes (parsed again when run)."""

    custom_id: str
    raw: bytes

    @property
    def params(self) -> Any:
        return orjson.loads(self.raw)


def too_large(message: str) -> ApiError:
    return ApiError(413, message)


def _custom_id(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{where}: Input should be a valid string")
    if not value:
        raise invalid(f"{where}: String should have at least 1 character")
    if len(value) > 64:
        raise invalid(f"{where}: String should have at most 64 characters")
    if not CUSTOM_ID.match(value):
        raise invalid(f"{where}: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
    return value


def check_batch(payload: Any, max_requests: int) -> list[Item]:
    if not isinstance(payload, dict):
        raise invalid("Input should be a valid dictionary")
    if "requests" not in payload:
        raise invalid("requests: Field required")
    requests = payload["requests"]
    if not isinstance(requests, list):
        raise invalid("requests: Input should be a valid list")
    if not requests:
        raise invalid("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > max_requests:
        raise too_large(
            f"A Message Batch may contain at most {max_requests:,} requests; this one has {len(requests):,}."
        )
    for extra in payload.keys() - {"requests"}:
        raise invalid(f"{extra}: Extra inputs are not permitted")
    items: list[Item] = []
    seen: dict[str, int] = {}
    for index, request in enumerate(requests):
        where = f"requests.{index}"
        if not isinstance(request, dict):
            raise invalid(f"{where}: Input should be a valid dictionary")
        if "custom_id" not in request:
            raise invalid(f"{where}.custom_id: Field required")
        custom_id = _custom_id(request["custom_id"], f"{where}.custom_id")
        if custom_id in seen:
            raise invalid(
                f"{where}.custom_id: Duplicate custom_id '{custom_id}' (also requests.{seen[custom_id]}.custom_id); "
                "custom_id must be unique within a batch"
            )
        seen[custom_id] = index
        if "params" not in request:
            raise invalid(f"{where}.params: Field required")
        if not isinstance(request["params"], dict):
            raise invalid(f"{where}.params: Input should be a valid dictionary")
        items.append(Item(custom_id, orjson.dumps(request["params"])))
    return items
