"""Strict structured output: the schema Groq's constrained decoding accepts, derived from the caller's.

Strict mode (`json_schema` with `strict: true`, GROQ_BATCH_API.md §9) wants every property listed in
`required`, `additionalProperties: false` on every object, and optional fields written as nullable. The
derivation does exactly that and keeps the keywords that only validate (lengths, bounds, patterns, formats):
the model reads them, and whether Groq's decoding enforces them is uncertain, so the answer is still checked
here against the caller's own schema, after `strip_introduced_nulls` removed the nulls the derivation let in
for optional properties. A schema whose structure strict mode cannot express (oneOf, allOf, not,
conditionals, pattern or schema-valued additional properties, tuples...) gets None: that pass stays best
effort.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Kept as they are: structure and documentation.
STRUCTURAL = frozenset({"type", "properties", "required", "items", "enum", "const", "anyOf", "$ref", "$defs"})
DOCUMENTATION = frozenset({"description", "title", "examples", "default", "$comment", "$schema", "$id"})
# Kept as they are too (and validated here in any case).
VALIDATION_ONLY = frozenset(
    {
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
    }
)
# What OpenAI's strict mode takes of them (PROVIDERS_BATCH_API.md A6); the others are dropped from its lines.
OPENAI_VALIDATION = frozenset(
    {
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
    }
)
MAX_NODES = 10_000


class NotExpressible(Exception):
    """The schema's structure has no strict-mode form; the reason names the keyword and where it stands."""


def derive_strict_schema(schema: Mapping[str, Any], keep: frozenset[str] = VALIDATION_ONLY) -> dict[str, Any] | None:
    """The strict-mode form of `schema`, or None when its structure cannot be expressed in strict mode. `keep`:
    the validation keywords the provider's strict mode accepts (the others are left out of the line; the answer
    is still checked against them here)."""
    try:
        derived: dict[str, Any] = _Deriver(keep).node(schema, "$", root=True)
    except NotExpressible:
        return None
    return derived


def strict_refusal(schema: Mapping[str, Any]) -> str | None:
    """Why `schema` stays best effort, or None when it has a strict form."""
    try:
        _Deriver().node(schema, "$", root=True)
    except NotExpressible as reason:
        return str(reason)
    return None


class _Deriver:
    def __init__(self, keep: frozenset[str] = VALIDATION_ONLY) -> None:
        self.nodes = 0
        self.keep = keep

    def node(self, schema: Any, where: str, *, root: bool = False) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise NotExpressible(f"the schema has more than {MAX_NODES} subschemas")
        if isinstance(schema, bool):
            raise NotExpressible(f"{where} is a boolean schema")
        if not isinstance(schema, Mapping):
            raise NotExpressible(f"{where} is not a schema object")
        derived: dict[str, Any] = {}
        for key, value in schema.items():
            if key == "additionalProperties":
                continue  # with the object, below
            if key in VALIDATION_ONLY:
                if key in self.keep:
                    derived[key] = value
                continue
            if key in DOCUMENTATION:
                if key not in ("$schema", "$id", "default", "examples"):
                    derived[key] = value
                continue
            if key == "definitions" and root:
                derived["$defs"] = {**derived.get("$defs", {}), **self._defs(value, f"{where}.definitions")}
                continue
            if key not in STRUCTURAL:
                raise NotExpressible(f"{where} uses {key!r}, which strict mode does not support")
            if key == "$defs":
                if not root:
                    raise NotExpressible(f"{where} has $defs below the root")
                derived["$defs"] = {**derived.get("$defs", {}), **self._defs(value, f"{where}.$defs")}
            elif key == "properties":
                continue  # with the object, below
            elif key == "items":
                if not isinstance(value, Mapping):
                    raise NotExpressible(f"{where}.items is not a single schema (tuples are not supported)")
                derived["items"] = self.node(value, f"{where}.items")
            elif key == "anyOf":
                if not isinstance(value, list) or not value:
                    raise NotExpressible(f"{where}.anyOf is not a list of schemas")
                derived["anyOf"] = [self.node(branch, f"{where}.anyOf[{i}]") for i, branch in enumerate(value)]
            elif key == "$ref":
                derived["$ref"] = str(value).replace("#/definitions/", "#/$defs/")
            else:
                derived[key] = value
        if _is_object(schema):
            self._object(schema, derived, where)
        return derived

    def _defs(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise NotExpressible(f"{where} is not an object of schemas")
        return {name: self.node(sub, f"{where}.{name}") for name, sub in value.items()}

    def _object(self, schema: Mapping[str, Any], derived: dict[str, Any], where: str) -> None:
        extra = schema.get("additionalProperties", True)
        properties = schema.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise NotExpressible(f"{where}.properties is not an object")
        if isinstance(extra, Mapping) or (extra is True and not properties):
            raise NotExpressible(f"{where} is an object with free-form keys, which strict mode cannot express")
        required = set(schema.get("required") or [])
        derived_properties: dict[str, Any] = {}
        for name, sub in properties.items():
            prop = self.node(sub, f"{where}.properties.{name}")
            derived_properties[name] = prop if name in required else _nullable(prop)
        derived["properties"] = derived_properties
        derived["required"] = list(derived_properties)
        derived["additionalProperties"] = False
        if "type" not in derived:
            derived["type"] = "object"


def _is_object(schema: Mapping[str, Any]) -> bool:
    declared = schema.get("type")
    if declared == "object" or (isinstance(declared, list) and "object" in declared):
        return True
    return declared is None and ("properties" in schema or "required" in schema)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional property as strict mode writes it: its schema or null."""
    declared = schema.get("type")
    if isinstance(declared, str) and "anyOf" not in schema and "$ref" not in schema:
        widened = {**schema, "type": [declared, "null"]}
        if "enum" in schema:
            widened["enum"] = [*schema["enum"], None]
        return widened
    if isinstance(declared, list) and "anyOf" not in schema and "$ref" not in schema:
        widened = {**schema, "type": declared if "null" in declared else [*declared, "null"]}
        if "enum" in schema and None not in schema["enum"]:
            widened["enum"] = [*schema["enum"], None]
        return widened
    return {"anyOf": [schema, {"type": "null"}]}


def strip_introduced_nulls(instance: Any, schema: Mapping[str, Any]) -> Any:
    """`instance` without the nulls strict mode produced for optional properties the caller's `schema` does not
    let be null, so it can be validated against that schema (and handed back in the shape asked for)."""
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _strip(instance, schema, defs, 0)


def _resolve(schema: Any, defs: Mapping[str, Any], depth: int) -> Any:
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and depth < 64:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in defs:
            return schema
        schema, depth = defs[name], depth + 1
    return schema


def _allows_null(schema: Any, defs: Mapping[str, Any]) -> bool:
    schema = _resolve(schema, defs, 0)
    if not isinstance(schema, Mapping):
        return schema is True
    declared = schema.get("type")
    if declared == "null" or (isinstance(declared, list) and "null" in declared):
        return True
    if "enum" in schema and None in schema["enum"]:
        return True
    return any(_allows_null(branch, defs) for branch in schema.get("anyOf") or [])


def _strip(instance: Any, schema: Any, defs: Mapping[str, Any], depth: int) -> Any:
    if depth > 128:
        return instance
    schema = _resolve(schema, defs, 0)
    if not isinstance(schema, Mapping):
        return instance
    if "anyOf" in schema:
        kind = "object" if isinstance(instance, dict) else "array" if isinstance(instance, list) else None
        for branch in schema["anyOf"]:
            resolved = _resolve(branch, defs, 0)
            if kind is not None and isinstance(resolved, Mapping) and _kind_of(resolved) == kind:
                return _strip(instance, resolved, defs, depth + 1)
        return instance
    if isinstance(instance, dict):
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        stripped: dict[str, Any] = {}
        for key, value in instance.items():
            sub = properties.get(key)
            if value is None and key not in required and sub is not None and not _allows_null(sub, defs):
                continue
            stripped[key] = _strip(value, sub, defs, depth + 1) if sub is not None else value
        return stripped
    if isinstance(instance, list) and isinstance(schema.get("items"), Mapping):
        return [_strip(value, schema["items"], defs, depth + 1) for value in instance]
    return instance


def _kind_of(schema: Mapping[str, Any]) -> str | None:
    declared = schema.get("type")
    if declared in ("object", "array"):
        return str(declared)
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None
