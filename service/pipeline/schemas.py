"""Compiling and applying the JSON Schemas callers send (output_schema, a json_schema response_format).

jsonschema-rs does the work: its `regex` engine matches every `pattern` in linear time, so no schema and no
output can make validation backtrack (a pattern that needs look-around or back-references cannot be matched in
linear time and is refused when the batch is submitted). Nothing is ever fetched: only local `$ref`s
(`#/$defs/...`) resolve.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import jsonschema_rs
import orjson

# The regex crate's compiled-program limits: a pattern bigger than this is refused, not compiled forever.
REGEX_SIZE_LIMIT = 1 << 20
_PATTERNS = jsonschema_rs.RegexOptions(size_limit=REGEX_SIZE_LIMIT, dfa_size_limit=REGEX_SIZE_LIMIT)
MAX_MESSAGE_CHARS = 300


class SchemaInvalid(ValueError):
    """The schema itself cannot be used; `location` is where in it (a JSON path such as `$.properties.a`)."""

    def __init__(self, message: str, location: str = "$") -> None:
        super().__init__(message)
        self.message = message
        self.location = location


def compact_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact JSON; any Mapping is accepted, not only dict."""
    option = orjson.OPT_SORT_KEYS if sort_keys else 0
    return orjson.dumps(value, option=option, default=_mapping_as_dict)


def _mapping_as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_path(parts: list[str | int]) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _refs(schema: Any) -> Iterator[tuple[str, list[str | int]]]:
    """Every `$ref` string with where it stands (iterative: any depth)."""
    stack: list[tuple[Any, list[str | int]]] = [(schema, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    yield value, path
                else:
                    stack.append((value, [*path, key]))
        elif isinstance(node, list):
            stack.extend((value, [*path, index]) for index, value in enumerate(node))


def _resolves(schema: Any, ref: str) -> bool:
    """Whether a local `$ref` (`#`, `#/$defs/a`, `#/properties/x~1y`) points at something in `schema`.
    (An anchor such as `#node` is left to the validator.)"""
    fragment = unquote(ref[1:])
    if fragment and not fragment.startswith("/"):
        return True
    node = schema
    for token in fragment.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    return True


def _short(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else text
    return first if len(first) <= MAX_MESSAGE_CHARS else first[: MAX_MESSAGE_CHARS - 1] + "…"


@lru_cache(maxsize=256)
def _compile(schema_json: bytes) -> jsonschema_rs.Validator:
    schema = orjson.loads(schema_json)
    for ref, path in _refs(schema):
        if not ref.startswith("#"):
            raise SchemaInvalid(
                f"$ref {ref!r} points outside the schema; only local references (#/$defs/...) work", json_path(path)
            )
        if not _resolves(schema, ref):
            raise SchemaInvalid(f"$ref {ref!r} does not resolve within the schema", json_path(path))
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as error:
        raise SchemaInvalid(_short(error.message), json_path(error.instance_path)) from None
    try:
        return jsonschema_rs.Draft202012Validator(schema, pattern_options=_PATTERNS, offline=True)
    except jsonschema_rs.ValidationError as error:
        message = _short(error.message)
        if (error.instance_path and error.instance_path[-1] == "pattern") or 'is not a "regex"' in message:
            message = (
                f"{message}: patterns are matched in linear time, so look-around, back-references and other "
                "backtracking features are not supported"
            )
        raise SchemaInvalid(message, json_path(error.instance_path)) from None
    except (ValueError, jsonschema_rs.ReferencingError) as error:
        raise SchemaInvalid(_short(str(error))) from None


def schema_validator(schema: Mapping[str, Any]) -> jsonschema_rs.Validator:
    """A compiled Draft 2020-12 validator, cached by the schema's content. Raises SchemaInvalid."""
    return _compile(compact_json(schema, sort_keys=True))


def first_error_of(validator: jsonschema_rs.Validator, instance: Any) -> str | None:
    """The first way `instance` fails the compiled schema (`$.path: message`), or None when it validates."""
    if validator.is_valid(instance):
        return None
    for error in validator.iter_errors(instance):
        return f"{json_path(error.instance_path)}: {_short(error.message)}"
    return "$: does not validate"


def schema_fingerprint(schema: Mapping[str, Any] | None) -> str | None:
    """The same schema, whatever its key order, has the same fingerprint: sha256 of its canonical JSON."""
    if schema is None:
        return None
    return hashlib.sha256(compact_json(schema, sort_keys=True)).hexdigest()
