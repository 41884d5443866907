"""OpenAI's rules for a ``strict: true`` JSON schema (structured outputs).

Every object lists all its properties in ``required`` and has ``additionalProperties: false``; the root is an
object, not ``anyOf``; only local ``$ref``s (recursion allowed); types string, number, boolean, integer,
object, array, null, with enum/const/anyOf. Keywords: string ``pattern``/``format`` (a fixed list of formats),
number bounds and ``multipleOf``, array ``minItems``/``maxItems``. ``allOf``, ``not``, ``dependent*``,
``if/then/else`` are refused; other keywords outside that list are refused too unless
``EmulatorConfig.strict_unlisted_keywords == "ignore"`` (OpenAI's list is what it documents, not what it checks).
Size limits: 5,000 properties, 10 levels of nesting, 120,000 characters of names/enums/consts, 1,000 enum
values, 15,000 characters for a string enum of more than 250 values.
"""

from __future__ import annotations

from typing import Any

import orjson

TYPES = frozenset({"string", "number", "boolean", "integer", "object", "array", "null"})
FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
REFUSED = frozenset({"allOf", "not", "dependentRequired", "dependentSchemas", "if", "then", "else"})
SUPPORTED = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf", "$ref",
        "$defs", "definitions", "pattern", "format", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
        "exclusiveMinimum", "minItems", "maxItems",
    }
)  # fmt: skip
ANNOTATIONS = frozenset({"description", "title", "$schema", "$id", "$comment", "default", "examples"})
MAX_PROPERTIES = 5_000
MAX_DEPTH = 10
MAX_TEXT = 120_000
MAX_ENUM = 1_000
LARGE_ENUM = 250
LARGE_ENUM_TEXT = 15_000


class StrictSchemaError(ValueError):
    pass


def _context(path: tuple[str, ...]) -> str:
    return f"In context={path!r}, "


class _Walk:
    def __init__(self, refuse_unlisted: bool) -> None:
        self.refuse_unlisted = refuse_unlisted
        self.properties = 0
        self.text = 0
        self.enum_values = 0

    def node(self, node: Any, path: tuple[str, ...], depth: int) -> None:
        if not isinstance(node, dict):
            raise StrictSchemaError(f"{_context(path)}schema must be an object.")
        if depth > MAX_DEPTH:
            raise StrictSchemaError(f"{_context(path)}the schema is nested more than {MAX_DEPTH} levels deep.")
        for key in node:
            if key in REFUSED or (self.refuse_unlisted and key not in SUPPORTED and key not in ANNOTATIONS):
                raise StrictSchemaError(f"{_context(path)}'{key}' is not permitted.")
        ref = node.get("$ref")
        if ref is not None and (not isinstance(ref, str) or not ref.startswith("#")):
            raise StrictSchemaError(f"{_context(path)}only local $ref values are supported, got {ref!r}.")
        self.types(node, path)
        self.values(node, path)
        if node.get("format") is not None and node["format"] not in FORMATS:
            raise StrictSchemaError(f"{_context(path)}'format' '{node['format']}' is not supported.")
        if "properties" in node or node.get("type") == "object":
            self.object(node, path, depth)
        if isinstance(node.get("items"), dict):
            self.node(node["items"], (*path, "items"), depth + 1)
        if isinstance(node.get("anyOf"), list):
            for index, branch in enumerate(node["anyOf"]):
                self.node(branch, (*path, "anyOf", str(index)), depth + 1)
        for defs in ("$defs", "definitions"):
            if isinstance(node.get(defs), dict):
                for name, sub in node[defs].items():
                    self.text += len(name)
                    self.node(sub, (*path, defs, name), depth)

    def types(self, node: dict[str, Any], path: tuple[str, ...]) -> None:
        declared = node.get("type")
        listed = declared if isinstance(declared, list) else [declared] if declared is not None else []
        for item in listed:
            if item not in TYPES:
                raise StrictSchemaError(f"{_context(path)}type {item!r} is not supported.")
        if declared is None and not any(k in node for k in ("$ref", "anyOf", "enum", "const")):
            raise StrictSchemaError(f"{_context(path)}schema must have a 'type' key.")

    def values(self, node: dict[str, Any], path: tuple[str, ...]) -> None:
        if "const" in node:
            self.text += len(orjson.dumps(node["const"]))
        enum = node.get("enum")
        if isinstance(enum, list):
            self.enum_values += len(enum)
            size = sum(len(v) if isinstance(v, str) else len(orjson.dumps(v)) for v in enum)
            self.text += size
            if len(enum) > LARGE_ENUM and all(isinstance(v, str) for v in enum) and size > LARGE_ENUM_TEXT:
                message = (
                    f"a string enum with more than {LARGE_ENUM} values may total at most "
                    f"{LARGE_ENUM_TEXT:,} characters."
                )
                raise StrictSchemaError(_context(path) + message)

    def object(self, node: dict[str, Any], path: tuple[str, ...], depth: int) -> None:
        if node.get("additionalProperties") is not False:
            raise StrictSchemaError(
                f"{_context(path)}'additionalProperties' is required to be supplied and to be false."
            )
        properties = node.get("properties") or {}
        required = node.get("required")
        required_list = required if isinstance(required, list) else []
        missing = [name for name in properties if name not in required_list]
        extra = [name for name in required_list if name not in properties]
        if not isinstance(required, list) or missing or extra:
            tail = (
                f" Missing '{missing[0]}'."
                if missing
                else f" Extra required key '{extra[0]}' supplied."
                if extra
                else ""
            )
            raise StrictSchemaError(
                f"{_context(path)}'required' is required to be supplied and to be an array including every key "
                f"in properties.{tail}"
            )
        for name, sub in properties.items():
            self.properties += 1
            self.text += len(name)
            self.node(sub, (*path, "properties", name), depth + 1)


def check_strict(schema: Any, *, refuse_unlisted: bool = True) -> None:
    """Raise StrictSchemaError (its text is OpenAI's, after ``Invalid schema for response_format 'name': ``)."""
    if not isinstance(schema, dict) or schema.get("type") != "object" or "anyOf" in schema:
        got = schema.get("type") if isinstance(schema, dict) else None
        raise StrictSchemaError(f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{got}\"'.")
    walk = _Walk(refuse_unlisted)
    walk.node(schema, (), 1)
    if walk.properties > MAX_PROPERTIES:
        raise StrictSchemaError(
            f"the schema has {walk.properties:,} properties; at most {MAX_PROPERTIES:,} are allowed."
        )
    if walk.enum_values > MAX_ENUM:
        raise StrictSchemaError(f"the schema has {walk.enum_values:,} enum values; at most {MAX_ENUM:,} are allowed.")
    if walk.text > MAX_TEXT:
        message = f"the property names, enum values and consts total {walk.text:,} characters; at most {MAX_TEXT:,}."
        raise StrictSchemaError(message)
