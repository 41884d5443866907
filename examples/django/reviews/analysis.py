"""What the monolith asks of the model about a pull request, and the JSON Schema its answer must meet."""

from typing import Any

RISKS = ["low", "medium", "high"]
CATEGORIES = ["bugfix", "feature", "refactor", "docs", "tests"]

PR_ANALYSIS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "minLength": 1, "maxLength": 300},
        "risk": {"type": "string", "enum": RISKS},
        "categories": {"type": "array", "items": {"type": "string", "enum": CATEGORIES}, "minItems": 1, "maxItems": 2},
        "needs_migration": {"type": "boolean"},
    },
    "required": ["summary", "risk", "categories", "needs_migration"],
    "additionalProperties": False,
}

PARAMS: dict[str, Any] = {
    "temperature": 0,
    "response_format": {"type": "json_schema", "json_schema": {"name": "pr_analysis", "schema": PR_ANALYSIS_SCHEMA}},
}


def review_messages(title: str, body: str, diff: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You review pull requests and answer in JSON."},
        {"role": "user", "content": f"PR: {title}\nDescription: {body}\nDiff:\n{diff}"},
    ]
