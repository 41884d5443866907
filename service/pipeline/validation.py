"""Checks on a submission before anything is stored; each failure names the offending item or field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema import SchemaError

from service.pipeline.errors import DuplicateCustomId, InvalidSchema, SubmissionError
from service.pipeline.expectations import schema_validator

RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")
_RESPONSE_FORMAT_TYPE_LIST = ", ".join(RESPONSE_FORMAT_TYPES)


def validate_items(items: Sequence[Mapping[str, Any]]) -> None:
    if not items:
        raise SubmissionError("items must not be empty", field="items")
    first_index_of: dict[str, int] = {}
    for index, item in enumerate(items):
        custom_id = _validated_custom_id(item, index)
        if custom_id in first_index_of:
            raise DuplicateCustomId(custom_id, first_index=first_index_of[custom_id], duplicate_index=index)
        first_index_of[custom_id] = index
        _validate_body(item.get("body"), f"items[{index}].body", custom_id)


def validate_output_schema(schema: Mapping[str, Any] | None) -> None:
    if schema is None:
        return
    if not isinstance(schema, Mapping):
        raise InvalidSchema("output_schema must be a JSON object (a JSON Schema)", field="output_schema")
    _validate_schema(schema, "output_schema")


def validate_params(params: Mapping[str, Any], field: str) -> None:
    """Checks ``params``, ``fallback_params`` or a retry's ``params``; ``field`` names which."""
    if not isinstance(params, Mapping):
        raise SubmissionError(f"{field} must be a JSON object", field=field)
    if "model" in params:
        raise SubmissionError(
            f'{field} must not contain "model": the batch-level "model" (or "fallback_model") chooses it',
            field=f"{field}.model",
        )
    if "messages" in params:
        raise SubmissionError(
            f'{field} must not contain "messages": messages belong in each item\'s body',
            field=f"{field}.messages",
        )
    _validate_batchable_options(params, field, field)


def _validated_custom_id(item: Any, index: int) -> str:
    if not isinstance(item, Mapping):
        raise SubmissionError(f"items[{index}] must be a JSON object", field=f"items[{index}]")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id.strip():
        raise SubmissionError(f"items[{index}].custom_id must be a non-empty string", field=f"items[{index}].custom_id")
    return custom_id


def _validate_body(body: Any, field: str, custom_id: str) -> None:
    where = f"{field} (custom_id {custom_id!r})"
    if not isinstance(body, Mapping):
        raise SubmissionError(f"{where} must be a JSON object", field=field)
    if "model" in body:
        raise SubmissionError(
            f'{where} must not contain "model": the batch-level "model" (or "fallback_model") chooses it',
            field=f"{field}.model",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SubmissionError(f'{where} must have a non-empty "messages" list', field=f"{field}.messages")
    for position, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise SubmissionError(
                f'{where}: messages[{position}] must be an object with a string "role"',
                field=f"{field}.messages[{position}]",
            )
    _validate_batchable_options(body, field, where)


def _validate_batchable_options(options: Mapping[str, Any], field: str, where: str) -> None:
    """Options that the Batch API cannot honour, shared by params and item bodies."""
    if options.get("stream") is True:
        raise SubmissionError(f'{where}: "stream": true is not supported in a batch', field=f"{field}.stream")
    n = options.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise SubmissionError(f'{where}: "n" must be 1 (Groq supports one choice)', field=f"{field}.n")
    if "response_format" in options:
        _validate_response_format(options["response_format"], f"{field}.response_format", where)


def _validate_response_format(response_format: Any, field: str, where: str) -> None:
    if response_format is None:
        return
    format_type = response_format.get("type") if isinstance(response_format, Mapping) else None
    if format_type not in RESPONSE_FORMAT_TYPES:
        raise SubmissionError(
            f'{where}: response_format must be an object whose "type" is one of {_RESPONSE_FORMAT_TYPE_LIST}',
            field=field,
        )
    if format_type != "json_schema":
        return
    json_schema = response_format.get("json_schema")
    schema = json_schema.get("schema") if isinstance(json_schema, Mapping) else None
    if not isinstance(schema, Mapping):
        raise InvalidSchema(
            f'{where}: a json_schema response_format needs "json_schema": {{"name": ..., "schema": {{...}}}}',
            field=f"{field}.json_schema",
        )
    _validate_schema(schema, f"{field}.json_schema.schema")


def _validate_schema(schema: Mapping[str, Any], field: str) -> None:
    try:
        schema_validator(schema)
    except SchemaError as problem:
        location = problem.json_path.replace("$", field, 1)
        raise InvalidSchema(
            f"{field} is not a valid JSON Schema (draft 2020-12): at {location}: {problem.message}",
            field=field,
        ) from None
