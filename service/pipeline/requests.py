"""Building the chat-completions body of each batch line: merge, adapt to the pass's model, serialise."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from service.pipeline.errors import LineTooLarge
from service.pipeline.expectations import compact_json, response_format_schema, response_format_type

BATCH_URL = "/v1/chat/completions"
SCHEMA_INSTRUCTION_PREFIX = "Respond with only a JSON object that validates against this JSON Schema:\n"
JSON_INSTRUCTION = "Respond with only a JSON object."
OUTPUT_SCHEMA_NAME = "output"


def merge_request(
    item_body: Mapping[str, Any],
    params: Mapping[str, Any] | None,
    pass_params: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """``{**params, **item_body, **pass_params}`` as an independent copy, without ``model``."""
    merged = {**(params or {}), **item_body, **(pass_params or {})}
    merged.pop("model", None)
    return copy.deepcopy(merged)


def adapt_to_model(
    request: Mapping[str, Any],
    *,
    model: str,
    supports_json_schema: bool,
    output_schema: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The final body for ``model``: structured-output options the model accepts, plus prompt hints."""
    body = {key: copy.deepcopy(value) for key, value in request.items() if key != "model"}
    schema = output_schema if output_schema is not None else response_format_schema(request)
    format_type = response_format_type(request)

    if output_schema is not None and body.get("response_format") is None:
        body["response_format"] = _json_schema_format(output_schema)
        format_type = "json_schema"

    if format_type == "json_schema" and not supports_json_schema:
        body["response_format"] = {"type": "json_object"}
        body["messages"] = _with_instruction(body.get("messages"), _json_instruction(schema))
    elif format_type == "json_object" and not _mentions_json(body.get("messages")):
        # Groq rejects JSON mode unless the prompt contains the word "JSON".
        body["messages"] = _with_instruction(body.get("messages"), _json_instruction(schema))
    return {"model": model, **body}


def jsonl_line(custom_id: str, body: Mapping[str, Any]) -> bytes:
    """One line of a batch input file, newline included."""
    line = {"custom_id": custom_id, "method": "POST", "url": BATCH_URL, "body": body}
    return compact_json(line) + b"\n"


def _json_schema_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": OUTPUT_SCHEMA_NAME, "strict": False, "schema": copy.deepcopy(dict(schema))},
    }


def _json_instruction(schema: Mapping[str, Any] | None) -> str:
    if schema is None:
        return JSON_INSTRUCTION
    return SCHEMA_INSTRUCTION_PREFIX + compact_json(schema).decode()


def _with_instruction(messages: Any, instruction: str) -> Any:
    if not isinstance(messages, list):
        return messages
    first = messages[0] if messages else None
    if isinstance(first, Mapping) and first.get("role") == "system":
        extended = {**first, "content": _append_text(first.get("content"), instruction)}
        return [extended, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


def _append_text(content: Any, text: str) -> Any:
    if isinstance(content, list):
        return [*content, {"type": "text", "text": text}]
    if isinstance(content, str) and content:
        return f"{content}\n\n{text}"
    return text


def _mentions_json(messages: Any) -> bool:
    if not isinstance(messages, list):
        return False
    return any("json" in text.lower() for message in messages for text in _message_texts(message))


def _message_texts(message: Any) -> list[str]:
    if not isinstance(message, Mapping):
        return []
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part["text"] for part in content if isinstance(part, Mapping) and isinstance(part.get("text"), str)]
    return []


@dataclass(frozen=True)
class PassRequestSpec:
    """Everything that shapes the lines of one pass, apart from the items themselves."""

    model: str
    supports_json_schema: bool
    params: Mapping[str, Any]
    pass_params: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None


def request_line(spec: PassRequestSpec, custom_id: str, item_body: Mapping[str, Any]) -> bytes:
    """The JSONL line sent for one item in one pass: planning, submission and size checks share it."""
    request = merge_request(item_body, spec.params, spec.pass_params)
    final = adapt_to_model(
        request,
        model=spec.model,
        supports_json_schema=spec.supports_json_schema,
        output_schema=spec.output_schema,
    )
    return jsonl_line(custom_id, final)


def check_line_sizes(spec: PassRequestSpec, items: Iterable[tuple[str, Mapping[str, Any]]], max_bytes: int) -> None:
    """Refuse up front an item whose line could never fit in a provider batch file."""
    for index, (custom_id, body) in enumerate(items):
        size = len(request_line(spec, custom_id, body))
        if size > max_bytes:
            raise LineTooLarge(line_index=index, size=size, max_bytes=max_bytes, custom_id=custom_id)
