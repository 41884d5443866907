from typing import Any

import pytest

from service.pipeline.expectations import OutputExpectation, expectation_for

MESSAGES = [{"role": "user", "content": "Summarise this PR."}]
RF_SCHEMA = {"type": "object", "required": ["summary"], "properties": {"summary": {"type": "string"}}}
OUTPUT_SCHEMA = {"type": "object", "required": ["risk_level"]}


def json_schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "pr", "strict": False, "schema": schema}}


@pytest.mark.parametrize(
    ("request_body", "output_schema", "expected"),
    [
        ({"messages": MESSAGES}, None, OutputExpectation(json_required=False, schema=None)),
        (
            {"messages": MESSAGES, "response_format": {"type": "text"}},
            None,
            OutputExpectation(json_required=False, schema=None),
        ),
        (
            {"messages": MESSAGES, "response_format": {"type": "json_object"}},
            None,
            OutputExpectation(json_required=True, schema=None),
        ),
        (
            {"messages": MESSAGES, "response_format": json_schema_format(RF_SCHEMA)},
            None,
            OutputExpectation(json_required=True, schema=RF_SCHEMA),
        ),
        ({"messages": MESSAGES}, OUTPUT_SCHEMA, OutputExpectation(json_required=True, schema=OUTPUT_SCHEMA)),
        (
            {"messages": MESSAGES, "response_format": json_schema_format(RF_SCHEMA)},
            OUTPUT_SCHEMA,
            OutputExpectation(json_required=True, schema=OUTPUT_SCHEMA),
        ),
        (
            {"messages": MESSAGES, "response_format": {"type": "json_schema"}},
            None,
            OutputExpectation(json_required=True, schema=None),
        ),
        (
            {"messages": MESSAGES, "response_format": "json"},
            None,
            OutputExpectation(json_required=False, schema=None),
        ),
    ],
    ids=[
        "plain",
        "text",
        "json_object",
        "json_schema",
        "output_schema",
        "output_schema_wins",
        "json_schema_without_schema",
        "malformed_response_format",
    ],
)
def test_expectation_for(
    request_body: dict[str, Any], output_schema: dict[str, Any] | None, expected: OutputExpectation
) -> None:
    assert expectation_for(request_body, output_schema) == expected


def test_expectation_schema_is_a_copy() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}}
    expectation = expectation_for({"messages": MESSAGES}, schema)
    schema["properties"]["a"]["type"] = "integer"
    assert expectation.schema == {"type": "object", "properties": {"a": {"type": "string"}}}
