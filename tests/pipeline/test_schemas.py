"""Caller schemas are compiled once, validated in bounded time whatever their patterns, and never fetch."""

from __future__ import annotations

import time

import pytest

from service.pipeline.schemas import SchemaInvalid, first_error_of, schema_validator

REDOS_SCHEMA = {"type": "object", "properties": {"summary": {"type": "string", "pattern": "(a+)+$"}}}


def test_a_validator_is_cached_by_content_whatever_the_key_order() -> None:
    first = schema_validator({"type": "object", "required": ["x"]})
    assert schema_validator({"required": ["x"], "type": "object"}) is first
    assert schema_validator({"type": "object", "required": ["y"]}) is not first


def test_the_first_error_names_the_path() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}}}
    assert first_error_of(schema_validator(schema), {"a": [1, "two"]}) == '$.a[1]: "two" is not of type "integer"'
    assert first_error_of(schema_validator(schema), {"a": [1, 2]}) is None


def test_a_catastrophic_pattern_is_matched_in_linear_time() -> None:
    """(a+)+$ against 'aaa…#' takes exponential time in a backtracking engine (Python's re, fancy-regex)."""
    started = time.perf_counter()
    for length in (30, 3_000, 300_000):
        assert first_error_of(schema_validator(REDOS_SCHEMA), {"summary": "a" * length + "#"}) is not None
    assert first_error_of(schema_validator(REDOS_SCHEMA), {"summary": "aaaa"}) is None
    # 300,000 characters with a backtracking engine would not finish in any reasonable time; a generous bound
    # that only a linear-time engine meets on any machine.
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "strin"}, "$.type"),
        ({"properties": {"a": {"pattern": "(?=a)b"}}}, "linear time"),
        ({"properties": {"a": {"pattern": "(a)\\1"}}}, "linear time"),
        ({"$ref": "https://169.254.169.254/latest/meta-data"}, "only local references"),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "$.properties.a $ref '#/$defs/missing' does not resolve"),
    ],
)
def test_a_schema_that_cannot_be_used_is_refused_with_where_and_why(schema: dict[str, object], words: str) -> None:
    with pytest.raises(SchemaInvalid) as refused:
        schema_validator(schema)
    assert words in f"{refused.value.location} {refused.value.message}"


def test_local_references_and_recursion_work() -> None:
    schema = {
        "$defs": {
            "node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}
        },
        "$ref": "#/$defs/node",
    }
    assert first_error_of(schema_validator(schema), {"children": [{"children": []}]}) is None
    assert first_error_of(schema_validator(schema), {"children": [{"children": 3}]}) is not None
