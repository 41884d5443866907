"""What a pass's output must look like to count as a success."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jsonschema_rs

from service.pipeline.schemas import compact_json, schema_validator

JSON_FORMAT_TYPES = frozenset({"json_object", "json_schema"})


@dataclass(frozen=True)
class OutputExpectation:
    json_required: bool
    schema: dict[str, Any] | None
    # The line asked for strict output: optional properties may come back null and are removed before the
    # answer is checked against the caller's schema.
    strip_nulls: bool = False

    @cached_property
    def key(self) -> bytes:
        """What identifies the expectation (for reuse: an answer is only taken by a request judged the same way)."""
        text = compact_json([self.json_required, self.strip_nulls, self.schema], sort_keys=True)
        return hashlib.sha256(text).digest()

    @cached_property
    def validator(self) -> jsonschema_rs.Validator:
        """The compiled `schema`, looked up once per expectation rather than once per output. Raises
        SchemaInvalid (then again at the next use: a failure is not kept)."""
        assert self.schema is not None
        return schema_validator(self.schema)


def expectation_for(
    request: Mapping[str, Any], output_schema: Mapping[str, Any] | None, *, strict_used: bool = False
) -> OutputExpectation:
    """``request`` is the merged body before model adaptation (``{**params, **item_body}``)."""
    format_type = response_format_type(request)
    schema = effective_schema(output_schema, request)
    return OutputExpectation(
        json_required=output_schema is not None or format_type in JSON_FORMAT_TYPES,
        schema=copy.deepcopy(dict(schema)) if schema is not None else None,
        strip_nulls=strict_used and schema is not None,
    )


def effective_schema(output_schema: Mapping[str, Any] | None, request: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The schema answers are judged by: the batch's output_schema, else the request's json_schema
    response_format's (the one rule for it)."""
    return output_schema if output_schema is not None else response_format_schema(request)


def response_format_type(request: Mapping[str, Any]) -> str | None:
    response_format = request.get("response_format")
    if not isinstance(response_format, Mapping):
        return None
    format_type = response_format.get("type")
    return format_type if isinstance(format_type, str) else None


def response_format_schema(request: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The schema of a ``json_schema`` response_format, or None."""
    if response_format_type(request) != "json_schema":
        return None
    json_schema = request["response_format"].get("json_schema")
    if not isinstance(json_schema, Mapping):
        return None
    schema = json_schema.get("schema")
    return schema if isinstance(schema, Mapping) else None
