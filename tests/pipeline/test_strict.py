"""The strict-mode form of a caller's schema, and the caller's shape back from a strict answer."""

from __future__ import annotations

from typing import Any

import pytest

from service.pipeline.schemas import first_error_of, schema_validator
from service.pipeline.strict import derive_strict_schema, strict_refusal, strip_introduced_nulls

PR = {
    "type": "object",
    "required": ["summary", "risk_level"],
    "properties": {
        "summary": {"type": "string", "maxLength": 400},
        "risk_level": {"type": "string", "enum": ["low", "medium", "high"]},
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
        "labels": {"type": "array", "items": {"type": "string"}},
        "owner": {"$ref": "#/$defs/person"},
    },
    "$defs": {"person": {"type": "object", "properties": {"name": {"type": "string"}, "team": {"type": "string"}}}},
}


def test_every_property_is_required_objects_are_closed_and_optionals_nullable() -> None:
    strict = derive_strict_schema(PR)
    assert strict is not None
    assert strict["required"] == ["summary", "risk_level", "score", "labels", "owner"]
    assert strict["additionalProperties"] is False
    assert strict["properties"]["summary"] == {"type": "string", "maxLength": 400}  # required: unchanged
    assert strict["properties"]["score"]["type"] == ["integer", "null"]
    assert strict["properties"]["labels"]["type"] == ["array", "null"]
    assert strict["properties"]["owner"] == {"anyOf": [{"$ref": "#/$defs/person"}, {"type": "null"}]}
    person = strict["$defs"]["person"]
    assert person["required"] == ["name", "team"] and person["additionalProperties"] is False
    assert person["properties"]["team"]["type"] == ["string", "null"]


def test_an_optional_enum_accepts_null_too() -> None:
    strict = derive_strict_schema({"type": "object", "properties": {"size": {"type": "string", "enum": ["s", "m"]}}})
    assert strict is not None
    assert strict["properties"]["size"] == {"type": ["string", "null"], "enum": ["s", "m", None]}


def test_a_strict_answer_gets_the_callers_shape_back() -> None:
    strict = derive_strict_schema(PR)
    assert strict is not None
    answer = {"summary": "ok", "risk_level": "low", "score": None, "labels": None, "owner": {"name": "x", "team": None}}
    assert first_error_of(schema_validator(strict), answer) is None
    assert first_error_of(schema_validator(PR), answer) is not None  # nulls the caller's schema does not allow
    stripped = strip_introduced_nulls(answer, PR)
    assert stripped == {"summary": "ok", "risk_level": "low", "owner": {"name": "x"}}
    assert first_error_of(schema_validator(PR), stripped) is None


def test_a_null_the_caller_allows_is_kept() -> None:
    schema = {"type": "object", "properties": {"note": {"type": ["string", "null"]}}}
    assert strip_introduced_nulls({"note": None}, schema) == {"note": None}


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}}, "oneOf"),
        ({"type": "object", "additionalProperties": {"type": "string"}}, "free-form keys"),
        ({"type": "object"}, "free-form keys"),
        ({"type": "array", "prefixItems": [{"type": "string"}]}, "prefixItems"),
        ({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}, "not"),
    ],
)
def test_a_structure_strict_mode_cannot_express_stays_best_effort(schema: dict[str, Any], words: str) -> None:
    assert derive_strict_schema(schema) is None
    refusal = strict_refusal(schema)
    assert refusal is not None and words in refusal
