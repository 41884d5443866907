"""Building the chat-completions body of each batch line: merge, adapt to the pass's model, serialise once.

A line is built once per item per pass. Nothing here deep-copies or mutates what it is given: the merged body
shares the item's and the params' values, and adaptation builds new containers only for what it changes.
The body is serialised with sorted keys, so the same request is the same bytes (what reuse hashes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson

from service.pipeline.catalogue import StructuredOutput
from service.pipeline.expectations import (
    OutputExpectation,
    effective_schema,
    response_format_type,
)
from service.pipeline.schemas import compact_json
from service.pipeline.strict import VALIDATION_ONLY, derive_strict_schema

BATCH_URL = "/v1/chat/completions"
SCHEMA_INSTRUCTION_PREFIX = "Respond with only a JSON object that validates against this JSON Schema:\n"
JSON_INSTRUCTION = "Respond with only a JSON object."
OUTPUT_SCHEMA_NAME = "output"
# What a line adds around its body: the custom_id, method and url keys (custom_id itself is counted apart).
LINE_OVERHEAD = len(b'{"custom_id":"","method":"POST","url":"/v1/chat/completions","body":}\n')
MODEL_SLACK = 300  # the "model" key and value, commas, a new system message's wrapping
SHORT_LINE_ID_LENGTH = 21  # "i" and an item id of 20 digits at most


def merge_request(
    item_body: Mapping[str, Any],
    params: Mapping[str, Any] | None,
    pass_params: Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`{**params, **item_body, **pass_params, **overrides}` without `model`; values are shared, not copied."""
    merged = {**(params or {}), **item_body, **(pass_params or {}), **(overrides or {})}
    merged.pop("model", None)
    return merged


@lru_cache(maxsize=256)
def _strict_format(schema_json: bytes, name: str, keep: frozenset[str]) -> bytes | None:
    derived = derive_strict_schema(orjson.loads(schema_json), keep)
    if derived is None:
        return None
    return orjson.dumps({"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": derived}})


def strict_response_format(
    schema: Mapping[str, Any], name: str = OUTPUT_SCHEMA_NAME, keep: frozenset[str] = VALIDATION_ONLY
) -> dict[str, Any] | None:
    """The strict-mode response_format for `schema` (a fresh object each call), or None when the schema's
    structure cannot be expressed in strict mode. `keep`: the validation keywords the provider's strict mode
    takes."""
    encoded = _strict_format(compact_json(schema, sort_keys=True), name, keep)
    return None if encoded is None else orjson.loads(encoded)


def adapt_to_model(
    request: Mapping[str, Any],
    *,
    model: str,
    structured_output: StructuredOutput,
    output_schema: Mapping[str, Any] | None,
    strict: bool = False,
    strict_keywords: frozenset[str] = VALIDATION_ONLY,
) -> tuple[dict[str, Any], bool]:
    """The final body for `model` and whether it asks for strict structured output: structured-output options
    the model accepts, strict when asked for and expressible, plus prompt hints for JSON mode."""
    body = {key: value for key, value in request.items() if key != "model"}
    schema = effective_schema(output_schema, request)
    format_type = response_format_type(request)
    if output_schema is not None and body.get("response_format") is None:
        body["response_format"] = _json_schema_format(output_schema)
        format_type = "json_schema"
    strict_used = False
    if format_type == "json_schema" and structured_output == StructuredOutput.JSON_OBJECT:
        body["response_format"] = {"type": "json_object"}
        body["messages"] = _with_instruction(body.get("messages"), _json_instruction(schema))
    elif format_type == "json_schema" and schema is not None:
        if strict and structured_output == StructuredOutput.STRICT:
            name = _format_name(body.get("response_format"))
            strict_format = strict_response_format(schema, name, strict_keywords)
            if strict_format is not None:
                body["response_format"] = strict_format
                strict_used = True
    elif format_type == "json_object" and not _mentions_json(body.get("messages")):
        # Groq rejects JSON mode unless the prompt contains the word "JSON".
        body["messages"] = _with_instruction(body.get("messages"), _json_instruction(schema))
    return {"model": model, **body}, strict_used


def _format_name(response_format: Any) -> str:
    spec = response_format.get("json_schema") if isinstance(response_format, Mapping) else None
    name = spec.get("name") if isinstance(spec, Mapping) else None
    return name if isinstance(name, str) and name else OUTPUT_SCHEMA_NAME


def body_bytes(body: Mapping[str, Any]) -> bytes:
    """The body as it is sent: compact JSON with sorted keys (the same request is the same bytes)."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=_mapping_as_dict)


def _mapping_as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def jsonl_line(custom_id: str, encoded_body: bytes, url: str = BATCH_URL) -> bytes:
    """One line of a batch input file (OpenAI's shape, which Groq and the compatible endpoints share), newline
    included."""
    return (
        b'{"custom_id":'
        + orjson.dumps(custom_id)
        + b',"method":"POST","url":'
        + orjson.dumps(url)
        + b',"body":'
        + (encoded_body + b"}\n")
    )


def request_hash(tenant: str, provider: str, encoded_body: bytes, expectation: OutputExpectation) -> str:
    """What reuse looks a request up by: the tenant, the provider, the exact body (its model included) and what
    its answer must be (two schemas can make the same line: strict derivations that coincide, or JSON mode with the
    schema only in our own check). The provider, because two providers may serve the same model name."""
    head = tenant.encode() + b"\x00" + provider.encode() + b"\x00"
    return hashlib.sha256(head + expectation.key + encoded_body).hexdigest()


def _json_schema_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": OUTPUT_SCHEMA_NAME, "strict": False, "schema": schema}}


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
