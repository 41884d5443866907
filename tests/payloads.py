"""Realistic PR-analysis requests, like the ones the Django monolith sends."""

from __future__ import annotations

import copy
from typing import Any

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


def pr_batch(count: int, *, start: int = 1, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "items": [pr_item(number) for number in range(start, start + count)],
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
