"""Realistic PR-analysis requests, like the ones the Django monolith sends."""

from __future__ import annotations

import copy
from typing import Any

import orjson

PR_ANALYSIS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "risk_level", "categories", "score"],
    "properties": {
        "summary": {"type": "string", "minLength": 1, "maxLength": 400},
        "risk_level": {"type": "string", "enum": ["low", "medium", "high"]},
        "categories": {
            "type": "array",
            "items": {"type": "string", "enum": ["bugfix", "feature", "refactor", "docs", "tests", "chore"]},
            "minItems": 1,
            "maxItems": 3,
        },
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
    },
}


def ndjson_lines(payload: dict[str, Any]) -> list[bytes]:
    """The submission as NDJSON lines (no newlines): its header, then one line per item."""
    header = {key: value for key, value in payload.items() if key != "items"}
    return [orjson.dumps(line) for line in [header, *payload["items"]]]


def pr_item(number: int, *, max_tokens: int = 2048) -> dict[str, Any]:
    return {
        "custom_id": f"pr-{number}",
        "body": {
            "messages": [
                {"role": "system", "content": "You review pull requests and answer in JSON."},
                {
                    "role": "user",
                    "content": f"PR #{number}: Fix race in payment retry worker.\n"
                    "Description: retries could double-charge when the lock expired.\n"
                    "Diff: +with lock(order_id):\n+    charge(order)\n-charge(order)",
                },
            ],
            "max_completion_tokens": max_tokens,
        },
    }


# A budget no emulated generation runs out of: with strict mode on, every item succeeds in its first pass.
AMPLE_TOKENS = 8192


def pr_batch(
    count: int, *, start: int = 1, items_metadata: bool = False, max_tokens: int = 2048, **extra: Any
) -> dict[str, Any]:
    """`count` PR analyses; `items_metadata`: each item carries {"pr_id": its number}; `extra`: header fields."""
    items = [pr_item(number, max_tokens=max_tokens) for number in range(start, start + count)]
    if items_metadata:
        for number, item in enumerate(items, start=start):
            item["metadata"] = {"pr_id": number}
    payload: dict[str, Any] = {
        "items": items,
        "params": {
            "temperature": 0,
            "response_format": {
                "type": "json_schema",
                # a copy: tests edit payloads in place and must not change the schema for later tests
                "json_schema": {"name": "pr_analysis", "schema": copy.deepcopy(PR_ANALYSIS_SCHEMA)},
            },
        },
    }
    payload.update(extra)
    return payload
