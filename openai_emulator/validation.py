"""Validation of a batch input file while the batch is ``validating`` (lines are not read at upload).

Error codes are the ones OpenAI documents for ``errors.data``: ``invalid_json_line``, ``duplicate_custom_id``,
``url_mismatch``, ``model_mismatch``, ``empty_file``, ``too_many_tasks``, plus ``missing_required_parameter``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from groq_emulator.validation import InputRequest


@dataclass
class CheckedInput:
    requests: list[InputRequest] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # capped at max_errors
    error_count: int = 0
    duplicates: list[str] = field(default_factory=list)  # custom_ids used more than once
    model: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def add(self, problem: dict[str, Any], max_errors: int) -> None:
        self.error_count += 1
        if len(self.errors) < max_errors:
            self.errors.append(problem)


def _error(code: str, message: str, param: str | None, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def _missing(param: str, line: int) -> dict[str, Any]:
    return _error("missing_required_parameter", f"Missing required parameter: '{param}'.", param, line)


class _Checker:
    def __init__(self, endpoint: str, pattern: str | None) -> None:
        self.endpoint = endpoint
        self.pattern = re.compile(pattern) if pattern else None
        self.seen: dict[str, int] = {}
        self.model: str | None = None
        self.model_line = 0

    def check(self, obj: Any, number: int, result: CheckedInput) -> dict[str, Any] | None:
        if not isinstance(obj, dict):
            return _error("invalid_json_line", "This line is not parseable as valid JSON.", None, number)
        custom_id = obj.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            return _missing("custom_id", number)
        if self.pattern is not None and not self.pattern.fullmatch(custom_id):
            message = (
                "Invalid 'custom_id': string does not match pattern. "
                f"Expected a string that matches the pattern '{self.pattern.pattern}'."
            )
            return _error("invalid_custom_id", message, "custom_id", number)
        if custom_id in self.seen:
            result.duplicates.append(custom_id)
            message = (
                f"The custom_id '{custom_id}' is also used on line {self.seen[custom_id]}. "
                "custom_id must be unique for each request in a batch."
            )
            return _error("duplicate_custom_id", message, "custom_id", number)
        self.seen[custom_id] = number
        if obj.get("method") != "POST":
            if "method" not in obj:
                return _missing("method", number)
            return _error(
                "invalid_method", f"Invalid value: '{obj['method']}'. Supported values are: 'POST'.", "method", number
            )
        if obj.get("url") != self.endpoint:
            if "url" not in obj:
                return _missing("url", number)
            message = f"The URL provided for this request does not match the batch endpoint ('{self.endpoint}')."
            return _error("url_mismatch", message, "url", number)
        body = obj.get("body")
        if not isinstance(body, dict):
            return _missing("body", number)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _missing("body.model", number)
        if self.model is None:
            self.model, self.model_line = model, number
        elif model != self.model:
            message = (
                f"The model '{model}' differs from '{self.model}' on line {self.model_line}. "
                "Each input file can only include requests to a single model."
            )
            return _error("model_mismatch", message, "body.model", number)
        return None


def validate_input(
    data: bytes, endpoint: str, *, max_lines: int, max_errors: int = 1000, custom_id_pattern: str | None = None
) -> CheckedInput:
    """Parse and check every line. Blank lines are skipped but still counted for line numbers."""
    result = CheckedInput()
    checker = _Checker(endpoint, custom_id_pattern)
    non_blank = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        non_blank += 1
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            problem: dict[str, Any] | None = _error(
                "invalid_json_line", "This line is not parseable as valid JSON.", None, number
            )
        else:
            problem = checker.check(obj, number, result)
        if problem is None:
            result.requests.append(InputRequest(number, obj["custom_id"], raw))
        else:
            result.add(problem, max_errors)
    result.model = checker.model
    if non_blank == 0:
        result.error_count = 1
        result.errors = [_error("empty_file", "The batch input file is empty.", None, None)]
    elif non_blank > max_lines:
        message = f"The batch input file has {non_blank:,} requests; a batch may have at most {max_lines:,}."
        result.error_count += 1
        result.errors.insert(0, _error("too_many_tasks", message, None, None))
        del result.errors[max_errors:]
    return result
