import copy
from typing import Any

import orjson
import pytest

from service.pipeline.catalogue import ModelEntry, StructuredOutput
from service.pipeline.expectations import expectation_for
from service.pipeline.lines import PassRequestSpec
from service.pipeline.requests import adapt_to_model as adapt_and_strict
from service.pipeline.requests import (
    body_bytes,
    jsonl_line,
    merge_request,
    request_hash,
    strict_response_format,
)

BEST_EFFORT, JSON_OBJECT, STRICT = StructuredOutput.BEST_EFFORT, StructuredOutput.JSON_OBJECT, StructuredOutput.STRICT


def adapt_to_model(request: Any, *, supports_json_schema: bool, **kwargs: Any) -> dict[str, Any]:
    """The body alone, for a model with (best effort) or without json_schema."""
    structured = BEST_EFFORT if supports_json_schema else JSON_OBJECT
    return adapt_and_strict(request, structured_output=structured, **kwargs)[0]


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


def test_merge_shares_values_and_never_mutates_its_inputs() -> None:
    params: dict[str, Any] = {"response_format": copy.deepcopy(JSON_SCHEMA_FORMAT), "temperature": 0}
    body = {"messages": [dict(USER)]}
    before = (copy.deepcopy(params), copy.deepcopy(body))
    merged = merge_request(body, params, {"temperature": 1}, {"max_completion_tokens": 4096})
    assert merged["messages"] is body["messages"]  # shared, not copied: nothing downstream mutates it
    assert merged == {**params, **body, "temperature": 1, "max_completion_tokens": 4096}
    assert (params, body) == before


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
    adapt_to_model(request, model=LLAMA, supports_json_schema=supports_json_schema, output_schema=output_schema)
    adapt_and_strict(request, model=GPT_OSS, structured_output=STRICT, output_schema=output_schema, strict=True)
    assert request == request_before
    assert output_schema == schema_before


# --- jsonl_line ------------------------------------------------------------------------------


def test_jsonl_line_matches_groq_input_format() -> None:
    body = {"model": "llama-3.1-8b-instant", "messages": [{"role": "user", "content": "What is 2+2?"}]}
    assert jsonl_line("request-1", body_bytes(body)) == (
        b'{"custom_id":"request-1","method":"POST","url":"/v1/chat/completions",'
        b'"body":{"messages":[{"content":"What is 2+2?","role":"user"}],"model":"llama-3.1-8b-instant"}}\n'
    )


def test_the_same_request_is_the_same_bytes_and_hash_whatever_its_key_order() -> None:
    one = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0}
    other = {"temperature": 0, "messages": [{"content": "x", "role": "user"}], "model": "m"}
    judged = expectation_for(one, None)
    assert body_bytes(one) == body_bytes(other)
    assert request_hash("acme", "groq", body_bytes(one), judged) == request_hash(
        "acme", "groq", body_bytes(other), judged
    )
    assert request_hash("acme", "groq", body_bytes(one), judged) != request_hash(
        "globex", "groq", body_bytes(one), judged
    )
    assert request_hash("acme", "groq", body_bytes(one), judged) != request_hash(
        "acme", "openai", body_bytes(one), judged
    )


def test_two_schemas_with_the_same_strict_line_hash_apart() -> None:
    """`a` optional vs `a` required but nullable derive the same strict line; an answer `{}` satisfies only the
    first, so reuse must not hand one's answers to the other."""
    optional = {"type": "object", "properties": {"a": {"type": "string"}}}
    nullable = {"type": "object", "properties": {"a": {"type": ["string", "null"]}}, "required": ["a"]}
    item = {"messages": [{"role": "user", "content": "x"}]}
    one, other = (
        PassRequestSpec(
            entry=ModelEntry(id="openai/gpt-oss-20b", structured_output=StructuredOutput.STRICT),
            params={},
            pass_params={},
            output_schema=schema,
            strict=True,
        )
        for schema in (optional, nullable)
    )
    assert one.build("x", item).body == other.build("x", item).body, "the premise: the same line"
    assert request_hash("acme", "groq", one.build("x", item).body, one.common_expectation) != request_hash(
        "acme", "groq", other.build("x", item).body, other.common_expectation
    )


def test_jsonl_line_is_one_line_even_with_newlines_in_content() -> None:
    line = jsonl_line("pr-1", body_bytes({"messages": [{"role": "user", "content": "a\nb"}]}))
    assert line.count(b"\n") == 1
    assert line.endswith(b"\n")
    assert orjson.loads(line)["body"]["messages"][0]["content"] == "a\nb"


def test_jsonl_line_round_trips_unicode() -> None:
    body = {"messages": [{"role": "user", "content": "résumé ✓"}]}
    assert orjson.loads(jsonl_line("pr-ü", body_bytes(body))) == {
        "custom_id": "pr-ü",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": body,
    }


# --- strict structured output ----------------------------------------------------------------


def test_a_strict_model_gets_the_strict_form_of_the_schema() -> None:
    body, strict = adapt_and_strict(
        {"messages": [USER]}, model=GPT_OSS, structured_output=STRICT, output_schema=SCHEMA, strict=True
    )
    assert strict
    assert body["response_format"] == strict_response_format(SCHEMA)
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["response_format"]["json_schema"]["schema"]["additionalProperties"] is False


@pytest.mark.parametrize(("structured", "asked"), [(STRICT, False), (BEST_EFFORT, True)])
def test_strict_only_when_asked_for_and_supported(structured: StructuredOutput, asked: bool) -> None:
    body, strict = adapt_and_strict(
        {"messages": [USER]}, model=GPT_OSS, structured_output=structured, output_schema=SCHEMA, strict=asked
    )
    assert not strict
    assert body["response_format"]["json_schema"]["strict"] is False


def test_a_schema_strict_mode_cannot_express_stays_best_effort() -> None:
    free_form = {"type": "object", "additionalProperties": {"type": "string"}}
    body, strict = adapt_and_strict(
        {"messages": [USER]}, model=GPT_OSS, structured_output=STRICT, output_schema=free_form, strict=True
    )
    assert not strict and body["response_format"]["json_schema"]["schema"] == free_form


def test_a_built_line_knows_its_budget_and_its_expectation() -> None:
    entry = ModelEntry(id=GPT_OSS, structured_output=STRICT)
    spec = PassRequestSpec(entry, {"temperature": 0}, {"max_completion_tokens": 4096}, SCHEMA, strict=True)
    built = spec.build("pr-1", {"messages": [USER], "max_completion_tokens": 2048}, {"reasoning_effort": "low"})
    assert built.strict and built.max_completion_tokens == 4096 and built.reasoning_effort == "low"
    assert orjson.loads(built.line)["body"] == orjson.loads(built.body) == built.request
    expectation = spec.expectation()
    assert expectation.json_required and expectation.strip_nulls and expectation.schema == SCHEMA
    assert spec.size_bound("pr-1", len(body_bytes({"messages": [USER], "max_completion_tokens": 2048}))) >= len(
        built.line
    )
