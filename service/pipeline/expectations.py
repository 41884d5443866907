"""What a pass's output must look like to count as a success, and cached schema validators."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

JSON_FORMAT_TYPES = frozenset({"json_object", "json_schema"})


@dataclass(frozen=True)
class OutputExpectation:
    json_required: bool
    schema: dict[str, Any] | None


def expectation_for(request: Mapping[str, Any], output_schema: Mapping[str, Any] | None) -> OutputExpectation:
    """``request`` is the merged body before model adaptation (``{**params, **item_body}``)."""
    format_type = response_format_type(request)
    schema = output_schema if output_schema is not None else response_format_schema(request)
    return OutputExpectation(
        json_required=output_schema is not None or format_type in JSON_FORMAT_TYPES,
        schema=copy.deepcopy(dict(schema)) if schema is not None else None,
    )


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


def schema_validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    """A compiled validator, cached by the schema's content.

    Raises ``jsonschema.SchemaError`` when the schema itself is invalid.
    """
    return _validator_for_key(compact_json(schema, sort_keys=True))


def compact_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact JSON; any Mapping is accepted, not only dict."""
    option = orjson.OPT_SORT_KEYS if sort_keys else 0
    return orjson.dumps(value, option=option, default=_mapping_as_dict)


def _mapping_as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# No retrieval: a client's "$ref": "http://..." must never make us fetch a URL (SSRF, hangs).
_NO_RETRIEVAL = Registry()


@lru_cache(maxsize=256)
def _validator_for_key(schema_json: bytes) -> Draft202012Validator:
    schema = orjson.loads(schema_json)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, registry=_NO_RETRIEVAL)
    resolver = _NO_RETRIEVAL.resolver_with_root(DRAFT202012.create_resource(schema))
    for ref in _refs(schema):
        if not ref.startswith("#"):
            raise SchemaError(f"$ref {ref!r} points outside the schema; only local references (#/$defs/...) work")
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise SchemaError(f"$ref {ref!r} does not resolve within the schema") from None
    return validator


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)
