"""Validation of a batch input file (§6 of the wire reference), run when a batch is created."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from groq_emulator.config import CHAT_ENDPOINT


@dataclass(frozen=True)
class InputRequest:
    """A valid input line. Only the raw bytes are kept (parsed again when run): thousands of
    parsed dicts would make the garbage collector crawl."""

    line: int  # 1-based line in the input file
    custom_id: str
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = orjson.loads(self.raw)["body"]
        return body


@dataclass
class ValidationResult:
    requests: list[InputRequest] = field(default_factory=list)  # lines that passed the checks
    errors: list[dict[str, Any]] = field(default_factory=list)  # capped at max_errors
    error_count: int = 0

    @property
    def ok(self) -> bool:
        return self.error_count == 0


def _error(code: str, message: str, param: str | None, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def _check_line(obj: Any, seen: dict[str, int], number: int) -> dict[str, Any] | None:
    if not isinstance(obj, dict):
        return _error("invalid_json_line", "Each line must be a JSON object.", None, number)
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return _error(
            "invalid_custom_id",
            "Missing or invalid 'custom_id': expected a non-empty string.",
            "custom_id",
            number,
        )
    if custom_id in seen:
        message = (
            f"The custom_id '{custom_id}' is used on line {seen[custom_id]} and line {number}. "
            "custom_id values must be unique within a batch."
        )
        return _error("duplicate_custom_id", message, "custom_id", number)
    seen[custom_id] = number
    method = obj.get("method")
    if method != "POST":
        return _error("invalid_method", f"Invalid value: '{method}'. Supported values are: 'POST'", "method", number)
    url = obj.get("url")
    if url != CHAT_ENDPOINT:
        message = f"Invalid value: '{url}'. Supported values are: '{CHAT_ENDPOINT}'"
        return _error("invalid_url", message, "url", number)
    body = obj.get("body")
    if not isinstance(body, dict):
        return _error("invalid_body", "Missing or invalid 'body': expected a JSON object.", "body", number)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _error("missing_model", "Missing required parameter: 'body.model'.", "body.model", number)
    return None


def validate_input(data: bytes, max_errors: int = 1000) -> ValidationResult:
    """Parse and check every line. Blank lines are skipped but still counted for line numbers."""
    result = ValidationResult()
    seen: dict[str, int] = {}
    non_blank = 0
    for index, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        non_blank += 1
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            problem: dict[str, Any] | None = _error(
                "invalid_json_line", f"Line {index} is not valid JSON: {exc}", None, index
            )
        else:
            problem = _check_line(obj, seen, index)
        if problem is None:
            result.requests.append(InputRequest(index, obj["custom_id"], raw))
            continue
        result.error_count += 1
        if len(result.errors) < max_errors:
            result.errors.append(problem)
    if non_blank == 0:
        result.error_count = 1
        result.errors = [_error("empty_file", "The input file is empty.", None, None)]
    return result
