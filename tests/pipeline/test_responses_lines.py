"""OpenAI's /v1/responses wire: the body for a chat body, and the reading of output and error lines.

Bodies are checked against the installed SDK's parameter types (the keys `ResponseCreateParamsNonStreaming` and
the input item types know) and the OpenAI emulator's own line validation; one test runs lines through the
official SDK and the emulator and reads back what it answers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from openai.types.responses.easy_input_message_param import EasyInputMessageParam
from openai.types.responses.function_tool_param import FunctionToolParam
from openai.types.responses.response_create_params import ResponseCreateParamsNonStreaming
from openai.types.responses.response_function_tool_call_param import ResponseFunctionToolCallParam
from openai.types.responses.response_input_item_param import FunctionCallOutput

from openai_emulator import Emulator, create_emulator_app, default_models
from openai_emulator.config import RESPONSES, ModelSpec
from openai_emulator.params import parse
from service.pipeline import failure_codes as codes
from service.pipeline.catalogue import StructuredOutput
from service.pipeline.classify import Outcome
from service.pipeline.cost import Usage
from service.pipeline.expectations import OutputExpectation, expectation_for
from service.pipeline.requests import adapt_to_model, merge_request
from service.pipeline.responses_lines import classify_responses, responses_body
from tests.openai_emulator.helpers import asgi_client, manual_config, results, run_batch, to_jsonl

MODEL = "gpt-5.4-mini"
EMULATOR = manual_config()
PR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["summary", "risk_level"],
    "properties": {
        "summary": {"type": "string"},
        "risk_level": {"enum": ["low", "medium", "high"]},
        "files": {"type": "array", "items": {"type": "string"}},
    },
}
NO_JSON = OutputExpectation(json_required=False, schema=None)
WITH_SCHEMA = OutputExpectation(json_required=True, schema=PR_SCHEMA)
CREATE_KEYS = ResponseCreateParamsNonStreaming.__required_keys__ | ResponseCreateParamsNonStreaming.__optional_keys__
# The SDK type of each input item, by the item's "type" (a message has none).
ITEM_TYPES: dict[str | None, Any] = {
    None: EasyInputMessageParam,
    "function_call": ResponseFunctionToolCallParam,
    "function_call_output": FunctionCallOutput,
}


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": list(messages) or [{"role": "user", "content": "Review it."}], **extra}


def typed_as_the_sdk_says(body: dict[str, Any]) -> None:
    """Every key is one the SDK types for the endpoint, and every input item has its type's required keys."""
    assert set(body) <= CREATE_KEYS, set(body) - CREATE_KEYS
    for item in body["input"]:
        typed = ITEM_TYPES[item.get("type")]
        assert typed.__required_keys__ <= set(item) <= typed.__required_keys__ | typed.__optional_keys__, item
    for tool in body.get("tools", []):
        assert FunctionToolParam.__required_keys__ <= set(tool)


def accepted(body: dict[str, Any]) -> None:
    """The emulator checks the line as OpenAI does; LineError when it would refuse it."""
    parse(body, RESPONSES, EMULATOR)


# --- the body --------------------------------------------------------------------------------------------


def test_the_body_of_a_plain_chat_request() -> None:
    body = responses_body(
        chat(
            {"role": "system", "content": "You review pull requests."},
            {"role": "user", "content": "Here is the diff."},
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": "What is the risk?"},
            max_completion_tokens=500,
            reasoning_effort="low",
        )
    )
    assert body == {
        "model": MODEL,
        "input": [
            {"role": "system", "content": "You review pull requests."},
            {"role": "user", "content": "Here is the diff."},
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": "What is the risk?"},
        ],
        "max_output_tokens": 500,
        "reasoning": {"effort": "low"},
        "store": False,
    }
    typed_as_the_sdk_says(body)
    accepted(body)


def test_content_parts_become_input_parts() -> None:
    file_part = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}
    body = responses_body(
        chat(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare."},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    file_part,
                    {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                ],
            }
        )
    )
    assert body["input"][0]["content"] == [
        {"type": "input_text", "text": "Compare."},
        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
        {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
    ]
    typed_as_the_sdk_says(body)
    accepted(body)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"max_completion_tokens": 300, "max_tokens": 900}, 300),
        ({"max_tokens": 900}, 900),
        ({"max_completion_tokens": 5}, 16),
        ({}, None),
    ],
)
def test_max_output_tokens(extra: dict[str, Any], expected: int | None) -> None:
    body = responses_body(chat(**extra))
    assert body.get("max_output_tokens") == expected
    accepted(body)


def test_a_strict_json_schema_moves_into_text_format() -> None:
    adapted, strict_used = adapt_to_model(
        merge_request({"messages": [{"role": "user", "content": "Review it."}]}, None, None),
        model=MODEL,
        structured_output=StructuredOutput.STRICT,
        output_schema=PR_SCHEMA,
        strict=True,
    )
    assert strict_used
    body = responses_body(adapted)
    text_format = body["text"]["format"]
    assert (text_format["type"], text_format["name"], text_format["strict"]) == ("json_schema", "output", True)
    assert text_format["schema"] == adapted["response_format"]["json_schema"]["schema"]
    assert "response_format" not in body
    typed_as_the_sdk_says(body)
    accepted(body)


def test_a_best_effort_json_schema_keeps_its_name_and_description() -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "review", "description": "A review.", "schema": PR_SCHEMA},
    }
    body = responses_body(chat(response_format=response_format, verbosity="low"))
    assert body["text"] == {
        "format": {
            "type": "json_schema",
            "name": "review",
            "strict": False,
            "schema": PR_SCHEMA,
            "description": "A review.",
        },
        "verbosity": "low",
    }
    accepted(body)


@pytest.mark.parametrize("kind", ["json_object", "text"])
def test_json_object_and_text_formats(kind: str) -> None:
    body = responses_body(chat({"role": "user", "content": "Answer in JSON."}, response_format={"type": kind}))
    assert body["text"] == {"format": {"type": kind}}
    accepted(body)


def test_parameters_of_the_same_meaning_pass_through_and_store_is_kept_when_set() -> None:
    extra = {
        "temperature": 0.2,
        "top_p": 0.9,
        "metadata": {"team": "a"},
        "service_tier": "auto",
        "store": True,
        "user": "u-1",
        "safety_identifier": "s-1",
        "prompt_cache_key": "k-1",
        "prompt_cache_retention": "24h",
        "parallel_tool_calls": False,
    }
    body = responses_body({**chat(), **extra})
    assert {key: body[key] for key in extra} == extra
    typed_as_the_sdk_says(body)


def test_parameters_the_endpoint_lacks_are_dropped() -> None:
    dropped = {
        "stop": ["END"],
        "n": 1,
        "seed": 7,
        "logit_bias": {"50256": -100},
        "presence_penalty": 0.5,
        "frequency_penalty": 0.5,
        "logprobs": True,
        "top_logprobs": 3,
        "stream": False,
        "stream_options": {"include_usage": True},
        "modalities": ["text"],
        "prediction": {"type": "content", "content": "x"},
        "functions": [{"name": "f"}],
        "function_call": "auto",
    }
    body = responses_body(chat(**dropped))
    assert set(body) == {"model", "input", "store"}
    accepted(body)


def test_tools_tool_calls_and_tool_results() -> None:
    parameters = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    body = responses_body(
        chat(
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
            {"role": "assistant", "content": [{"type": "text", "text": "It is "}, {"type": "text", "text": "18 C."}]},
            tools=[
                {
                    "type": "function",
                    "function": {"name": "weather", "description": "Weather", "parameters": parameters},
                },
                {"type": "custom", "custom": {"name": "free_text"}},
            ],
            tool_choice={"type": "function", "function": {"name": "weather"}},
        )
    )
    assert body["input"][1:] == [
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "18 C"},
        {"role": "assistant", "content": "It is 18 C."},
    ]
    assert body["tools"] == [
        {"type": "function", "name": "weather", "parameters": parameters, "strict": False, "description": "Weather"}
    ]
    assert body["tool_choice"] == {"type": "function", "name": "weather"}
    typed_as_the_sdk_says(body)
    accepted(body)


def test_two_equal_chat_bodies_give_equal_responses_bodies() -> None:
    first = chat({"role": "system", "content": "S."}, {"role": "user", "content": "U."}, max_tokens=99, temperature=0)
    second = {key: first[key] for key in reversed(list(first))}
    assert orjson.dumps(responses_body(first), option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        responses_body(second), option=orjson.OPT_SORT_KEYS
    )


# --- output lines ----------------------------------------------------------------------------------------


def response_line(
    output: list[dict[str, Any]],
    *,
    status: str = "completed",
    usage: dict[str, Any] | None = None,
    custom_id: str = "it-1",
    **body: Any,
) -> dict[str, Any]:
    return {
        "id": "batch_req_1",
        "custom_id": custom_id,
        "response": {
            "status_code": 200,
            "request_id": "req_abc",
            "body": {
                "id": "resp_123",
                "object": "response",
                "status": status,
                "error": None,
                "incomplete_details": None,
                "output": output,
                "usage": usage
                if usage is not None
                else {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 30},
                **body,
            },
        },
        "error": None,
    }


def message(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant", "content": list(parts)}


def text(value: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": value}


REASONING = {"id": "rs_1", "type": "reasoning", "summary": []}
VALID = '{"summary": "Fixes a flaky test.", "risk_level": "low"}'


def test_a_completed_response_is_judged_on_its_output_text() -> None:
    line = response_line(
        [REASONING, message(text('{"summary": "Fixes a flaky test.", ')), message(text('"risk_level": "low"}'))]
    )
    assert classify_responses(line, WITH_SCHEMA) == Outcome(
        custom_id="it-1",
        succeeded=True,
        error_code=None,
        error_message=None,
        content=VALID,
        output={"summary": "Fixes a flaky test.", "risk_level": "low"},
        finish_reason="completed",
        usage=Usage(120, 30),
        provider_request_id="req_abc",
    )


@pytest.mark.parametrize(
    ("output", "code"),
    [
        ([message(text("Looks fine to me."))], codes.INVALID_JSON),
        ([message(text('{"summary": "x", "risk_level": "extreme"}'))], codes.SCHEMA_MISMATCH),
        ([REASONING], codes.INVALID_JSON),
    ],
)
def test_a_completed_response_that_is_not_the_json_asked_for(output: list[dict[str, Any]], code: str) -> None:
    outcome = classify_responses(response_line(output), WITH_SCHEMA)
    assert (outcome.succeeded, outcome.error_code) == (False, code)


def test_text_without_json_expectation_succeeds_with_content_only() -> None:
    outcome = classify_responses(response_line([message(text("Looks fine."))]), NO_JSON)
    assert (outcome.succeeded, outcome.content, outcome.output) == (True, "Looks fine.", None)


def test_a_refusal_item_is_refused() -> None:
    line = response_line([message({"type": "refusal", "refusal": "I'm sorry, but I can't help with that."})])
    outcome = classify_responses(line, WITH_SCHEMA)
    assert (outcome.error_code, outcome.error_message, outcome.content) == (
        codes.REFUSED,
        "I'm sorry, but I can't help with that.",
        None,
    )


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("max_output_tokens", codes.MAX_TOKENS),
        ("content_filter", codes.REFUSED),
        ("something_new", codes.PROVIDER_ERROR),
    ],
)
def test_an_incomplete_response(reason: str, code: str) -> None:
    line = response_line(
        [message(text('{"summary": "The'))], status="incomplete", incomplete_details={"reason": reason}
    )
    outcome = classify_responses(line, WITH_SCHEMA)
    assert (outcome.error_code, outcome.finish_reason, outcome.content) == (code, reason, '{"summary": "The')
    assert outcome.usage == Usage(120, 30)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ({"code": "invalid_image_url", "message": "Bad image."}, "invalid_image_url"),
        ({"code": "server_error", "message": "Oops."}, codes.PROVIDER_SERVER_ERROR),
        (None, codes.PROVIDER_ERROR),
    ],
)
def test_a_failed_response_takes_its_errors_code(error: dict[str, Any] | None, code: str) -> None:
    outcome = classify_responses(response_line([], status="failed", error=error), NO_JSON)
    assert (outcome.succeeded, outcome.error_code) == (False, code)
    assert outcome.provider_request_id == "req_abc"


def test_a_cancelled_response() -> None:
    assert classify_responses(response_line([], status="cancelled"), NO_JSON).error_code == codes.CANCELLED


def test_usage_with_cached_and_written_tokens() -> None:
    usage = {
        "input_tokens": 2000,
        "input_tokens_details": {"cached_tokens": 1536, "cache_write_tokens": 128},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 30},
    }
    outcome = classify_responses(response_line([message(text("ok"))], usage=usage), NO_JSON)
    assert outcome.usage == Usage(input_tokens=2000, output_tokens=40, cached_input_tokens=1536, cache_write_tokens=128)


def test_the_request_id_falls_back_to_the_response_id() -> None:
    line = response_line([message(text("ok"))])
    del line["response"]["request_id"]
    assert classify_responses(line, NO_JSON).provider_request_id == "resp_123"


def test_an_error_file_line_is_read_as_on_the_chat_wire() -> None:
    line = {
        "id": "batch_req_2",
        "custom_id": "it-2",
        "response": {
            "status_code": 404,
            "request_id": "465a86c2",
            "body": {
                "error": {
                    "message": "The model `gpt-9` does not exist or you do not have access to it.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "model_not_found",
                }
            },
        },
        "error": None,
    }
    outcome = classify_responses(line, NO_JSON)
    assert (outcome.error_code, outcome.http_status, outcome.provider_request_id) == (
        codes.MODEL_NOT_FOUND,
        404,
        "465a86c2",
    )


def test_a_top_level_error_line() -> None:
    line = {"custom_id": "it-3", "response": None, "error": {"code": "batch_expired", "message": "Too late."}}
    outcome = classify_responses(line, NO_JSON)
    assert (outcome.error_code, outcome.error_message) == (codes.BATCH_EXPIRED, "Too late.")


@pytest.mark.parametrize(
    "body",
    [
        None,
        {"status": 1, "output": []},
        {"status": "completed"},
        {"status": "completed", "output": "text"},
        {"status": "in_progress", "output": []},
    ],
)
def test_lines_without_the_expected_shape_are_malformed(body: Any) -> None:
    line = {"custom_id": "it-1", "response": {"status_code": 200, "body": body}, "error": None}
    outcome = classify_responses(line, NO_JSON)
    assert (outcome.custom_id, outcome.error_code) == ("it-1", codes.MALFORMED_RESULT)


# --- through the SDK and the emulator --------------------------------------------------------------------


def _models(**changes: dict[str, Any]) -> dict[str, ModelSpec]:
    models = default_models()
    for name, fields in changes.items():
        models[name] = dataclasses.replace(models[name], **fields)
    return models


async def _round_trip(bodies: dict[str, dict[str, Any]], **config: Any) -> dict[str, dict[str, Any]]:
    emulator = Emulator(manual_config(**config))
    lines = [
        {"custom_id": custom_id, "method": "POST", "url": RESPONSES, "body": body} for custom_id, body in bodies.items()
    ]
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        batch = await run_batch(client, emulator, to_jsonl(lines), RESPONSES)
        return await results(client, batch)


async def test_lines_round_trip_through_the_sdk_and_the_emulator() -> None:
    request = merge_request({"messages": [{"role": "user", "content": "Review it."}]}, None, None)
    strict, strict_used = adapt_to_model(
        request, model=MODEL, structured_output=StructuredOutput.STRICT, output_schema=PR_SCHEMA, strict=True
    )
    models = _models(**{MODEL: {"refusal": 0.0, "length": 0.0}, "gpt-5-mini": {"refusal": 1.0}})
    bodies = {"strict": responses_body(strict), "short": responses_body(chat(max_completion_tokens=1))}
    found = await _round_trip(bodies, models=models)  # a batch holds one model's lines
    found |= await _round_trip({"refused": responses_body({**chat(), "model": "gpt-5-mini"})}, models=models)
    expectation = expectation_for(request, PR_SCHEMA, strict_used=strict_used)
    answer = classify_responses(found["strict"], expectation)
    assert answer.succeeded, answer.error_message
    assert set(answer.output) >= {"summary", "risk_level"} and answer.usage.input_tokens > 0
    short = classify_responses(found["short"], NO_JSON)
    assert short.error_code == codes.MAX_TOKENS and short.finish_reason == "max_output_tokens"
    refused = classify_responses(found["refused"], NO_JSON)
    assert refused.error_code == codes.REFUSED
