import random
from typing import Any

import orjson
import pytest

from openai_emulator.bodies import REFUSAL_TEXT, Answer, chat_body
from openai_emulator.config import CHAT
from openai_emulator.config import EmulatorConfig as OpenAIEmulatorConfig
from openai_emulator.params import parse
from service.pipeline import failure_codes as codes
from service.pipeline.classify import Outcome, classify_result, parse_result_line, unprocessed
from service.pipeline.cost import Usage
from service.pipeline.expectations import OutputExpectation

PR_SCHEMA = {
    "type": "object",
    "required": ["summary", "risk_level"],
    "properties": {
        "summary": {"type": "string"},
        "risk_level": {"enum": ["low", "medium", "high"]},
        "files": {
            "type": "array",
            "items": {"type": "object", "required": ["path"], "properties": {"path": {"type": "string"}}},
        },
    },
}
NO_JSON = OutputExpectation(json_required=False, schema=None)
JSON_ONLY = OutputExpectation(json_required=True, schema=None)
WITH_SCHEMA = OutputExpectation(json_required=True, schema=PR_SCHEMA)

# GROQ_BATCH_API.md §7, a real output file line.
SUCCESS_LINE = (
    b'{"id":"batch_req_out_01jpra5p4ve4v8k14zkqn6agjm","custom_id":"request-2",'
    b'"response":{"status_code":200,"request_id":"req_01jpra5n2qef6s66k65v8sy51h",'
    b'"body":{"id":"chatcmpl-f822c700-0000","object":"chat.completion","created":1742425217,'
    b'"model":"llama-3.1-8b-instant",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"2 + 2 = 4"},"logprobs":null,'
    b'"finish_reason":"stop"}],'
    b'"usage":{"queue_time":1.0087,"prompt_tokens":55,"prompt_time":0.0099,"completion_tokens":55,'
    b'"completion_time":0.0733,"total_tokens":110,"total_time":0.0832},'
    b'"system_fingerprint":"fp_076aab041c","x_groq":{"id":"req_01jpra5n2qef6s66k65v8sy51h"}}},'
    b'"error":null}'
)

# GROQ_BATCH_API.md §7, a real error file line (no request_id, no top-level error).
JSON_VALIDATE_FAILED_LINE = (
    b'{"id":"batch_req_out_01kd9xbwxjfsvrz95mc0dh0mph","custom_id":"pr-9953",'
    b'"response":{"status_code":400,"body":{"error":'
    b'{"message":"Failed to validate JSON. Please adjust your prompt.",'
    b'"type":"invalid_request_error","code":"json_validate_failed","failed_generation":""}}}}'
)


def completion_line(
    content: str | None,
    *,
    finish_reason: str = "stop",
    custom_id: str = "pr-26313",
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": "batch_req_out_01kd9xbwxjfsvrz95mc0dh0mpa",
        "custom_id": custom_id,
        "response": {
            "status_code": 200,
            "request_id": "req_01kd9xbwxjfsvrz95mc0dh0mpb",
            "body": {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "openai/gpt-oss-20b",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "reasoning": "Let me look."},
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": usage if usage is not None else {"prompt_tokens": 1200, "completion_tokens": 300},
                "x_groq": {"id": "req_01kd9xbwxjfsvrz95mc0dh0mpb"},
            },
        },
        "error": None,
    }


def error_line(status_code: int, error: dict[str, Any], **body_extra: Any) -> dict[str, Any]:
    return {
        "id": "batch_req_out_01kd9xbwxjfsvrz95mc0dh0mpc",
        "custom_id": "pr-9953",
        "response": {
            "status_code": status_code,
            "request_id": "req_01kd9xbwxjfsvrz95mc0dh0mpd",
            "body": {"error": error, **body_extra},
        },
        "error": None,
    }


def expired_line(
    code: str | None, message: str | None = "This request could not be executed in time."
) -> dict[str, Any]:
    error: dict[str, Any] = {}
    if code is not None:
        error["code"] = code
    if message is not None:
        error["message"] = message
    return {"id": "batch_req_out_x", "custom_id": "pr-1", "response": None, "error": error}


VALID_OUTPUT = {"summary": "Fixes a flaky test.", "risk_level": "low"}


# --- parse_result_line -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", [SUCCESS_LINE, SUCCESS_LINE.decode(), SUCCESS_LINE + b"\n"])
def test_parse_accepts_bytes_and_str(raw: bytes | str) -> None:
    line = parse_result_line(raw)
    assert line is not None
    assert line["custom_id"] == "request-2"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"not json",
        b'{"custom_id": "pr-1"',
        b'["pr-1"]',
        b'"pr-1"',
        b'{"id": "x"}',
        b'{"custom_id": 7}',
    ],
)
def test_parse_rejects_lines_without_a_string_custom_id(raw: bytes) -> None:
    assert parse_result_line(raw) is None


# --- rule 3: status 200 ----------------------------------------------------------------------


def test_real_success_line_without_json_expectation() -> None:
    line = parse_result_line(SUCCESS_LINE)
    assert line is not None
    assert classify_result(line, NO_JSON) == Outcome(
        custom_id="request-2",
        succeeded=True,
        error_code=None,
        error_message=None,
        content="2 + 2 = 4",
        output=None,
        finish_reason="stop",
        usage=Usage(input_tokens=55, output_tokens=55),
        provider_request_id="req_01jpra5n2qef6s66k65v8sy51h",
    )


def test_json_content_that_matches_the_schema_succeeds() -> None:
    content = orjson.dumps(VALID_OUTPUT).decode()
    outcome = classify_result(completion_line(content), WITH_SCHEMA)
    assert outcome.succeeded
    assert outcome.error_code is None
    assert outcome.output == VALID_OUTPUT
    assert outcome.content == content
    assert outcome.usage == Usage(1200, 300)


def test_json_without_schema_only_needs_to_parse() -> None:
    outcome = classify_result(completion_line('{"anything": [1, 2]}'), JSON_ONLY)
    assert outcome.succeeded
    assert outcome.output == {"anything": [1, 2]}


def test_json_content_is_not_parsed_when_json_was_not_asked_for() -> None:
    outcome = classify_result(completion_line('{"a": 1}'), NO_JSON)
    assert outcome.succeeded
    assert outcome.output is None
    assert outcome.content == '{"a": 1}'


@pytest.mark.parametrize(
    "content",
    [
        '  \n{"summary": "Fixes a flaky test.", "risk_level": "low"}\n ',
        '```json\n{"summary": "Fixes a flaky test.", "risk_level": "low"}\n```',
        '```JSON\n{"summary": "Fixes a flaky test.", "risk_level": "low"}```',
        '```\n{"summary": "Fixes a flaky test.", "risk_level": "low"}\n```\n',
    ],
    ids=["whitespace", "json_fence", "upper_fence_no_newline", "bare_fence"],
)
def test_json_content_is_accepted_with_whitespace_or_a_fence(content: str) -> None:
    outcome = classify_result(completion_line(content), WITH_SCHEMA)
    assert outcome.succeeded, outcome.error_message
    assert outcome.output == VALID_OUTPUT


@pytest.mark.parametrize(
    ("content", "message_part"),
    [
        ("Sure! Here is the review: it looks fine.", "not valid JSON"),
        ('{"summary": "cut off', "not valid JSON"),
        ("```json\nnot json\n```", "not valid JSON"),
        ("", "empty"),
        ("   ", "empty"),
        (None, "empty"),
    ],
)
def test_content_that_is_not_json_is_invalid_json(content: str | None, message_part: str) -> None:
    outcome = classify_result(completion_line(content), WITH_SCHEMA)
    assert not outcome.succeeded
    assert outcome.error_code == codes.INVALID_JSON
    assert outcome.error_message is not None
    assert message_part in outcome.error_message
    assert outcome.content == content
    assert outcome.output is None
    assert outcome.usage == Usage(1200, 300)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (
            {"summary": "x", "risk_level": "extreme"},
            '$.risk_level: "extreme" is not one of "low", "medium" or "high"',
        ),
        ({"risk_level": "low"}, '$: "summary" is a required property'),
        ({"summary": 42, "risk_level": "low"}, '$.summary: 42 is not of type "string"'),
        (
            {"summary": "x", "risk_level": "low", "files": [{"path": "a.py"}, {"path": 3}]},
            '$.files[1].path: 3 is not of type "string"',
        ),
        (["summary"], '$: ["summary"] is not of type "object"'),
    ],
)
def test_json_that_does_not_validate_is_schema_mismatch(output: Any, message: str) -> None:
    outcome = classify_result(completion_line(orjson.dumps(output).decode()), WITH_SCHEMA)
    assert not outcome.succeeded
    assert outcome.error_code == codes.SCHEMA_MISMATCH
    assert outcome.error_message == message
    assert outcome.output is None
    assert outcome.usage == Usage(1200, 300)


def test_schema_with_defs_and_refs() -> None:
    schema = {
        "$defs": {"level": {"enum": ["low", "high"]}},
        "type": "object",
        "properties": {"risk_level": {"$ref": "#/$defs/level"}},
    }
    expectation = OutputExpectation(json_required=True, schema=schema)
    assert classify_result(completion_line('{"risk_level": "low"}'), expectation).succeeded
    outcome = classify_result(completion_line('{"risk_level": "mid"}'), expectation)
    assert outcome.error_code == codes.SCHEMA_MISMATCH
    assert outcome.error_message is not None
    assert outcome.error_message.startswith("$.risk_level:")


def test_invalid_schema_fails_the_item_instead_of_raising() -> None:
    expectation = OutputExpectation(json_required=True, schema={"type": "strin"})
    outcome = classify_result(completion_line("{}"), expectation)
    assert outcome.error_code == codes.SCHEMA_MISMATCH
    assert outcome.error_message is not None
    assert "not a valid JSON Schema" in outcome.error_message


@pytest.mark.parametrize("expectation", [NO_JSON, WITH_SCHEMA])
def test_finish_reason_length_is_max_tokens_and_keeps_content(expectation: OutputExpectation) -> None:
    content = orjson.dumps(VALID_OUTPUT).decode()
    outcome = classify_result(completion_line(content, finish_reason="length"), expectation)
    assert not outcome.succeeded
    assert outcome.error_code == codes.MAX_TOKENS
    assert outcome.content == content
    assert outcome.finish_reason == "length"
    assert outcome.output is None
    assert outcome.usage == Usage(1200, 300)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({}, Usage(0, 0)),
        ({"prompt_tokens": 10}, Usage(10, 0)),
        ({"completion_tokens": 7, "total_tokens": 7}, Usage(0, 7)),
        ({"prompt_tokens": "10", "completion_tokens": None}, Usage(0, 0)),
    ],
)
def test_missing_usage_counts_as_zero(usage: dict[str, Any], expected: Usage) -> None:
    assert classify_result(completion_line("hi", usage=usage), NO_JSON).usage == expected


def test_request_id_falls_back_to_x_groq_id() -> None:
    line = completion_line("hi")
    del line["response"]["request_id"]
    line["response"]["body"]["x_groq"]["id"] = "req_from_x_groq"
    assert classify_result(line, NO_JSON).provider_request_id == "req_from_x_groq"


@pytest.mark.parametrize("expectation", [NO_JSON, WITH_SCHEMA])
def test_a_refusal_is_refused_before_the_json_checks(expectation: OutputExpectation) -> None:
    line = completion_line(None)
    line["response"]["body"]["choices"][0]["message"]["refusal"] = "I'm sorry, but I can't help with that."
    outcome = classify_result(line, expectation)
    assert (outcome.succeeded, outcome.error_code) == (False, codes.REFUSED)
    assert outcome.error_message == "I'm sorry, but I can't help with that."
    assert (outcome.content, outcome.finish_reason, outcome.usage) == (None, "stop", Usage(1200, 300))


@pytest.mark.parametrize("refusal", [None, ""])
def test_an_empty_refusal_is_no_refusal(refusal: str | None) -> None:
    line = completion_line(orjson.dumps(VALID_OUTPUT).decode())
    line["response"]["body"]["choices"][0]["message"]["refusal"] = refusal
    assert classify_result(line, WITH_SCHEMA).succeeded


def test_the_content_filter_is_a_refusal() -> None:
    outcome = classify_result(completion_line("The answer is", finish_reason="content_filter"), NO_JSON)
    assert (outcome.error_code, outcome.content, outcome.finish_reason) == (
        codes.REFUSED,
        "The answer is",
        "content_filter",
    )


def test_a_refusal_line_from_the_openai_emulator() -> None:
    body = {
        "model": "gpt-5-mini",
        "messages": [{"role": "user", "content": "Review it."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "review", "schema": PR_SCHEMA}},
    }
    call = parse(body, CHAT, OpenAIEmulatorConfig())
    answer = Answer(None, REFUSAL_TEXT, prompt=40, cached=0, visible=9, reasoning=0, truncated=False)
    response = {"status_code": 200, "request_id": "req_1", "body": chat_body(call, answer, random.Random(0), 0.0)}
    outcome = classify_result({"custom_id": "it-1", "response": response, "error": None}, WITH_SCHEMA)
    assert (outcome.error_code, outcome.error_message) == (codes.REFUSED, REFUSAL_TEXT)


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        ({"cached_tokens": 1024, "cache_write_tokens": 128, "audio_tokens": 0}, Usage(1200, 300, 1024, 128)),
        ({"cached_tokens": 1024}, Usage(1200, 300, 1024, 0)),
        ({"cached_tokens": None}, Usage(1200, 300)),
        (None, Usage(1200, 300)),
    ],
)
def test_cached_prompt_tokens_are_part_of_the_input(details: dict[str, Any] | None, expected: Usage) -> None:
    usage = {"prompt_tokens": 1200, "completion_tokens": 300, "prompt_tokens_details": details}
    assert classify_result(completion_line("hi", usage=usage), NO_JSON).usage == expected


def test_usage_with_cache_counts_adds_field_by_field() -> None:
    total = Usage(10, 3, 4, 1) + Usage(5, 7, 2, 0)
    assert total == Usage(input_tokens=15, output_tokens=10, cached_input_tokens=6, cache_write_tokens=1)
    assert total.total == 25


# --- rule 2: status != 200 -------------------------------------------------------------------


def test_real_json_validate_failed_line_passes_the_code_through() -> None:
    line = parse_result_line(JSON_VALIDATE_FAILED_LINE)
    assert line is not None
    assert classify_result(line, WITH_SCHEMA) == Outcome(
        custom_id="pr-9953",
        succeeded=False,
        error_code="json_validate_failed",
        error_message="Failed to validate JSON. Please adjust your prompt.",
        content=None,
        output=None,
        finish_reason=None,
        usage=Usage(),
        provider_request_id=None,
        http_status=400,
    )


@pytest.mark.parametrize(
    "failed_generation",
    [
        "max completion tokens reached before generating a valid document",
        "Max Completion Tokens reached",
    ],
)
def test_json_validate_failed_for_max_tokens_becomes_max_tokens(failed_generation: str) -> None:
    line = error_line(
        400,
        {
            "message": "Failed to generate JSON. Please adjust your prompt. See 'failed_generation' for more details.",
            "type": "invalid_request_error",
            "code": "json_validate_failed",
            "failed_generation": failed_generation,
        },
    )
    outcome = classify_result(line, WITH_SCHEMA)
    assert outcome.error_code == codes.MAX_TOKENS
    assert outcome.error_message is not None
    assert outcome.error_message.startswith("Failed to generate JSON.")
    assert failed_generation in outcome.error_message


def test_json_validate_failed_with_partial_generation_stays_json_validate_failed() -> None:
    line = error_line(
        400,
        {
            "message": "Failed to generate JSON. Please adjust your prompt. See 'failed_generation' for more details.",
            "type": "invalid_request_error",
            "code": "json_validate_failed",
            "failed_generation": '{"summary": "The PR',
        },
    )
    assert classify_result(line, WITH_SCHEMA).error_code == "json_validate_failed"


def test_error_without_code_is_provider_error_with_param() -> None:
    line = error_line(
        400,
        {
            "message": "`max_tokens` must be less than or equal to `32768`, "
            "the maximum value for `max_tokens` is less than the `context_window` for this model",
            "type": "invalid_request_error",
            "param": "max_tokens",
        },
    )
    outcome = classify_result(line, NO_JSON)
    assert outcome.error_code == codes.PROVIDER_ERROR
    assert outcome.error_message is not None
    assert outcome.error_message.startswith("`max_tokens` must be less than or equal to `32768`")
    assert outcome.error_message.endswith("(param: max_tokens)")
    assert outcome.provider_request_id == "req_01kd9xbwxjfsvrz95mc0dh0mpd"


@pytest.mark.parametrize(
    ("status_code", "error", "code"),
    [
        (
            429,
            {
                "message": "Rate limit reached for model `openai/gpt-oss-20b`. Please try again in 2s.",
                "type": "tokens",
                "code": "rate_limit_exceeded",
            },
            "rate_limit_exceeded",
        ),
        (
            404,
            {
                "message": "The model `x` does not exist.",
                "type": "invalid_request_error",
                "code": "model_not_found",
            },
            "model_not_found",
        ),
        (
            400,
            {"message": "bad tool call", "type": "invalid_request_error", "code": "tool_use_failed"},
            "tool_use_failed",
        ),
        (500, {"message": "Internal Server Error", "type": "internal_server_error"}, codes.PROVIDER_SERVER_ERROR),
        (400, {"message": "bad", "code": ""}, codes.PROVIDER_ERROR),
    ],
)
def test_provider_error_codes(status_code: int, error: dict[str, Any], code: str) -> None:
    outcome = classify_result(error_line(status_code, error), NO_JSON)
    assert not outcome.succeeded
    assert outcome.error_code == code
    assert outcome.error_message == error["message"]


@pytest.mark.parametrize("body", [None, {}, "Bad Gateway", {"error": "oops"}])
def test_a_5xx_without_error_object_is_a_provider_server_error(body: Any) -> None:
    line = {"custom_id": "pr-1", "response": {"status_code": 502, "body": body}, "error": None}
    outcome = classify_result(line, NO_JSON)
    assert outcome.error_code == codes.PROVIDER_SERVER_ERROR and outcome.http_status == 502
    assert outcome.error_message == "provider returned HTTP 502"


def test_error_response_usage_is_kept() -> None:
    line = error_line(
        400,
        {"message": "Failed to validate JSON.", "code": "json_validate_failed", "failed_generation": ""},
        usage={"prompt_tokens": 900, "completion_tokens": 2048},
    )
    assert classify_result(line, WITH_SCHEMA).usage == Usage(900, 2048)


# --- rule 1: top-level error -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider_code", "code"),
    [
        ("batch_expired", codes.BATCH_EXPIRED),
        ("batch_cancelled", codes.CANCELLED),
        ("some_new_code", "some_new_code"),
        (None, codes.PROVIDER_ERROR),
        ("", codes.PROVIDER_ERROR),
    ],
)
def test_top_level_error_codes(provider_code: str | None, code: str) -> None:
    outcome = classify_result(expired_line(provider_code), WITH_SCHEMA)
    assert outcome == unprocessed("pr-1", code, "This request could not be executed in time.")


def test_top_level_error_without_message_uses_the_code() -> None:
    outcome = classify_result(expired_line("batch_expired", message=None), NO_JSON)
    assert outcome.error_message == "batch_expired"


def test_top_level_error_wins_over_a_response() -> None:
    line = completion_line("fine")
    line["error"] = {"code": "batch_cancelled", "message": "cancelled"}
    assert classify_result(line, NO_JSON).error_code == codes.CANCELLED


def test_top_level_error_that_is_a_string() -> None:
    line = {"custom_id": "pr-1", "response": None, "error": "something broke"}
    outcome = classify_result(line, NO_JSON)
    assert (outcome.error_code, outcome.error_message) == (codes.PROVIDER_ERROR, "something broke")


# --- rule 4: malformed -----------------------------------------------------------------------


def _without(path: list[str | int]) -> dict[str, Any]:
    line = completion_line("hi")
    target: Any = line
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return line


def _with(path: list[str | int], value: Any) -> dict[str, Any]:
    line = completion_line("hi")
    target: Any = line
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return line


@pytest.mark.parametrize(
    "line",
    [
        {"custom_id": "pr-26313"},
        _with(["response"], None),
        _with(["response"], "ok"),
        _without(["response", "status_code"]),
        _with(["response", "status_code"], "200"),
        _with(["response", "status_code"], True),
        _without(["response", "body"]),
        _with(["response", "body"], "ok"),
        _without(["response", "body", "choices"]),
        _with(["response", "body", "choices"], []),
        _with(["response", "body", "choices"], ["hi"]),
        _without(["response", "body", "choices", 0, "message"]),
    ],
)
def test_lines_without_the_expected_shape_are_malformed(line: dict[str, Any]) -> None:
    outcome = classify_result(line, NO_JSON)
    assert not outcome.succeeded
    assert outcome.error_code == codes.MALFORMED_RESULT
    assert outcome.custom_id == "pr-26313"
    assert outcome.error_message is not None
    assert outcome.error_message.startswith("malformed result line")


def test_line_without_custom_id_is_malformed() -> None:
    outcome = classify_result({"response": None}, NO_JSON)
    assert outcome.error_code == codes.MALFORMED_RESULT
    assert outcome.custom_id == ""


# --- unprocessed -----------------------------------------------------------------------------


def test_unprocessed_is_a_failure_with_zero_usage() -> None:
    assert unprocessed("pr-7", codes.MISSING_RESULT, "no line for this item") == Outcome(
        custom_id="pr-7",
        succeeded=False,
        error_code="missing_result",
        error_message="no line for this item",
        content=None,
        output=None,
        finish_reason=None,
        usage=Usage(0, 0),
        provider_request_id=None,
    )


def test_classifies_a_backfill_sized_run() -> None:
    content = orjson.dumps(VALID_OUTPUT).decode()
    lines = [completion_line(content, custom_id=f"pr-{i}") for i in range(21_000)]
    outcomes = [classify_result(line, WITH_SCHEMA) for line in lines]
    assert all(outcome.succeeded for outcome in outcomes)
