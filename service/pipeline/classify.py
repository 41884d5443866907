"""Turning one line of a provider batch's output or error file into an item outcome.

`classify_result` reads the chat-completions lines of Groq and OpenAI. The envelope of an OpenAI-style line
(`classify_openai_line`) and the judging of an answer's text (`judge`) are shared with the other wires
(`responses_lines`, `anthropic_lines`).

Lines are decoded by orjson, so every JSON object in them is a dict: the checks ask for `dict`, a C type test,
not `Mapping`, whose ABC check costs many times more on each of the tens of thousands of lines of an ingest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import orjson

from service.pipeline import failure_codes as codes
from service.pipeline.cost import Usage
from service.pipeline.expectations import OutputExpectation
from service.pipeline.schemas import SchemaInvalid, first_error_of
from service.pipeline.strict import strip_introduced_nulls

_JSON_FENCE = re.compile(r"\A```(?:json)?[ \t]*\n(?P<json>.*?)\n?```\Z", re.DOTALL | re.IGNORECASE)
_MAX_TOKENS_MARKER = "max completion tokens"
_MAX_DETAIL_CHARS = 200


class Outcome(NamedTuple):
    """A NamedTuple, not a dataclass: an ingest makes one per result line, and a tuple is made several times
    faster."""

    custom_id: str
    succeeded: bool
    error_code: str | None
    error_message: str | None
    content: str | None
    output: Any | None
    finish_reason: str | None
    usage: Usage
    provider_request_id: str | None
    http_status: int | None = None  # of the request's response, when it failed with one
    output_json: str | None = None  # the output as JSON text, once `compact()` dropped the parsed value

    def stored_output(self) -> str | None:
        """The output as it is stored: JSON text, for a success that has one."""
        if not self.succeeded:
            return None
        if self.output_json is not None:
            return self.output_json
        return None if self.output is None else orjson.dumps(self.output).decode()

    def compact(self) -> Outcome:
        """The same outcome holding its output as JSON text only (a parsed value costs many times its size,
        and an ingest holds a whole chunk's outcomes)."""
        if self.output is None:
            return self
        return self._replace(output=None, output_json=self.stored_output())


class MalformedLine(Exception):
    """The line lacks the shape of a batch result line."""


# What a wire reads from a 200 response: (custom_id, response, expectation) -> Outcome.
AnswerReader = Callable[[str, Mapping[str, Any], OutputExpectation], Outcome]
UsageReader = Callable[[Any], Usage]


def parse_result_line(raw: bytes | str) -> dict[str, Any] | None:
    """The decoded line, or None when it is not a JSON object with a string ``custom_id``."""
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        return None
    return line


def unprocessed(custom_id: str, code: str, message: str) -> Outcome:
    """An item the provider never ran (batch expired, failed, cancelled, or result missing)."""
    return failure(custom_id, code, message)


def classify_result(line: Mapping[str, Any], expectation: OutputExpectation) -> Outcome:
    """One line of a ``/v1/chat/completions`` batch (Groq, OpenAI)."""
    return classify_openai_line(line, expectation, _classify_completion, _usage)


def classify_openai_line(
    line: Mapping[str, Any], expectation: OutputExpectation, answer: AnswerReader, usage_of: UsageReader
) -> Outcome:
    """The envelope every OpenAI-style batch line shares: a top-level error, a non-200 response, or a 200 whose
    body `answer` reads (`usage_of` reads an error body's usage)."""
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str):
        return failure("", codes.MALFORMED_RESULT, "result line has no string custom_id")
    try:
        if line.get("error") is not None:
            return _classify_line_error(custom_id, line["error"])
        response = as_object(line.get("response"), "response")
        status_code = response.get("status_code")
        if not isinstance(status_code, int) or isinstance(status_code, bool):
            raise MalformedLine("response.status_code is not an integer")
        if status_code != 200:
            return _classify_provider_error(custom_id, response, status_code, usage_of)
        return answer(custom_id, response, expectation)
    except MalformedLine as problem:
        return failure(custom_id, codes.MALFORMED_RESULT, f"malformed result line: {problem}")


def _classify_line_error(custom_id: str, error: Any) -> Outcome:
    """Rule 1: a top-level error, as on lines for expired or cancelled requests."""
    if not isinstance(error, dict):
        return failure(custom_id, codes.PROVIDER_ERROR, str(error))
    provider_code = error.get("code")
    code = _line_error_code(provider_code if isinstance(provider_code, str) and provider_code else None)
    message = error.get("message")
    return failure(custom_id, code, message if isinstance(message, str) and message else code)


def _line_error_code(provider_code: str | None) -> str:
    if provider_code is None:
        return codes.PROVIDER_ERROR
    if provider_code == codes.PROVIDER_BATCH_CANCELLED:
        return codes.CANCELLED
    return provider_code


def _classify_provider_error(
    custom_id: str, response: Mapping[str, Any], status_code: int, usage_of: UsageReader
) -> Outcome:
    """Rule 2: the request itself failed (non-200 status with the usual ``{"error": {...}}`` body)."""
    body = response.get("body")
    body = body if isinstance(body, dict) else {}
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    code, message = _provider_error_code_and_message(error, status_code)
    return failure(
        custom_id,
        code,
        message,
        usage=usage_of(body.get("usage")),
        provider_request_id=_request_id(response, body),
        http_status=status_code,
    )


def _provider_error_code_and_message(error: Mapping[str, Any], status_code: int) -> tuple[str, str]:
    provider_code = text_or_none(error.get("code")) or None
    message = text_or_none(error.get("message")) or f"provider returned HTTP {status_code}"
    if provider_code is None and status_code >= 500:
        return codes.PROVIDER_SERVER_ERROR, message
    if provider_code is None:
        param = text_or_none(error.get("param"))
        return codes.PROVIDER_ERROR, f"{message} (param: {param})" if param else message
    failed_generation = text_or_none(error.get("failed_generation")) or ""
    # Groq has no separate code for running out of tokens while generating JSON.
    if provider_code == codes.JSON_VALIDATE_FAILED and _MAX_TOKENS_MARKER in failed_generation.lower():
        return codes.MAX_TOKENS, f"{message} ({failed_generation[:_MAX_DETAIL_CHARS]})"
    return provider_code, message


def _classify_completion(custom_id: str, response: Mapping[str, Any], expectation: OutputExpectation) -> Outcome:
    """Rule 3: a 200 response, which still fails when refused, cut off, or when its JSON is not as expected."""
    body = as_object(response.get("body"), "response.body")
    choice = _first_choice(body)
    message = as_object(choice.get("message"), "response.body.choices[0].message")
    content = text_or_none(message.get("content"))
    finish_reason = text_or_none(choice.get("finish_reason"))

    def outcome(code: str | None, error_message: str | None, output: Any | None = None) -> Outcome:
        return Outcome(
            custom_id=custom_id,
            succeeded=code is None,
            error_code=code,
            error_message=error_message,
            content=content,
            output=output,
            finish_reason=finish_reason,
            usage=_usage(body.get("usage")),
            provider_request_id=_request_id(response, body),
        )

    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        return outcome(codes.REFUSED, refusal)
    if finish_reason == "content_filter":
        return outcome(codes.REFUSED, "the provider's content filter stopped the answer")
    if finish_reason == "length":
        return outcome(codes.MAX_TOKENS, "the model stopped at the max completion tokens limit")
    return outcome(*judge(content, expectation))


def judge(content: str | None, expectation: OutputExpectation) -> tuple[str | None, str | None, Any | None]:
    """(failure code, message, parsed output) of an answer that ran to its end: (None, None, None) when no JSON
    was asked for, (None, None, output) for the JSON asked for, else invalid_json or schema_mismatch."""
    if not expectation.json_required:
        return None, None, None
    try:
        parsed = _parse_json_content(content)
    except ValueError as problem:
        return codes.INVALID_JSON, str(problem), None
    if expectation.schema is not None:
        if expectation.strip_nulls:
            parsed = strip_introduced_nulls(parsed, expectation.schema)
        mismatch = _schema_mismatch(parsed, expectation)
        if mismatch is not None:
            return codes.SCHEMA_MISMATCH, mismatch, None
    return None, None, parsed


def _first_choice(body: Mapping[str, Any]) -> Mapping[str, Any]:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedLine("response.body.choices is missing or empty")
    return as_object(choices[0], "response.body.choices[0]")


def _parse_json_content(content: str | None) -> Any:
    if content is None or not content.strip():
        raise ValueError("JSON was expected but the content is empty")
    text = content.strip()
    fenced = _JSON_FENCE.match(text)
    if fenced is not None:
        text = fenced.group("json")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as problem:
        raise ValueError(f"content is not valid JSON: {problem}") from None


def _schema_mismatch(instance: Any, expectation: OutputExpectation) -> str | None:
    try:
        return first_error_of(expectation.validator, instance)
    except SchemaInvalid as problem:
        return f"the output schema is not a valid JSON Schema: {problem.message}"


def _usage(raw: Any) -> Usage:
    """Chat usage: `prompt_tokens` already counts the cached prompt tokens and those written to the cache."""
    if not isinstance(raw, dict):
        return Usage()
    details = raw.get("prompt_tokens_details")
    if not isinstance(details, dict):
        return Usage(token_count(raw.get("prompt_tokens")), token_count(raw.get("completion_tokens")))
    return Usage(
        token_count(raw.get("prompt_tokens")),
        token_count(raw.get("completion_tokens")),
        token_count(details.get("cached_tokens")),
        token_count(details.get("cache_write_tokens")),
    )


def token_count(value: Any) -> int:
    """A count as a provider reports it; anything but a non-negative integer counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _request_id(response: Mapping[str, Any], body: Mapping[str, Any]) -> str | None:
    request_id = text_or_none(response.get("request_id"))
    if request_id is not None:
        return request_id
    x_groq = body.get("x_groq")
    return text_or_none(x_groq.get("id")) if isinstance(x_groq, dict) else None


def as_object(value: Any, where: str) -> Mapping[str, Any]:
    """`value` when it is a JSON object; MalformedLine naming `where` otherwise."""
    if not isinstance(value, dict):
        raise MalformedLine(f"{where} is not an object")
    return value


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def failure(
    custom_id: str,
    code: str,
    message: str,
    *,
    usage: Usage | None = None,
    provider_request_id: str | None = None,
    http_status: int | None = None,
) -> Outcome:
    """A failed outcome without an answer."""
    return Outcome(
        custom_id=custom_id,
        succeeded=False,
        error_code=code,
        error_message=message,
        content=None,
        output=None,
        finish_reason=None,
        usage=usage or Usage(),
        provider_request_id=provider_request_id,
        http_status=http_status,
    )
