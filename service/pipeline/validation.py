"""Checks on a submission before anything is stored; each failure names the offending item or field.

Items are checked one at a time as they are read (`ItemChecker`), so a bad one is refused as soon as it is
seen, whatever follows it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.pipeline.errors import DuplicateCustomId, InvalidSchema, LimitExceeded, SubmissionError
from service.pipeline.schemas import SchemaInvalid, compact_json, schema_validator

RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")
_RESPONSE_FORMAT_TYPE_LIST = ", ".join(RESPONSE_FORMAT_TYPES)
CUSTOM_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:/#-]+")
CUSTOM_ID_CHARACTERS = "ASCII letters, digits and _ . : - / #"
TOKEN_FIELDS = ("max_completion_tokens", "max_tokens")
MAX_TOKENS_VALUE = 10**7


@dataclass
class ItemChecker:
    """Checks items one by one: shape, custom_id rules and uniqueness, body, per-item metadata."""

    max_custom_id_length: int = 512
    max_metadata_keys: int = 16
    max_metadata_bytes: int = 1024
    seen: dict[str, int] = field(default_factory=dict)

    def check(self, item: Any, index: int, metadata_size: int = 0) -> tuple[str, Mapping[str, Any], Any]:
        """(custom_id, body, metadata) of a valid item; SubmissionError naming the field otherwise.
        `metadata_size`: the JSON bytes of the item's metadata, measured by the caller."""
        where = f"items[{index}]"
        if not isinstance(item, Mapping):
            raise SubmissionError(f"{where} must be a JSON object with custom_id and body", field=where)
        unknown = sorted(set(item) - {"custom_id", "body", "metadata"})
        if unknown:
            raise SubmissionError(
                f'{where} has an unknown field "{unknown[0]}" (an item has custom_id, body and metadata)',
                field=f"{where}.{unknown[0]}",
            )
        custom_id = self._custom_id(item.get("custom_id"), where)
        if custom_id in self.seen:
            raise DuplicateCustomId(custom_id, first_index=self.seen[custom_id], duplicate_index=index)
        self.seen[custom_id] = index
        body = item.get("body")
        validate_body(body, f"{where}.body", custom_id)
        metadata = item.get("metadata")
        self._metadata(metadata, f"{where}.metadata", metadata_size)
        assert isinstance(body, Mapping)
        return custom_id, body, metadata

    def _custom_id(self, custom_id: Any, where: str) -> str:
        field_name = f"{where}.custom_id"
        if not isinstance(custom_id, str) or not custom_id:
            raise SubmissionError(f"{field_name} must be a non-empty string", field=field_name)
        if len(custom_id) > self.max_custom_id_length:
            raise LimitExceeded(
                f"{field_name} is {len(custom_id)} characters long; at most MAX_CUSTOM_ID_LENGTH = "
                f"{self.max_custom_id_length}",
                field=field_name,
                setting="MAX_CUSTOM_ID_LENGTH",
                maximum=self.max_custom_id_length,
            )
        if not CUSTOM_ID_PATTERN.fullmatch(custom_id):
            raise SubmissionError(
                f"{field_name} {custom_id[:80]!r} may hold only {CUSTOM_ID_CHARACTERS}", field=field_name
            )
        return custom_id

    def _metadata(self, metadata: Any, where: str, size: int) -> None:
        if metadata is None:
            return
        if not isinstance(metadata, Mapping):
            raise SubmissionError(f"{where} must be a JSON object", field=where)
        if len(metadata) > self.max_metadata_keys:
            raise LimitExceeded(
                f"{where} has {len(metadata)} keys; at most MAX_ITEM_METADATA_KEYS = {self.max_metadata_keys}",
                field=where,
                setting="MAX_ITEM_METADATA_KEYS",
                maximum=self.max_metadata_keys,
            )
        if size > self.max_metadata_bytes:
            raise LimitExceeded(
                f"{where} is {size} bytes of JSON; at most MAX_ITEM_METADATA_BYTES = {self.max_metadata_bytes}",
                field=where,
                setting="MAX_ITEM_METADATA_BYTES",
                maximum=self.max_metadata_bytes,
            )


def output_limit(options: Mapping[str, Any]) -> tuple[str, int] | None:
    """(name, tokens) of the output limit a provider applies to a body or params: max_completion_tokens when set,
    else max_tokens; None when neither is a whole number."""
    for name in TOKEN_FIELDS:
        value = options.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return name, value
    return None


def validate_output_schema(schema: Any) -> None:
    if schema is None:
        return
    if not isinstance(schema, Mapping):
        raise InvalidSchema("output_schema must be a JSON object (a JSON Schema)", field="output_schema")
    _validate_schema(schema, "output_schema")


def validate_params(params: Any, field: str) -> None:
    """Checks `params`, a tier's params or a retry's `params`; `field` names which."""
    if not isinstance(params, Mapping):
        raise SubmissionError(f"{field} must be a JSON object", field=field)
    _refuse_model(params, field, field)
    if "messages" in params:
        raise SubmissionError(
            f'{field} must not contain "messages": messages belong in each item\'s body',
            field=f"{field}.messages",
        )
    _validate_batchable_options(params, field, field)


def validate_body(body: Any, field: str, custom_id: str) -> None:
    where = f"{field} (custom_id {custom_id!r})"
    if not isinstance(body, Mapping):
        raise SubmissionError(f"{where} must be a JSON object", field=field)
    _refuse_model(body, field, where)
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


def _refuse_model(options: Mapping[str, Any], field: str, where: str) -> None:
    if "model" in options:
        raise SubmissionError(
            f'{where} must not contain "model": the batch\'s cascade (or "model") chooses it',
            field=f"{field}.model",
        )


def _validate_batchable_options(options: Mapping[str, Any], field: str, where: str) -> None:
    """Options that the Batch API cannot honour, shared by params and item bodies."""
    if "stream" in options and options["stream"] is not False:  # 1, "true", null: not the JSON false
        raise SubmissionError(
            f'{where}: "stream" must be false or left out: streaming is not supported in a batch',
            field=f"{field}.stream",
        )
    n = options.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise SubmissionError(f'{where}: "n" must be 1 (Groq supports one choice)', field=f"{field}.n")
    for name in TOKEN_FIELDS:
        value = options.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS_VALUE
        ):
            raise SubmissionError(
                f'{where}: "{name}" must be a whole number of tokens from 1 to {MAX_TOKENS_VALUE}',
                field=f"{field}.{name}",
            )
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
    except SchemaInvalid as problem:
        location = problem.location.replace("$", field, 1)
        raise InvalidSchema(
            f"{field} is not a valid JSON Schema (draft 2020-12): at {location}: {problem.message}",
            field=field,
        ) from None


def validate_items(items: Any, checker: ItemChecker | None = None) -> None:
    """Check a whole list of items at once (what a stream is checked item by item)."""
    if not isinstance(items, list) or not items:
        raise SubmissionError("items must not be empty", field="items")
    checker = checker or ItemChecker()
    for index, item in enumerate(items):
        metadata = item.get("metadata") if isinstance(item, Mapping) else None
        checker.check(item, index, len(compact_json(metadata)) if metadata is not None else 0)
