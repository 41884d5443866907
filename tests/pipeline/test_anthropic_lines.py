"""Anthropic Message Batches: params for a chat body, the request line, and the reading of result lines.

Params are checked against the Anthropic emulator's own validation (`anthropic_emulator.params.parse`, which
follows the Messages API's rules, and `schema.check_schema` for the structured-output limits); one test sends
requests through the official SDK to the emulator and reads back what it answers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from anthropic_emulator import Emulator, create_emulator_app, default_models
from anthropic_emulator.config import EmulatorConfig, ModelSpec
from anthropic_emulator.params import parse
from anthropic_emulator.schema import SchemaRefused, check_schema
from service.pipeline import failure_codes as codes
from service.pipeline.anthropic_lines import (
    anthropic_line,
    anthropic_params,
    anthropic_schema,
    anthropic_schema_refusal,
    classify_anthropic,
)
from service.pipeline.classify import Outcome, parse_result_line
from service.pipeline.cost import Usage
from service.pipeline.expectations import OutputExpectation, expectation_for
from service.pipeline.requests import JSON_INSTRUCTION, SCHEMA_INSTRUCTION_PREFIX
from service.pipeline.schemas import compact_json
from service.pipeline.strict import derive_strict_schema
from tests.anthropic_emulator.helpers import asgi_client, manual_config, run_batch

MODEL = "claude-haiku-4-5"
EMULATOR = EmulatorConfig()
PR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["summary", "risk_level"],
    "properties": {
        "summary": {"type": "string", "minLength": 10, "maxLength": 400},
        "risk_level": {"enum": ["low", "medium", "high"]},
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
        "files": {
            "type": "array",
            "minItems": 2,
            "items": {"type": "object", "required": ["path"], "properties": {"path": {"type": "string"}}},
        },
    },
}
NO_JSON = OutputExpectation(json_required=False, schema=None)
WITH_SCHEMA = OutputExpectation(json_required=True, schema=PR_SCHEMA)


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": list(messages) or [user("Review this pull request.")], **extra}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def json_schema(schema: dict[str, Any], *, strict: bool = False) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "review", "strict": strict, "schema": schema}}


def params_of(body: dict[str, Any], **options: Any) -> dict[str, Any]:
    params, _strict = anthropic_params(body, max_tokens_default=1024, **options)
    return params


def accepted(params: dict[str, Any]) -> None:
    """The emulator checks params as the Messages API does; RequestError when it would refuse them."""
    parse(params, EMULATOR)


# --- system, roles, content ------------------------------------------------------------------------------


def test_system_and_developer_messages_anywhere_become_the_system_parameter_in_order() -> None:
    params = params_of(
        chat(
            {"role": "system", "content": "You review pull requests."},
            user("Here is the diff."),
            {"role": "developer", "content": [{"type": "text", "text": "Be terse."}]},
            user("What is the risk?"),
        )
    )
    assert params["system"] == "You review pull requests.\n\nBe terse."
    assert params["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Here is the diff."}, {"type": "text", "text": "What is the risk?"}],
        }
    ]
    accepted(params)


def test_a_system_part_with_cache_control_makes_system_a_list_of_blocks() -> None:
    cached = {"type": "text", "text": "A long shared context.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    params = params_of(
        chat({"role": "system", "content": [cached]}, {"role": "system", "content": "Be terse."}, user("Go."))
    )
    assert params["system"] == [cached, {"type": "text", "text": "Be terse."}]
    accepted(params)


def test_without_system_messages_there_is_no_system_parameter() -> None:
    assert "system" not in params_of(chat(user("Hi.")))


def test_consecutive_messages_of_one_role_merge_and_a_single_string_stays_a_string() -> None:
    params = params_of(
        chat(
            user("First."),
            user([{"type": "text", "text": "Second."}]),
            {"role": "assistant", "content": "An answer."},
            user("Third."),
        )
    )
    assert params["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "First."}, {"type": "text", "text": "Second."}]},
        {"role": "assistant", "content": "An answer."},
        {"role": "user", "content": "Third."},
    ]
    accepted(params)


def test_image_parts_become_base64_or_url_sources_and_keep_cache_control() -> None:
    control = {"type": "ephemeral"}
    params = params_of(
        chat(
            user(
                [
                    {"type": "text", "text": "Compare these."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}, "cache_control": control},
                ]
            )
        )
    )
    assert params["messages"][0]["content"] == [
        {"type": "text", "text": "Compare these."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}, "cache_control": control},
    ]
    accepted(params)


def test_a_data_url_that_is_not_base64_is_sent_as_a_url_for_anthropic_to_judge() -> None:
    params = params_of(chat(user([{"type": "image_url", "image_url": {"url": "data:image/svg+xml,<svg/>"}}])))
    assert params["messages"][0]["content"][0]["source"] == {"type": "url", "url": "data:image/svg+xml,<svg/>"}


def test_tools_tool_calls_and_tool_results_are_translated() -> None:
    weather = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    body = chat(
        user("Weather in Paris and Rome?"),
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "Rome"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21 C"}]},
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "Today's weather",
                    "parameters": weather,
                    "strict": True,
                },
            },
            {"type": "custom", "custom": {"name": "free_text"}},
        ],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    params = params_of(body)
    assert params["tools"] == [{"name": "weather", "description": "Today's weather", "input_schema": weather}]
    assert params["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert params["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"arguments": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "21 C"}]},
            ],
        },
    ]
    accepted(params)


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", False, {"type": "none"}),
        ({"type": "function", "function": {"name": "weather"}}, None, {"type": "tool", "name": "weather"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice(tool_choice: Any, parallel: Any, expected: dict[str, Any]) -> None:
    tools = [{"type": "function", "function": {"name": "weather"}}]
    extra = {"tool_choice": tool_choice, "parallel_tool_calls": parallel}
    params = params_of(chat(tools=tools, **{key: value for key, value in extra.items() if value is not None}))
    assert params["tool_choice"] == expected
    assert params["tools"] == [{"name": "weather", "input_schema": {"type": "object", "properties": {}}}]


def test_tool_choice_without_tools_is_dropped() -> None:
    assert "tool_choice" not in params_of(chat(tool_choice="auto"))


# --- numbers and dropped parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "default", "expected"),
    [
        ({"max_completion_tokens": 300, "max_tokens": 900}, 1024, 300),
        ({"max_tokens": 900}, 1024, 900),
        ({}, 1024, 1024),
        ({"max_completion_tokens": 0}, 1024, 1),
        ({}, 0, 1),
        ({"max_completion_tokens": True, "max_tokens": "12"}, 64, 64),
    ],
)
def test_max_tokens_is_always_set_and_at_least_one(extra: dict[str, Any], default: int, expected: int) -> None:
    params, _strict = anthropic_params(chat(**extra), max_tokens_default=default)
    assert params["max_tokens"] == expected
    accepted(params)


def test_temperature_and_top_p_are_left_out_unless_the_model_takes_them() -> None:
    assert not {"temperature", "top_p"} & set(params_of(chat(temperature=0.2, top_p=0.9)))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"temperature": 1.7}, {"temperature": 1}),
        ({"temperature": 0.3, "top_p": 0.9}, {"temperature": 0.3}),
        ({"temperature": -0.5}, {"temperature": 0}),
        ({"top_p": 0.9}, {"top_p": 0.9}),
        ({}, {}),
    ],
)
def test_sampling_clamps_temperature_to_one_and_never_sends_both(
    extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    params = params_of(chat(**extra), sampling=True)
    assert {key: params[key] for key in ("temperature", "top_p") if key in params} == expected
    accepted(params)


@pytest.mark.parametrize(
    ("stop", "expected"),
    [("END", ["END"]), (["END", "", "STOP", 3], ["END", "STOP"]), ("", None), (None, None)],
)
def test_stop_becomes_stop_sequences(stop: Any, expected: list[str] | None) -> None:
    params = params_of(chat(stop=stop))
    assert params.get("stop_sequences") == expected


def test_parameters_anthropic_lacks_are_dropped() -> None:
    body = chat(
        n=1,
        seed=7,
        logit_bias={"50256": -100},
        presence_penalty=0.5,
        frequency_penalty=0.5,
        reasoning_effort="low",
        user="user-1",
        logprobs=True,
        top_logprobs=3,
        stream=False,
        stream_options={"include_usage": True},
        metadata={"team": "a"},
        service_tier="auto",
        store=True,
        verbosity="low",
        response_format={"type": "text"},
    )
    params = params_of(body)
    assert set(params) == {"model", "max_tokens", "messages"}
    accepted(params)


# --- structured output -----------------------------------------------------------------------------------


def test_a_schema_that_fits_becomes_output_config_with_optional_properties_required_and_nullable() -> None:
    params, strict_used = anthropic_params(chat(response_format=json_schema(PR_SCHEMA)), max_tokens_default=1024)
    assert strict_used
    schema = params["output_config"]["format"]["schema"]
    assert params["output_config"]["format"]["type"] == "json_schema"
    assert sorted(schema["required"]) == ["files", "risk_level", "score", "summary"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["score"] == {"type": ["integer", "null"], "description": "{maximum: 10, minimum: 0}"}
    assert schema["properties"]["summary"] == {"type": "string", "description": "{maxLength: 400, minLength: 10}"}
    files = schema["properties"]["files"]
    assert (files["type"], files["minItems"], files["description"]) == (["array", "null"], 1, "{minItems: 2}")
    assert files["items"]["additionalProperties"] is False
    assert "system" not in params
    check_schema(schema)
    accepted(params)


def test_constraints_are_noted_after_an_existing_description() -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "A ticket.", "pattern": "^T-"}},
    }
    fitted = anthropic_schema(schema)
    assert fitted is not None
    assert fitted["properties"]["code"]["description"] == "A ticket.\n\n{pattern: ^T-}"


def test_known_string_formats_are_kept_and_others_noted() -> None:
    schema = {
        "type": "object",
        "required": ["at", "color"],
        "properties": {"at": {"type": "string", "format": "date-time"}, "color": {"type": "string", "format": "hex"}},
    }
    fitted = anthropic_schema(schema)
    assert fitted is not None
    assert fitted["properties"]["at"] == {"type": "string", "format": "date-time"}
    assert fitted["properties"]["color"] == {"type": "string", "description": "{format: hex}"}


def test_the_fitted_schema_is_a_fresh_object_each_call() -> None:
    first = anthropic_schema(PR_SCHEMA)
    assert first is not None
    first["properties"].clear()
    assert anthropic_schema(PR_SCHEMA) != first


def _optional_strings(count: int) -> dict[str, Any]:
    return {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(count)}}


RECURSIVE = {
    "type": "object",
    "$defs": {
        "node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}
    },
    "properties": {"root": {"$ref": "#/$defs/node"}},
    "required": ["root"],
}
MUTUAL = {
    "type": "object",
    "$defs": {
        "a": {"type": "object", "properties": {"b": {"$ref": "#/$defs/b"}}, "required": ["b"]},
        "b": {"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "required": ["a"]},
    },
    "properties": {"a": {"$ref": "#/$defs/a"}},
    "required": ["a"],
}


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (RECURSIVE, "the definition 'node' is recursive"),
        (MUTUAL, "is recursive"),
        ({"type": "object", "properties": {"me": {"$ref": "#"}}, "required": ["me"]}, "the $ref '#' is not a local"),
        ({"type": "object", "properties": {"x": {"$ref": "https://example.com/x.json"}}}, "is not a local definition"),
        (
            {"type": "object", "properties": {"x": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}},
            "no strict form",
        ),
        ({"type": "array", "items": {"type": "string"}}, "the root is not an object"),
        (_optional_strings(17), "17 union-typed parameters"),
        (
            {"type": "object", "properties": {"x": {"enum": [{"a": 1}, "b"]}}, "required": ["x"]},
            "enum or const of objects",
        ),
    ],
    ids=[
        "recursive",
        "mutually_recursive",
        "root_ref",
        "external_ref",
        "no_strict_form",
        "array_root",
        "unions",
        "enum",
    ],
)
def test_a_schema_over_the_limits_goes_into_the_system_prompt(schema: dict[str, Any], reason: str) -> None:
    refusal = anthropic_schema_refusal(schema)
    assert refusal is not None and reason in refusal
    assert anthropic_schema(schema) is None
    params, strict_used = anthropic_params(
        chat({"role": "system", "content": "You review."}, user("Go."), response_format=json_schema(schema)),
        max_tokens_default=512,
    )
    assert not strict_used and "output_config" not in params
    assert params["system"] == "You review.\n\n" + SCHEMA_INSTRUCTION_PREFIX + compact_json(schema).decode()
    accepted(params)


@pytest.mark.parametrize("schema", [RECURSIVE, MUTUAL, _optional_strings(17)], ids=["recursive", "mutual", "unions"])
def test_the_emulator_refuses_those_schemas_in_output_config(schema: dict[str, Any]) -> None:
    """The fallback is needed: their strict derivation, sent as it is, is over Anthropic's limits."""
    with pytest.raises(SchemaRefused):
        check_schema(derive_strict_schema(schema))


def test_sixteen_optional_properties_still_fit() -> None:
    fitted = anthropic_schema(_optional_strings(16))
    assert fitted is not None
    check_schema(fitted)


def test_a_prefilled_answer_keeps_the_schema_in_the_prompt() -> None:
    body = chat(user("Review."), {"role": "assistant", "content": "{"}, response_format=json_schema(PR_SCHEMA))
    params, strict_used = anthropic_params(body, max_tokens_default=512)
    assert not strict_used and "output_config" not in params
    assert params["system"].startswith(SCHEMA_INSTRUCTION_PREFIX)


@pytest.mark.parametrize(
    "response_format",
    [{"type": "json_object"}, {"type": "json_schema", "json_schema": {"name": "x"}}],
    ids=["json_object", "json_schema_without_schema"],
)
def test_json_mode_is_an_instruction_in_the_system_prompt(response_format: dict[str, Any]) -> None:
    params, strict_used = anthropic_params(chat(response_format=response_format), max_tokens_default=512)
    assert not strict_used
    assert params["system"] == JSON_INSTRUCTION
    accepted(params)


def test_an_instruction_already_in_the_system_prompt_is_not_repeated() -> None:
    """`adapt_to_model` already wrote it for a model without structured output."""
    system = {"role": "system", "content": "Review.\n\n" + JSON_INSTRUCTION}
    params = params_of(chat(system, user("Go."), response_format={"type": "json_object"}))
    assert params["system"] == "Review.\n\n" + JSON_INSTRUCTION


def test_the_instruction_joins_cached_system_blocks_as_a_block_of_its_own() -> None:
    cached = {"type": "text", "text": "Context.", "cache_control": {"type": "ephemeral"}}
    params = params_of(
        chat({"role": "system", "content": [cached]}, user("Go."), response_format={"type": "json_object"})
    )
    assert params["system"] == [cached, {"type": "text", "text": JSON_INSTRUCTION}]


def test_strict_used_lets_the_nulls_for_optional_properties_be_stripped() -> None:
    request = chat(response_format=json_schema(PR_SCHEMA))
    _params, strict_used = anthropic_params(request, max_tokens_default=512)
    expectation = expectation_for(request, None, strict_used=strict_used)
    answer = {"summary": "Fixes a flaky test.", "risk_level": "low", "score": None, "files": None}
    outcome = classify_anthropic(succeeded(orjson.dumps(answer).decode()), expectation)
    assert outcome.succeeded, outcome.error_message
    assert outcome.output == {"summary": "Fixes a flaky test.", "risk_level": "low"}


# --- the line --------------------------------------------------------------------------------------------


def test_two_equal_requests_are_the_same_bytes() -> None:
    first = chat({"role": "system", "content": "S."}, user("U."), max_completion_tokens=99, stop="X")
    second = {key: first[key] for key in reversed(list(first))}
    line_a = anthropic_line("it-1", params_of(first))
    line_b = anthropic_line("it-1", params_of(second))
    assert line_a == line_b
    assert line_a.endswith(b"}\n") and line_a.count(b"\n") == 1
    decoded = orjson.loads(line_a)
    assert decoded == {"custom_id": "it-1", "params": params_of(first)}
    assert line_a.startswith(b'{"custom_id":"it-1","params":{"max_tokens":99,"messages":')


# --- results ---------------------------------------------------------------------------------------------


def succeeded(
    text: str | None,
    *,
    stop_reason: str = "end_turn",
    usage: dict[str, Any] | None = None,
    custom_id: str = "it-1",
    **message: Any,
) -> dict[str, Any]:
    content = [] if text is None else [{"type": "text", "text": text}]
    return {
        "custom_id": custom_id,
        "result": {
            "type": "succeeded",
            "message": {
                "id": "msg_014VwiXbi91y3JMjcpyGBHX5",
                "type": "message",
                "role": "assistant",
                "model": "claude-haiku-4-5-20251001",
                "content": content,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": usage if usage is not None else {"input_tokens": 11, "output_tokens": 36},
                **message,
            },
        },
    }


def errored(error_type: str | None, message: str = "something went wrong") -> dict[str, Any]:
    inner = {"message": message} if error_type is None else {"type": error_type, "message": message}
    error = {"type": "error", "error": inner, "request_id": "req_011CeEQD1VjDQbRSgdjDenZy"}
    return {"custom_id": "it-2", "result": {"type": "errored", "error": error}}


def test_the_documented_success_line() -> None:
    raw = (
        b'{"custom_id":"my-second-request","result":{"type":"succeeded","message":'
        b'{"id":"msg_014VwiXbi91y3JMjcpyGBHX5","type":"message","role":"assistant","model":"claude-opus-5",'
        b'"content":[{"type":"text","text":"Hello again!"}],"stop_reason":"end_turn","stop_sequence":null,'
        b'"usage":{"input_tokens":11,"output_tokens":36}}}}'
    )
    line = parse_result_line(raw)
    assert line is not None
    assert classify_anthropic(line, NO_JSON) == Outcome(
        custom_id="my-second-request",
        succeeded=True,
        error_code=None,
        error_message=None,
        content="Hello again!",
        output=None,
        finish_reason="end_turn",
        usage=Usage(11, 36),
        provider_request_id="msg_014VwiXbi91y3JMjcpyGBHX5",
    )


def test_usage_counts_cache_writes_and_reads_as_input() -> None:
    usage = {
        "input_tokens": 20,
        "cache_creation_input_tokens": 4096,
        "cache_read_input_tokens": 1000,
        "cache_creation": {"ephemeral_5m_input_tokens": 4096, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 50,
        "service_tier": "batch",
    }
    outcome = classify_anthropic(succeeded("Fine.", usage=usage), NO_JSON)
    assert outcome.usage == Usage(
        input_tokens=5116, output_tokens=50, cached_input_tokens=1000, cache_write_tokens=4096
    )


def test_null_cache_counts_are_zero() -> None:
    usage = {
        "input_tokens": 5,
        "output_tokens": 2,
        "cache_creation_input_tokens": None,
        "cache_read_input_tokens": None,
    }
    assert classify_anthropic(succeeded("ok", usage=usage), NO_JSON).usage == Usage(5, 2)


def test_text_blocks_are_joined_and_other_blocks_ignored() -> None:
    line = succeeded(None, stop_reason="tool_use")
    line["result"]["message"]["content"] = [
        {"type": "text", "text": '{"summary": "Fixes a flaky test.", '},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
        {"type": "text", "text": '"risk_level": "low"}'},
    ]
    outcome = classify_anthropic(line, WITH_SCHEMA)
    assert outcome.succeeded
    assert outcome.output == {"summary": "Fixes a flaky test.", "risk_level": "low"}
    assert outcome.finish_reason == "tool_use"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Sure, here it is.", codes.INVALID_JSON),
        ('{"summary": "x", "risk_level": "extreme"}', codes.SCHEMA_MISMATCH),
        (None, codes.INVALID_JSON),
    ],
)
def test_an_answer_that_is_not_the_json_asked_for_fails(text: str | None, code: str) -> None:
    outcome = classify_anthropic(succeeded(text, stop_reason="stop_sequence"), WITH_SCHEMA)
    assert (outcome.succeeded, outcome.error_code, outcome.content) == (False, code, text)
    assert outcome.usage == Usage(11, 36)


def test_max_tokens_keeps_the_cut_answer() -> None:
    outcome = classify_anthropic(succeeded('{"summary": "The PR', stop_reason="max_tokens"), WITH_SCHEMA)
    assert (outcome.error_code, outcome.content, outcome.finish_reason) == (
        codes.MAX_TOKENS,
        '{"summary": "The PR',
        "max_tokens",
    )


def test_a_refusal_is_refused_with_its_explanation() -> None:
    details = {"type": "refusal", "category": "cyber", "explanation": "This request was declined."}
    outcome = classify_anthropic(succeeded(None, stop_reason="refusal", stop_details=details), WITH_SCHEMA)
    assert (outcome.error_code, outcome.error_message) == (
        codes.REFUSED,
        "This request was declined. (category: cyber)",
    )
    assert outcome.provider_request_id == "msg_014VwiXbi91y3JMjcpyGBHX5"


def test_a_refusal_without_details() -> None:
    outcome = classify_anthropic(succeeded(None, stop_reason="refusal", stop_details=None), NO_JSON)
    assert (outcome.error_code, outcome.error_message) == (codes.REFUSED, "the model refused")


@pytest.mark.parametrize(
    ("stop_reason", "code"),
    [("model_context_window_exceeded", codes.CONTEXT_LENGTH_EXCEEDED), ("pause_turn", codes.PROVIDER_ERROR)],
)
def test_other_stops_that_are_not_an_answer(stop_reason: str, code: str) -> None:
    assert classify_anthropic(succeeded("partial", stop_reason=stop_reason), NO_JSON).error_code == code


@pytest.mark.parametrize(
    ("error_type", "message", "code", "status"),
    [
        ("invalid_request_error", "max_tokens: Field required", codes.INVALID_REQUEST_ERROR, 400),
        (
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            codes.CONTEXT_LENGTH_EXCEEDED,
            400,
        ),
        ("not_found_error", "model: claude-3-5-haiku-latest", codes.MODEL_NOT_FOUND, 404),
        ("permission_error", "Claude Fable 5 is not available.", "permission_error", 403),
        ("api_error", "Internal server error", codes.PROVIDER_SERVER_ERROR, 500),
        ("overloaded_error", "Overloaded", codes.PROVIDER_SERVER_ERROR, 529),
        ("rate_limit_error", "Rate limited", codes.PROVIDER_SERVER_ERROR, 429),
        ("timeout_error", "Timed out", codes.PROVIDER_SERVER_ERROR, 504),
        ("some_new_error", "New", codes.PROVIDER_SERVER_ERROR, None),
        (None, "No type", codes.PROVIDER_ERROR, None),
    ],
)
def test_errored_results(error_type: str | None, message: str, code: str, status: int | None) -> None:
    outcome = classify_anthropic(errored(error_type, message), NO_JSON)
    assert (outcome.succeeded, outcome.error_code, outcome.error_message) == (False, code, message)
    assert (outcome.http_status, outcome.provider_request_id) == (status, "req_011CeEQD1VjDQbRSgdjDenZy")
    assert outcome.usage == Usage()


@pytest.mark.parametrize(("kind", "code"), [("expired", codes.BATCH_EXPIRED), ("canceled", codes.CANCELLED)])
def test_requests_that_never_ran(kind: str, code: str) -> None:
    outcome = classify_anthropic({"custom_id": "it-3", "result": {"type": kind}}, WITH_SCHEMA)
    assert (outcome.custom_id, outcome.succeeded, outcome.error_code, outcome.usage) == ("it-3", False, code, Usage())


@pytest.mark.parametrize(
    "line",
    [
        {"custom_id": "it-1"},
        {"custom_id": "it-1", "result": "succeeded"},
        {"custom_id": "it-1", "result": {"type": "paused"}},
        {"custom_id": "it-1", "result": {"type": "succeeded"}},
        {"custom_id": "it-1", "result": {"type": "succeeded", "message": {"content": "hi"}}},
    ],
)
def test_lines_without_the_expected_shape_are_malformed(line: dict[str, Any]) -> None:
    outcome = classify_anthropic(line, NO_JSON)
    assert (outcome.custom_id, outcome.error_code) == ("it-1", codes.MALFORMED_RESULT)
    assert outcome.error_message is not None and outcome.error_message.startswith("malformed result line")


def test_a_line_without_custom_id_is_malformed() -> None:
    outcome = classify_anthropic({"result": {"type": "expired"}}, NO_JSON)
    assert (outcome.custom_id, outcome.error_code) == ("", codes.MALFORMED_RESULT)


@pytest.mark.parametrize(
    "code",
    [codes.REFUSED, codes.INVALID_REQUEST_ERROR, codes.CONTEXT_LENGTH_EXCEEDED, codes.MODEL_NOT_FOUND],
)
def test_the_codes_this_wire_assigns_are_described(code: str) -> None:
    assert codes.CODE_DESCRIPTIONS[code].strip()


# --- through the SDK and the emulator --------------------------------------------------------------------


def _models(**changes: dict[str, Any]) -> dict[str, ModelSpec]:
    models = default_models()
    for name, fields in changes.items():
        models[name] = dataclasses.replace(models[name], **fields)
    return models


async def _round_trip(requests: dict[str, dict[str, Any]], **config: Any) -> dict[str, dict[str, Any]]:
    """Send the lines with the official SDK; the emulator's result lines, as JSON, by custom_id."""
    emulator = Emulator(manual_config(**config))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        lines = [orjson.loads(anthropic_line(line_id, params)) for line_id, params in requests.items()]
        batch = await run_batch(client, emulator, lines)
        found = [line async for line in await client.messages.batches.results(batch.id)]
    return {line.custom_id: line.model_dump(mode="json") for line in found}


async def test_lines_round_trip_through_the_sdk_and_the_emulator() -> None:
    fitting, strict_fit = anthropic_params(
        chat({"role": "system", "content": "You review."}, user("Review it."), response_format=json_schema(PR_SCHEMA)),
        max_tokens_default=2048,
    )
    too_complex, strict_complex = anthropic_params(
        chat(response_format=json_schema(_optional_strings(20))), max_tokens_default=2048
    )
    retired, _ = anthropic_params({**chat(), "model": "claude-3-5-haiku-latest"}, max_tokens_default=512)
    too_many, _ = anthropic_params(chat(max_completion_tokens=1_000_000), max_tokens_default=512)
    assert strict_fit and not strict_complex
    requests = {"fits": fitting, "complex": too_complex, "retired": retired, "too_many": too_many}
    results = await _round_trip(requests, models=_models(**{MODEL: {"refusal": 0.0, "length": 0.0}}))

    fits = classify_anthropic(
        results["fits"], expectation_for(chat(response_format=json_schema(PR_SCHEMA)), None, strict_used=True)
    )
    assert fits.succeeded, fits.error_message
    assert set(fits.output) >= {"summary", "risk_level"} and fits.usage.input_tokens > 0
    complex_ = classify_anthropic(results["complex"], OutputExpectation(json_required=True, schema=None))
    assert complex_.error_code == codes.INVALID_JSON  # the emulator writes prose without output_config
    retired_outcome = classify_anthropic(results["retired"], NO_JSON)
    assert (retired_outcome.error_code, retired_outcome.http_status) == (codes.MODEL_NOT_FOUND, 404)
    too_many_outcome = classify_anthropic(results["too_many"], NO_JSON)
    assert (too_many_outcome.error_code, too_many_outcome.http_status) == (codes.INVALID_REQUEST_ERROR, 400)


async def test_refusals_and_truncations_from_the_emulator() -> None:
    models = _models(**{MODEL: {"refusal": 1.0}, "claude-sonnet-4-5": {"refusal": 0.0, "length": 1.0}})
    refused, _ = anthropic_params(chat(), max_tokens_default=512)
    cut, _ = anthropic_params({**chat(), "model": "claude-sonnet-4-5"}, max_tokens_default=64)
    results = await _round_trip({"refused": refused, "cut": cut}, models=models)
    refusal = classify_anthropic(results["refused"], NO_JSON)
    assert refusal.error_code == codes.REFUSED and refusal.finish_reason == "refusal"
    assert refusal.error_message is not None and "declined" in refusal.error_message
    truncated = classify_anthropic(results["cut"], NO_JSON)
    assert (truncated.error_code, truncated.usage.output_tokens) == (codes.MAX_TOKENS, 64)
