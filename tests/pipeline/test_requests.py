import copy
from typing import Any

import orjson
import pytest

from service.pipeline.requests import adapt_to_model, jsonl_line, merge_request

LLAMA = "llama-3.3-70b-versatile"
GPT_OSS = "openai/gpt-oss-20b"
SCHEMA = {
    "type": "object",
    "required": ["summary", "risk_level"],
    "properties": {"summary": {"type": "string"}, "risk_level": {"enum": ["low", "medium", "high"]}},
}
SCHEMA_TEXT = (
    "Respond with only a JSON object that validates against this JSON Schema:\n"
    '{"type":"object","required":["summary","risk_level"],'
    '"properties":{"summary":{"type":"string"},"risk_level":{"enum":["low","medium","high"]}}}'
)
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "pr_review", "strict": False, "schema": SCHEMA},
}
USER = {"role": "user", "content": "Review PR #26313: fix flaky test."}
SYSTEM = {"role": "system", "content": "You review pull requests."}


# --- merge_request ---------------------------------------------------------------------------


def test_merge_precedence_params_then_body_then_pass_params() -> None:
    merged = merge_request(
        {"messages": [USER], "max_completion_tokens": 2048, "temperature": 0.5},
        {"temperature": 0, "top_p": 0.9, "max_completion_tokens": 1024},
        {"max_completion_tokens": 4096},
    )
    assert merged == {"messages": [USER], "max_completion_tokens": 4096, "temperature": 0.5, "top_p": 0.9}


def test_body_overrides_params_without_pass_params() -> None:
    merged = merge_request({"messages": [USER], "max_completion_tokens": 2048}, {"max_completion_tokens": 1}, {})
    assert merged["max_completion_tokens"] == 2048


@pytest.mark.parametrize(("params", "pass_params"), [(None, None), ({}, {})])
def test_merge_accepts_empty_params(params: dict[str, Any] | None, pass_params: dict[str, Any] | None) -> None:
    assert merge_request({"messages": [USER]}, params, pass_params) == {"messages": [USER]}


@pytest.mark.parametrize(
    ("body", "params", "pass_params"),
    [
        ({"messages": [USER], "model": "x"}, {}, {}),
        ({"messages": [USER]}, {"model": "x"}, {}),
        ({"messages": [USER]}, {}, {"model": "x"}),
    ],
)
def test_merge_drops_model(body: dict[str, Any], params: dict[str, Any], pass_params: dict[str, Any]) -> None:
    assert "model" not in merge_request(body, params, pass_params)


def test_merge_deep_copies() -> None:
    params: dict[str, Any] = {"response_format": copy.deepcopy(JSON_SCHEMA_FORMAT)}
    body = {"messages": [dict(USER)]}
    merged = merge_request(body, params, None)
    merged["messages"][0]["content"] = "changed"
    merged["response_format"]["json_schema"]["schema"]["type"] = "array"
    assert body["messages"][0]["content"] == USER["content"]
    assert params["response_format"]["json_schema"]["schema"]["type"] == "object"


# --- adapt_to_model --------------------------------------------------------------------------


def test_gpt_oss_keeps_json_schema() -> None:
    request = {"messages": [USER], "response_format": JSON_SCHEMA_FORMAT}
    body = adapt_to_model(request, model=GPT_OSS, supports_json_schema=True, output_schema=None)
    assert body == {"model": GPT_OSS, "messages": [USER], "response_format": JSON_SCHEMA_FORMAT}


def test_llama_gets_json_object_and_schema_in_new_system_message() -> None:
    request = {"messages": [USER], "response_format": JSON_SCHEMA_FORMAT, "temperature": 0}
    body = adapt_to_model(request, model=LLAMA, supports_json_schema=False, output_schema=None)
    assert body == {
        "model": LLAMA,
        "messages": [{"role": "system", "content": SCHEMA_TEXT}, USER],
        "response_format": {"type": "json_object"},
        "temperature": 0,
    }


def test_llama_appends_schema_to_existing_system_message() -> None:
    request = {"messages": [SYSTEM, USER], "response_format": JSON_SCHEMA_FORMAT}
    body = adapt_to_model(request, model=LLAMA, supports_json_schema=False, output_schema=None)
    assert body["messages"] == [
        {"role": "system", "content": "You review pull requests.\n\n" + SCHEMA_TEXT},
        USER,
    ]
    assert body["response_format"] == {"type": "json_object"}


def test_system_message_that_is_not_first_is_left_alone() -> None:
    late_system = {"role": "system", "content": "Be brief."}
    request = {"messages": [USER, late_system], "response_format": JSON_SCHEMA_FORMAT}
    body = adapt_to_model(request, model=LLAMA, supports_json_schema=False, output_schema=None)
    assert body["messages"] == [{"role": "system", "content": SCHEMA_TEXT}, USER, late_system]


def test_system_message_with_content_parts_gets_a_text_part() -> None:
    system = {"role": "system", "content": [{"type": "text", "text": "You review pull requests."}]}
    request = {"messages": [system, USER], "response_format": JSON_SCHEMA_FORMAT}
    body = adapt_to_model(request, model=LLAMA, supports_json_schema=False, output_schema=None)
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "You review pull requests."},
        {"type": "text", "text": SCHEMA_TEXT},
    ]


def test_emulator_can_find_the_schema_after_the_marker() -> None:
    request = {"messages": [SYSTEM, USER], "response_format": JSON_SCHEMA_FORMAT}
    body = adapt_to_model(request, model=LLAMA, supports_json_schema=False, output_schema=None)
    content = body["messages"][0]["content"]
    schema_json = content.split("JSON Schema:", 1)[1].strip()
    assert orjson.loads(schema_json) == SCHEMA


def test_output_schema_becomes_json_schema_when_supported() -> None:
    body = adapt_to_model({"messages": [USER]}, model=GPT_OSS, supports_json_schema=True, output_schema=SCHEMA)
    assert body == {
        "model": GPT_OSS,
        "messages": [USER],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "output", "strict": False, "schema": SCHEMA},
        },
    }


def test_output_schema_becomes_json_object_and_instruction_when_not_supported() -> None:
    body = adapt_to_model({"messages": [USER]}, model=LLAMA, supports_json_schema=False, output_schema=SCHEMA)
    assert body == {
        "model": LLAMA,
        "messages": [{"role": "system", "content": SCHEMA_TEXT}, USER],
        "response_format": {"type": "json_object"},
    }


def test_output_schema_is_the_one_described_to_a_model_without_json_schema() -> None:
    other = {"type": "object", "required": ["title"]}
    request = {"messages": [USER], "response_format": JSON_SCHEMA_FORMAT}
    body = adapt_to_model(request, model=LLAMA, supports_json_schema=False, output_schema=other)
    assert body["messages"][0]["content"].endswith('JSON Schema:\n{"type":"object","required":["title"]}')


def test_json_object_without_json_in_prompt_gets_instruction() -> None:
    request = {"messages": [USER], "response_format": {"type": "json_object"}}
    body = adapt_to_model(request, model=LLAMA, supports_json_schema=False, output_schema=None)
    assert body["messages"] == [{"role": "system", "content": "Respond with only a JSON object."}, USER]
    assert body["response_format"] == {"type": "json_object"}


def test_json_object_without_json_in_prompt_gets_the_output_schema() -> None:
    request = {"messages": [USER], "response_format": {"type": "json_object"}}
    body = adapt_to_model(request, model=GPT_OSS, supports_json_schema=True, output_schema=SCHEMA)
    assert body["messages"] == [{"role": "system", "content": SCHEMA_TEXT}, USER]
    assert body["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "Answer in json, please."}],
        [{"role": "system", "content": "Output JSON."}, USER],
        [{"role": "user", "content": [{"type": "text", "text": "Return Json"}]}],
    ],
)
def test_json_object_with_json_in_prompt_is_unchanged(messages: list[dict[str, Any]]) -> None:
    request = {"messages": messages, "response_format": {"type": "json_object"}}
    body = adapt_to_model(request, model=LLAMA, supports_json_schema=False, output_schema=None)
    assert body == {"model": LLAMA, **request}


@pytest.mark.parametrize("response_format", [None, {"type": "text"}])
@pytest.mark.parametrize("supports_json_schema", [True, False])
def test_no_json_requested_is_unchanged(response_format: Any, supports_json_schema: bool) -> None:
    request: dict[str, Any] = {"messages": [USER], "max_completion_tokens": 100}
    if response_format is not None:
        request["response_format"] = response_format
    body = adapt_to_model(request, model=LLAMA, supports_json_schema=supports_json_schema, output_schema=None)
    assert body == {"model": LLAMA, **request}


def test_explicit_text_format_is_kept_even_with_output_schema() -> None:
    request = {"messages": [USER], "response_format": {"type": "text"}}
    body = adapt_to_model(request, model=GPT_OSS, supports_json_schema=True, output_schema=SCHEMA)
    assert body["response_format"] == {"type": "text"}


def test_model_is_set_first_and_replaces_any_model() -> None:
    body = adapt_to_model(
        {"model": "old", "messages": [USER]}, model=GPT_OSS, supports_json_schema=True, output_schema=None
    )
    assert next(iter(body)) == "model"
    assert body["model"] == GPT_OSS


@pytest.mark.parametrize("supports_json_schema", [True, False])
@pytest.mark.parametrize("output_schema", [None, SCHEMA])
def test_adapt_never_mutates_inputs(supports_json_schema: bool, output_schema: dict[str, Any] | None) -> None:
    request = {"messages": [SYSTEM, USER], "response_format": JSON_SCHEMA_FORMAT}
    request_before = copy.deepcopy(request)
    schema_before = copy.deepcopy(output_schema)
    body = adapt_to_model(request, model=LLAMA, supports_json_schema=supports_json_schema, output_schema=output_schema)
    body["messages"][1]["content"] = "changed"
    body["response_format"]["type"] = "changed"
    assert request == request_before
    assert output_schema == schema_before


# --- jsonl_line ------------------------------------------------------------------------------


def test_jsonl_line_matches_groq_input_format() -> None:
    body = {"model": "llama-3.1-8b-instant", "messages": [{"role": "user", "content": "What is 2+2?"}]}
    assert jsonl_line("request-1", body) == (
        b'{"custom_id":"request-1","method":"POST","url":"/v1/chat/completions",'
        b'"body":{"model":"llama-3.1-8b-instant","messages":[{"role":"user","content":"What is 2+2?"}]}}\n'
    )


def test_jsonl_line_is_one_line_even_with_newlines_in_content() -> None:
    line = jsonl_line("pr-1", {"messages": [{"role": "user", "content": "a\nb"}]})
    assert line.count(b"\n") == 1
    assert line.endswith(b"\n")
    assert orjson.loads(line)["body"]["messages"][0]["content"] == "a\nb"


def test_jsonl_line_round_trips_unicode() -> None:
    body = {"messages": [{"role": "user", "content": "résumé ✓"}]}
    assert orjson.loads(jsonl_line("pr-ü", body)) == {
        "custom_id": "pr-ü",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": body,
    }


def test_check_line_sizes_names_the_item_that_cannot_fit() -> None:
    from service.pipeline.errors import LineTooLarge
    from service.pipeline.requests import PassRequestSpec, check_line_sizes, request_line

    spec = PassRequestSpec("openai/gpt-oss-20b", True, {}, {}, None)
    small = {"messages": [{"role": "user", "content": "hi"}]}
    big = {"messages": [{"role": "user", "content": "x" * 500}]}
    limit = len(request_line(spec, "big", big)) - 1
    check_line_sizes(spec, [("small", small)], limit)
    with pytest.raises(LineTooLarge, match="'big'"):
        check_line_sizes(spec, [("small", small), ("big", big)], limit)
