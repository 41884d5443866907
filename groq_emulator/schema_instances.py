"""Generate JSON values that validate against a JSON Schema (Draft 2020-12 subset), and break them.

Supported: type (and type lists such as ``["string", "null"]``), object (properties, required,
additionalProperties, minProperties), array (items, prefixItems, minItems, maxItems, uniqueItems),
string (minLength, maxLength, enum, const, format, simple patterns by trial), integer and number
(minimum, maximum, exclusive bounds, multipleOf), boolean, null, enum, const, anyOf, oneOf, allOf,
local ``$ref`` (``#/$defs/...``, ``#/definitions/...``, ``#``) including recursion.
"""

from __future__ import annotations

import functools
import math
import random
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote

import jsonschema_rs
import orjson

from groq_emulator.text import TextMaker

_LONG_TEXT_HINTS = ("summary", "description", "explanation", "reason", "rationale", "comment", "note", "text")


def _day(t: TextMaker) -> str:
    return f"2026-{t.count(1, 12):02d}-{t.count(1, 28):02d}"


def _clock(t: TextMaker) -> str:
    return f"{t.count(0, 23):02d}:{t.count(0, 59):02d}:{t.count(0, 59):02d}Z"


_FORMATS: dict[str, Callable[[TextMaker], str]] = {
    "date-time": lambda t: f"{_day(t)}T{_clock(t)}",
    "date": _day,
    "time": _clock,
    "email": lambda t: f"{t.word()}@example.com",
    "uri": lambda t: f"https://example.com/{t.word()}/{t.count(1, 9999)}",
    "url": lambda t: f"https://example.com/{t.word()}",
    "uuid": lambda t: str(uuid.UUID(int=t.rng.getrandbits(128), version=4)),
    "hostname": lambda t: f"{t.word()}.example.com",
    "ipv4": lambda t: f"10.{t.count(0, 255)}.{t.count(0, 255)}.{t.count(1, 254)}",
}


@functools.lru_cache(maxsize=256)
def _validator_for(schema_text: bytes) -> jsonschema_rs.Validator:
    # Linear-time patterns, nothing fetched: Groq's own validation cannot be made to backtrack either.
    return jsonschema_rs.Draft202012Validator(
        orjson.loads(schema_text), pattern_options=jsonschema_rs.RegexOptions(), offline=True
    )


def validator_for(schema: Any) -> jsonschema_rs.Validator:
    """A cached Draft 2020-12 validator for ``schema``."""
    return _validator_for(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))


def _pointer(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        return {}
    node = root
    for raw in unquote(ref[1:]).split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return {}
    return node


class InstanceGenerator:
    """Generates one instance of ``root``; all randomness comes from ``rng``."""

    def __init__(self, root: Any, rng: random.Random, words: Sequence[str] = (), max_depth: int = 4) -> None:
        self.root = root
        self.rng = rng
        self.text = TextMaker(rng, words)
        self.max_depth = max_depth

    def generate(self) -> Any:
        return self._value(self.root, 0, "")

    # -- schema plumbing -------------------------------------------------------------------
    def _resolve(self, schema: Any) -> Any:
        hops = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and hops < 32:
            target = _pointer(self.root, schema["$ref"])
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings} if isinstance(target, dict) else (target if not siblings else {})
            hops += 1
        if isinstance(schema, dict) and isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self._resolve(part)
                if not isinstance(part, dict):
                    continue
                merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
                merged["required"] = [*merged.get("required", []), *part.get("required", [])]
                for key, value in part.items():
                    merged.setdefault(key, value)
            schema = merged
        return schema

    def _is_recursive(self, schema: Any) -> bool:
        text = orjson.dumps(schema)
        return b'"$ref"' in text or b'"object"' in text or b'"array"' in text

    def _pick_type(self, schema: dict[str, Any], depth: int) -> str:
        declared = schema.get("type")
        if isinstance(declared, list) and declared:
            options = [t for t in declared if isinstance(t, str)]
            if "null" in options and (depth >= self.max_depth or self.rng.random() < 0.15):
                return "null"
            non_null = [t for t in options if t != "null"] or options
            return self.rng.choice(non_null)
        if isinstance(declared, str):
            return declared
        if any(k in schema for k in ("properties", "required", "additionalProperties", "minProperties")):
            return "object"
        if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
            return "array"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
            return "number"
        return "string"

    # -- values ------------------------------------------------------------------------------
    def _value(self, schema: Any, depth: int, hint: str) -> Any:
        schema = self._resolve(schema)
        if schema is True or schema == {}:
            return self._string({}, hint)
        if not isinstance(schema, dict):
            return None
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return self._choice(schema, key, depth, hint)
        kind = self._pick_type(schema, depth)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth, hint)
        if kind == "integer":
            return self._integer(schema, hint)
        if kind == "number":
            return self._number(schema, hint)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema, hint)

    def _choice(self, schema: dict[str, Any], key: str, depth: int, hint: str) -> Any:
        siblings = {k: v for k, v in schema.items() if k != key}
        branches = list(schema[key])
        if depth >= self.max_depth:
            shallow = [b for b in branches if not self._is_recursive(b)]
            branches = shallow or branches
        self.rng.shuffle(branches)
        value: Any = None
        for branch in branches[:4]:
            resolved = self._resolve(branch)
            candidate = {**siblings, **resolved} if isinstance(resolved, dict) else resolved
            value = self._value(candidate, depth, hint)
            if key == "anyOf":
                return value
            matches = sum(validator_for(self._with_root_definitions(b)).is_valid(value) for b in schema[key])
            if matches == 1:
                return value
        return value

    def _with_root_definitions(self, branch: Any) -> Any:
        """A branch as a schema of its own whose local $refs still resolve against the root's definitions."""
        if not isinstance(branch, dict) or not isinstance(self.root, dict):
            return branch
        shared = {key: self.root[key] for key in ("$defs", "definitions") if key in self.root}
        return {**shared, **branch}

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = [r for r in schema.get("required", []) if isinstance(r, str)]
        extra = schema.get("additionalProperties", True)
        if not props and not required:
            if isinstance(extra, dict):
                return {self.text.word(): self._value(extra, depth + 1, "") for _ in range(self.rng.randint(1, 3))}
            if extra is False:
                return {}
            return self.plausible_object() if depth == 0 else {"note": self.text.sentence()}
        result: dict[str, Any] = {}
        for name, sub in props.items():
            if name in required or (depth < self.max_depth and self.rng.random() < 0.75):
                result[name] = self._value(sub, depth + 1, name)
        for name in required:
            if name not in result:
                result[name] = self._value(extra if isinstance(extra, dict) else {}, depth + 1, name)
        minimum = schema.get("minProperties", 0)
        if extra is not False and isinstance(minimum, int):
            while len(result) < minimum:
                result[f"{self.text.word()}_{len(result)}"] = self._string({}, "")
        return result

    def _array(self, schema: dict[str, Any], depth: int, hint: str) -> list[Any]:
        raw_prefix = schema.get("prefixItems")
        prefix: list[Any] = raw_prefix if isinstance(raw_prefix, list) else []
        items = schema.get("items", {})
        low = schema.get("minItems", 0 if depth >= self.max_depth else 1)
        high = schema.get("maxItems", low + 3)
        count = low if depth >= self.max_depth else self.rng.randint(low, max(low, min(high, low + 3)))
        if items is False:
            count = min(count, len(prefix))
        result: list[Any] = []
        seen: set[bytes] = set()
        attempts = 0
        while len(result) < count and attempts < count * 6 + 6:
            attempts += 1
            index = len(result)
            sub = prefix[index] if index < len(prefix) else items
            value = self._value(sub, depth + 1, hint.rstrip("s"))
            key = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
            if key in seen and (schema.get("uniqueItems") or attempts < count * 3):
                continue
            seen.add(key)
            result.append(value)
        return result

    def _bounds(self, schema: dict[str, Any], hint: str, step: float) -> tuple[float, float]:
        low: float | None = schema.get("minimum")
        high: float | None = schema.get("maximum")
        if isinstance(schema.get("exclusiveMinimum"), int | float):
            low = max(low if low is not None else -math.inf, schema["exclusiveMinimum"] + step)
        if isinstance(schema.get("exclusiveMaximum"), int | float):
            high = min(high if high is not None else math.inf, schema["exclusiveMaximum"] - step)
        name = hint.lower()
        default = (0.0, 10.0) if ("score" in name or "rating" in name) else (0.0, 100.0)
        if "confidence" in name or "probability" in name:
            default = (0.0, 1.0)
        if low is None and high is None:
            return default
        if low is None:
            assert high is not None
            return min(default[0], high - 100), high
        if high is None:
            return low, max(low + 100, default[1])
        return low, high

    def _integer(self, schema: dict[str, Any], hint: str) -> int:
        low, high = self._bounds(schema, hint, 1)
        lo, hi = math.ceil(low), math.floor(high)
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int) and multiple > 0:
            first, last = math.ceil(lo / multiple), math.floor(hi / multiple)
            return self.rng.randint(first, max(first, last)) * multiple
        return self.rng.randint(lo, max(lo, hi))

    def _number(self, schema: dict[str, Any], hint: str) -> float | int:
        low, high = self._bounds(schema, hint, 0.01)
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int | float) and multiple > 0:
            first, last = math.ceil(low / multiple), math.floor(high / multiple)
            steps = self.rng.randint(first, max(first, last))
            return steps * multiple if isinstance(multiple, int) else round(steps * multiple, 10)
        value = round(self.rng.uniform(low, high), 2)
        return min(max(value, low), high)

    def _string(self, schema: dict[str, Any], hint: str) -> str:
        value = self._formatted(schema.get("format"), hint)
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            value = self._matching(pattern, value)
        low = schema.get("minLength", 0)
        high = schema.get("maxLength")
        while len(value) < low:
            value = f"{value} {self.text.word()}".strip()
        if isinstance(high, int) and len(value) > high:
            value = value[:high].rstrip() if high > 0 else ""
            value = value + "x" * max(0, low - len(value))
        return value

    def _formatted(self, fmt: Any, hint: str) -> str:
        text, name = self.text, hint.lower()
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt](text)
        if any(h in name for h in _LONG_TEXT_HINTS):
            return text.sentence()
        if "path" in name or "file" in name:
            return text.path()
        if name.endswith("id"):
            return text.identifier()
        if "title" in name or "name" in name:
            return text.title()
        if "url" in name or "link" in name:
            return _FORMATS["url"](text)
        return text.phrase(1, 4)

    def _matching(self, pattern: str, value: str) -> str:
        try:
            compiled = re.compile(pattern)
        except re.error:
            return value
        word = self.text.word()
        candidates = [value, word, word.upper(), str(self.rng.randint(0, 9999)), self.text.identifier()]
        candidates += [
            word.replace(" ", "-"),
            f"{word}_{word}",
            f"{word.upper()[:3]}-{self.rng.randint(1, 9999)}",
        ]
        for candidate in candidates:
            if compiled.search(candidate):
                return candidate
        return value

    def plausible_object(self) -> dict[str, Any]:
        """A PR-analysis-looking object, used when JSON is wanted but no schema is known."""
        categories = ["bugfix", "feature", "refactor", "docs", "tests", "security", "performance"]
        return {
            "summary": self.text.sentence(12, 24),
            "risk_level": self.rng.choice(["low", "medium", "high"]),
            "categories": self.rng.sample(categories, self.rng.randint(1, 3)),
            "confidence": round(self.rng.uniform(0.5, 0.99), 2),
        }


def generate_instance(schema: Any, rng: random.Random, words: Sequence[str] = ()) -> Any:
    return InstanceGenerator(schema, rng, words).generate()


_WRONG_VALUES: dict[str, Any] = {
    "string": 12345,
    "integer": "seven",
    "number": "high",
    "boolean": "yes",
    "array": "none",
    "object": ["unexpected"],
    "null": "n/a",
}


def break_instance(schema: Any, instance: Any, rng: random.Random) -> Any:
    """Return a value close to ``instance`` that does NOT validate against ``schema``."""
    validator = validator_for(schema)
    gen = InstanceGenerator(schema, rng)
    resolved = gen._resolve(schema)
    candidates: list[Any] = []
    if isinstance(instance, dict) and isinstance(resolved, dict):
        required = [r for r in resolved.get("required", []) if r in instance]
        if required:
            victim = rng.choice(required)
            candidates.append({k: v for k, v in instance.items() if k != victim})
        props = resolved.get("properties") or {}
        for name in rng.sample(sorted(instance), len(instance)):
            sub = gen._resolve(props.get(name, {}))
            declared = sub.get("type") if isinstance(sub, dict) else None
            kind = declared if isinstance(declared, str) else "string"
            if isinstance(sub, dict) and "enum" in sub:
                candidates.append({**instance, name: "not-a-valid-value"})
            candidates.append({**instance, name: _WRONG_VALUES.get(kind)})
    candidates += [[instance], "not an object", None, 0]
    for candidate in candidates:
        if not validator.is_valid(candidate):
            return candidate
    return candidates[-1]


def schema_error_text(schema: Any, instance: Any) -> str:
    """Groq-like text for a validation failure: ``jsonschema: '/path' does not validate with ...``."""
    error = next(iter(validator_for(schema).iter_errors(instance)), None)
    if error is None:
        return ""
    path = "/" + "/".join(str(p) for p in error.instance_path)
    rule = "/" + "/".join(str(p) for p in error.schema_path)
    return f"jsonschema: '{path}' does not validate with {rule}: {error.message.splitlines()[0]}"
