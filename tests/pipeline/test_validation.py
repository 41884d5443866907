from typing import Any

import pytest

from service.pipeline.errors import DuplicateCustomId, InvalidSchema, SubmissionError
from service.pipeline.validation import validate_items, validate_output_schema, validate_params

USER = {"role": "user", "content": "Review PR #26313."}
SCHEMA = {"type": "object", "required": ["summary"], "properties": {"summary": {"type": "string"}}}
JSON_SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "pr", "schema": SCHEMA}}


def item(custom_id: Any = "pr-1", **body: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "body": {"messages": [USER], **body}}


# --- validate_items --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "items",
    [
        [item()],
        [item("pr-1"), item("pr-2", max_completion_tokens=2048, temperature=0)],
        [item(response_format=JSON_SCHEMA_FORMAT, n=1, stream=False)],
        [item(response_format={"type": "json_object"})],
        [item(response_format=None)],
    ],
)
def test_valid_items_pass(items: list[dict[str, Any]]) -> None:
    validate_items(items)


@pytest.mark.parametrize(
    ("items", "field", "message"),
    [
        ([], "items", "items must not be empty"),
        (["pr-1"], "items[0]", "items[0] must be a JSON object"),
        ([item(None)], "items[0].custom_id", "items[0].custom_id must be a non-empty string"),
        ([item("pr-1"), item("")], "items[1].custom_id", "items[1].custom_id must be a non-empty string"),
        ([item("  ")], "items[0].custom_id", "may hold only ASCII letters, digits"),
        ([item("pr 1")], "items[0].custom_id", "may hold only ASCII letters, digits"),
        ([item("x" * 513)], "items[0].custom_id", "at most MAX_CUSTOM_ID_LENGTH = 512"),
        ([{"custom_id": "pr-1", "body": {"messages": [USER]}, "extra": 1}], "items[0].extra", "unknown field"),
        ([item(max_completion_tokens=2.5)], "items[0].body.max_completion_tokens", "whole number of tokens"),
        ([item(max_completion_tokens=True)], "items[0].body.max_completion_tokens", "whole number of tokens"),
        ([item(max_tokens=0)], "items[0].body.max_tokens", "whole number of tokens"),
        (
            [{"custom_id": "pr-1", "body": {"messages": [USER]}, "metadata": [1]}],
            "items[0].metadata",
            "must be a JSON object",
        ),
        (
            [{"custom_id": "pr-1", "body": {"messages": [USER]}, "metadata": {"k": "x" * 2000}}],
            "items[0].metadata",
            "MAX_ITEM_METADATA_BYTES",
        ),
        ([item(26313)], "items[0].custom_id", "non-empty string"),
        ([{"custom_id": "pr-1"}], "items[0].body", "items[0].body (custom_id 'pr-1') must be a JSON object"),
        ([{"custom_id": "pr-1", "body": []}], "items[0].body", "must be a JSON object"),
        (
            [item("pr-1"), item("pr-2", model="openai/gpt-oss-20b")],
            "items[1].body.model",
            "items[1].body (custom_id 'pr-2') must not contain \"model\": the batch's cascade",
        ),
        (
            [{"custom_id": "pr-1", "body": {"max_completion_tokens": 10}}],
            "items[0].body.messages",
            "items[0].body (custom_id 'pr-1') must have a non-empty \"messages\" list",
        ),
        ([{"custom_id": "pr-1", "body": {"messages": []}}], "items[0].body.messages", "non-empty"),
        ([{"custom_id": "pr-1", "body": {"messages": "hi"}}], "items[0].body.messages", "non-empty"),
        (
            [{"custom_id": "pr-1", "body": {"messages": [USER, {"content": "no role"}]}}],
            "items[0].body.messages[1]",
            'messages[1] must be an object with a string "role"',
        ),
        ([item(stream=True)], "items[0].body.stream", '"stream" must be false or left out'),
        ([item(stream=1)], "items[0].body.stream", '"stream" must be false or left out'),
        ([item(stream="true")], "items[0].body.stream", '"stream" must be false or left out'),
        ([item(stream=None)], "items[0].body.stream", '"stream" must be false or left out'),
        ([item(n=2)], "items[0].body.n", '"n" must be 1'),
        ([item(n=True)], "items[0].body.n", '"n" must be 1'),
        (
            [item(response_format={"type": "xml"})],
            "items[0].body.response_format",
            '"type" is one of text, json_object, json_schema',
        ),
        (
            [item(response_format={"type": "json_schema"})],
            "items[0].body.response_format.json_schema",
            "needs",
        ),
        (
            [
                item(
                    response_format={
                        "type": "json_schema",
                        "json_schema": {"name": "x", "schema": {"type": "strin"}},
                    }
                )
            ],
            "items[0].body.response_format.json_schema.schema",
            "is not a valid JSON Schema",
        ),
    ],
)
def test_invalid_items_are_rejected_precisely(items: list[Any], field: str, message: str) -> None:
    with pytest.raises(SubmissionError) as raised:
        validate_items(items)
    assert raised.value.field == field
    assert message in raised.value.message


def test_first_duplicate_custom_id_is_named() -> None:
    items = [item("pr-1"), item("pr-2"), item("pr-3"), item("pr-2"), item("pr-1")]
    with pytest.raises(DuplicateCustomId) as raised:
        validate_items(items)
    assert raised.value.custom_id == "pr-2"
    assert raised.value.field == "items[3].custom_id"
    assert "items[1] and items[3]" in raised.value.message


def test_duplicate_check_is_fast_for_a_backfill() -> None:
    validate_items([item(f"pr-{i}") for i in range(21_000)])


# --- validate_output_schema ------------------------------------------------------------------


@pytest.mark.parametrize("schema", [None, {}, SCHEMA, {"$defs": {"a": {"type": "string"}}, "$ref": "#/$defs/a"}])
def test_valid_output_schemas(schema: dict[str, Any] | None) -> None:
    validate_output_schema(schema)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            {"type": "strin"},
            "output_schema is not a valid JSON Schema (draft 2020-12): "
            "at output_schema.type: \"strin\" is not valid under any of the schemas listed in the 'anyOf' keyword",
        ),
        (
            {"type": "object", "properties": {"summary": {"type": 5}}},
            "at output_schema.properties.summary.type:",
        ),
        ({"required": "summary"}, 'at output_schema.required: "summary" is not of type "array"'),
        ("not a schema", "output_schema must be a JSON object"),
    ],
)
def test_invalid_output_schema_names_the_problem(schema: Any, message: str) -> None:
    with pytest.raises(InvalidSchema) as raised:
        validate_output_schema(schema)
    assert raised.value.field == "output_schema"
    assert message in raised.value.message


# --- validate_params -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"temperature": 0, "response_format": JSON_SCHEMA_FORMAT},
        {"max_completion_tokens": 4096, "n": 1, "stream": False},
        {"n": None, "response_format": None},
    ],
)
def test_valid_params(params: dict[str, Any]) -> None:
    validate_params(params, "params")


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        (
            {"model": "llama-3.3-70b-versatile"},
            "fallback_params.model",
            'fallback_params must not contain "model": the batch\'s cascade (or "model") chooses it',
        ),
        ({"messages": [USER]}, "fallback_params.messages", "messages belong in each item's body"),
        ({"stream": True}, "fallback_params.stream", "not supported in a batch"),
        ({"n": 3}, "fallback_params.n", '"n" must be 1'),
        ({"n": "1"}, "fallback_params.n", '"n" must be 1'),
        ({"response_format": "json"}, "fallback_params.response_format", "response_format must be an object"),
        ([], "fallback_params", "fallback_params must be a JSON object"),
    ],
)
def test_invalid_params_are_rejected(params: Any, field: str, message: str) -> None:
    with pytest.raises(SubmissionError) as raised:
        validate_params(params, "fallback_params")
    assert raised.value.field == field
    assert message in raised.value.message
