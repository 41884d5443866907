"""Anthropic's limits on a structured-output schema (``output_config.format``).

Refused: recursive definitions; numeric constraints (``minimum``, ``maximum``, ``exclusiveMinimum``,
``exclusiveMaximum``, ``multipleOf``); string length (``minLength``, ``maxLength``); array constraints beyond
``minItems`` of 0 or 1; an object whose ``additionalProperties`` is not false; an external ``$ref``; more than
24 optional properties or 16 union-typed ones (``["string", "null"]`` and ``anyOf`` count) across the schema.
"""

from __future__ import annotations

from typing import Any

NUMERIC = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
LENGTH = ("minLength", "maxLength", "maxItems")
MAX_OPTIONAL = 24
MAX_UNIONS = 16
TOO_COMPLEX = "Schema is too complex for compilation. Simplify the schema and try again."
RECURSIVE = "Too many recursive definitions in schema"


class SchemaRefused(ValueError):
    pass


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("$ref"), str):
                found.add(item["$ref"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _recursive(schema: dict[str, Any]) -> bool:
    """A definition that reaches itself through local ``$ref``s (the root ``#`` included)."""
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            defs.update({f"#/{key}/{name}": sub for name, sub in schema[key].items()})
    if "#" in _refs({k: v for k, v in schema.items() if k not in ("$defs", "definitions")}):
        return True
    graph = {ref: _refs(sub) for ref, sub in defs.items()}
    for start in graph:
        seen: set[str] = set()
        stack = list(graph[start])
        while stack:
            ref = stack.pop()
            if ref == start or ref == "#":
                return True
            if ref not in seen and ref in graph:
                seen.add(ref)
                stack.extend(graph[ref])
    return False


def check_schema(schema: Any) -> None:
    """Raise SchemaRefused with Anthropic's message for a schema over its limits."""
    if not isinstance(schema, dict):
        raise SchemaRefused("output_config.format.schema: Input should be a valid dictionary")
    if _recursive(schema):
        raise SchemaRefused(RECURSIVE)
    optional = unions = 0
    stack: list[tuple[Any, str]] = [(schema, "#")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, list):
            stack.extend((item, f"{path}/{i}") for i, item in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        for keyword in (*NUMERIC, *LENGTH):
            if keyword in node and not isinstance(node[keyword], dict):
                raise SchemaRefused(f"output_config.format.schema: '{keyword}' is not supported (at {path})")
        min_items = node.get("minItems")
        if isinstance(min_items, int) and min_items not in (0, 1):
            raise SchemaRefused(f"output_config.format.schema: 'minItems' may only be 0 or 1 (at {path})")
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise SchemaRefused(f"output_config.format.schema: external $ref '{ref}' is not supported")
        properties = node.get("properties")
        if isinstance(properties, dict) or node.get("type") == "object":
            if node.get("additionalProperties") is not False:
                message = f"output_config.format.schema: 'additionalProperties' must be false for objects (at {path})"
                raise SchemaRefused(message)
            required = node.get("required") or []
            optional += sum(1 for name in (properties or {}) if name not in required)
        declared = node.get("type")
        if (isinstance(declared, list) and len(declared) > 1) or isinstance(node.get("anyOf"), list):
            unions += 1
        stack.extend((value, f"{path}/{key}") for key, value in node.items() if isinstance(value, dict | list))
    if optional > MAX_OPTIONAL or unions > MAX_UNIONS:
        raise SchemaRefused(TOO_COMPLEX)
