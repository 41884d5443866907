"""Per-request results: asynchronous validation errors, structured output and its limits, refusals,
truncation, prompt tokens and cache writes and reads, retired models."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import jsonschema_rs
import pytest

from anthropic_emulator import ModelSpec, default_models
from tests.anthropic_emulator.helpers import PROMPT, request, run

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "risk", "ticket", "files"],
    "properties": {
        "note": {"type": ["string", "null"]},
        "summary": {"type": "string"},
        "risk": {"type": "string", "enum": ["low", "medium", "high"]},
        "ticket": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
        "files": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["path"],
                "properties": {"path": {"type": "string"}, "kind": {"type": "string", "enum": ["code", "docs"]}},
            },
        },
    },
}


USER = {"role": "user", "content": "x"}


def _with(extra: dict[str, Any]) -> dict[str, Any]:
    """SCHEMA with one more property."""
    return {**SCHEMA, "properties": {**SCHEMA["properties"], "extra": extra}}


def _optional(count: int) -> dict[str, Any]:
    properties = {f"p{i}": {"type": "string"} for i in range(count)}
    return {"type": "object", "additionalProperties": False, "properties": properties}


def _models(changes: dict[str, dict[str, Any]]) -> dict[str, ModelSpec]:
    models = default_models()
    for name, fields in changes.items():
        models[name] = dataclasses.replace(models[name], **fields)
    return models


def _error(result: Any) -> tuple[str, str]:
    assert result.type == "errored"
    return result.error.error.type, result.error.error.message


def _format(schema: Any) -> dict[str, Any]:
    return {"format": {"type": "json_schema", "schema": schema}}


async def test_params_are_validated_when_the_batch_ends() -> None:
    found = await run(
        [
            request("ok"),
            {"custom_id": "no-max", "params": {"model": "claude-haiku-4-5", "messages": [USER]}},
            request("zero", max_tokens=0),
            request("stream", stream=True),
            request("huge", max_tokens=100_000),
            request("system-role", messages=[{"role": "system", "content": "Be brief."}, USER]),
            request("unknown", model="claude-nope-9"),
            request("retired", model="claude-3-5-haiku-latest"),
            request("extra", temprature=0.5),
        ]
    )  # fmt: skip
    assert found["ok"].type == "succeeded"
    assert _error(found["no-max"]) == ("invalid_request_error", "max_tokens: Field required")
    assert _error(found["zero"]) == ("invalid_request_error", "max_tokens: Input should be greater than or equal to 1")
    assert _error(found["stream"])[0] == "invalid_request_error"
    assert _error(found["huge"])[1] == (
        "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens for claude-haiku-4-5-20251001"
    )
    assert _error(found["system-role"])[1].startswith('messages: Unexpected role "system".')
    assert _error(found["unknown"]) == ("not_found_error", "model: claude-nope-9")
    assert _error(found["retired"]) == ("not_found_error", "model: claude-3-5-haiku-latest")
    assert _error(found["extra"]) == ("invalid_request_error", "temprature: Extra inputs are not permitted")
    assert found["retired"].error.request_id.startswith("req_")


async def test_system_is_a_top_level_parameter() -> None:
    found = await run([request("a", system=[{"type": "text", "text": "You review pull requests."}])])
    assert found["a"].type == "succeeded"


async def test_structured_output_conforms_with_required_properties_first() -> None:
    validator = jsonschema_rs.Draft202012Validator(SCHEMA)
    models = _models({"claude-sonnet-4-5": {"refusal": 0.0}})
    lines = [request(f"s{i}", model="claude-sonnet-4-5", output_config=_format(SCHEMA)) for i in range(30)]
    for result in (await run(lines, models=models)).values():
        answer = json.loads(result.message.content[0].text)
        assert validator.is_valid(answer)
        assert list(answer)[:4] == ["summary", "risk", "ticket", "files"]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({**SCHEMA, "additionalProperties": True}, "'additionalProperties' must be false"),
        (_with({"type": "integer", "minimum": 1}), "'minimum' is not supported"),
        (_with({"type": "string", "maxLength": 9}), "'maxLength' is not supported"),
        (_with({"type": "array", "minItems": 2}), "'minItems' may only be 0 or 1"),
        (
            {
                "$defs": {"node": {"type": "object", "additionalProperties": False, "required": ["kids"],
                                   "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
                "type": "object", "additionalProperties": False, "required": ["root"],
                "properties": {"root": {"$ref": "#/$defs/node"}},
            },
            "Too many recursive definitions in schema",
        ),
        (
            _optional(25),
            "Schema is too complex",
        ),
        (
            {"type": "object", "additionalProperties": False, "required": [f"u{i}" for i in range(17)],
             "properties": {f"u{i}": {"type": ["string", "null"]} for i in range(17)}},
            "Schema is too complex",
        ),
    ],
)  # fmt: skip
async def test_schemas_over_the_limits_error(schema: dict[str, Any], message: str) -> None:
    found = await run([request("a", output_config=_format(schema))])
    kind, text = _error(found["a"])
    assert kind == "invalid_request_error" and message in text


async def test_24_optional_properties_are_still_fine() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {f"p{i}": {"type": "string"} for i in range(24)},
    }
    assert (await run([request("a", output_config=_format(schema))]))["a"].type == "succeeded"


async def test_refusals_carry_stop_details() -> None:
    found = await run([request("r")], models=_models({"claude-haiku-4-5": {"refusal": 1.0}}))
    message = found["r"].message
    assert message.stop_reason == "refusal" and message.content == []
    assert message.stop_details.type == "refusal" and message.stop_details.explanation


async def test_max_tokens_truncates() -> None:
    models = _models({"claude-haiku-4-5": {"refusal": 0.0, "length": 1.0}})
    found = await run([request("cut", max_tokens=50), request("room", max_tokens=8_000)], models=models)
    cut = found["cut"].message
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 50 and len(cut.content[0].text) == 175
    room = found["room"].message
    assert room.stop_reason == "end_turn" and room.usage.output_tokens > 2_000


async def test_input_tokens_are_characters_over_three_and_a_half() -> None:
    found = await run([request("a", system="Be brief.")])
    expected = math.ceil(len("Be brief.") / 3.5) + math.ceil(len(PROMPT) / 3.5) + 4
    assert found["a"].message.usage.input_tokens == expected


async def test_a_prompt_over_the_window_errors() -> None:
    models = _models({"claude-haiku-4-5": {"max_input_tokens": 100}})
    found = await run([request("long", content="word " * 100)], models=models)
    assert _error(found["long"])[1] == "prompt is too long: 147 tokens > 100 maximum"


async def test_cache_control_writes_then_reads() -> None:
    system = [
        {
            "type": "text",
            "text": "You review pull requests for the payments team. " * 100,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    lines = [request(f"c{i}", model="claude-sonnet-4-5", system=system, content=f"Question {i}") for i in range(3)]
    lines.append(request("short", model="claude-sonnet-4-5", system=[{**system[0], "text": "Tiny."}]))
    lines.append(
        request(
            "hour",
            model="claude-sonnet-4-5",
            system=[
                {**system[0], "text": system[0]["text"] + "!", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
            ],
        )
    )
    found = await run(lines)
    prefix = math.ceil(len(system[0]["text"]) / 3.5)
    usages = [found[f"c{i}"].message.usage for i in range(3)]
    assert [(u.cache_creation_input_tokens, u.cache_read_input_tokens) for u in usages] == [
        (prefix, 0),
        (0, prefix),
        (0, prefix),
    ]
    assert (
        usages[0].cache_creation.ephemeral_5m_input_tokens == prefix
        and usages[1].input_tokens == usages[0].input_tokens
    )
    assert found["short"].message.usage.cache_creation_input_tokens == 0  # under the model's minimum
    hour = found["hour"].message.usage
    assert hour.cache_creation.ephemeral_1h_input_tokens == hour.cache_creation_input_tokens > 0


async def test_a_model_without_structured_outputs_refuses_a_format() -> None:
    models = _models({"claude-sonnet-4-5": {"structured_outputs": False}})
    found = await run([request("a", model="claude-sonnet-4-5", output_config=_format(SCHEMA))], models=models)
    assert "structured outputs" in _error(found["a"])[1]
