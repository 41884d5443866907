"""Per-line answers: OpenAI's 4xx for reasoning models, strict structured output, refusals, truncation,
reasoning and cached tokens, prompt counting, unknown and retired models."""

from __future__ import annotations

import dataclasses
from typing import Any

import bpe_openai
import jsonschema_rs
import orjson
import pytest

from openai_emulator import Emulator, ModelSpec, create_emulator_app, default_models
from tests.openai_emulator.helpers import (
    CHAT,
    RESPONSES,
    asgi_client,
    body,
    chat_line,
    manual_config,
    responses_line,
    results,
    run_batch,
    to_jsonl,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "risk", "ticket", "files", "note"],
    "properties": {
        "summary": {"type": "string"},
        "risk": {"type": "string", "enum": ["low", "medium", "high"]},
        "ticket": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
        "files": {
            "type": "array",
            "maxItems": 3,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["path", "score"],
                "properties": {"path": {"type": "string"}, "score": {"type": "integer", "minimum": 0, "maximum": 9}},
            },
        },
        "note": {"type": ["string", "null"]},
    },
}


def _models(changes: dict[str, dict[str, Any]]) -> dict[str, ModelSpec]:
    models = default_models()
    for name, fields in changes.items():
        models[name] = dataclasses.replace(models[name], **fields)
    return models


async def _run(lines: list[dict[str, Any]], endpoint: str = CHAT, **config: Any) -> dict[str, dict[str, Any]]:
    emulator = Emulator(manual_config(**config))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        batch = await run_batch(client, emulator, to_jsonl(lines), endpoint)
        assert batch.status == "completed"
        return await results(client, batch)


def _error(line: dict[str, Any]) -> dict[str, Any]:
    assert line["error"] is None and line["response"]["status_code"] != 200
    error: dict[str, Any] = body(line)["error"]
    return error


async def test_reasoning_models_refuse_max_tokens_and_a_temperature() -> None:
    found = await _run(
        [
            chat_line("max", max_tokens=100),
            chat_line("warm", temperature=0.2),
            chat_line("default", temperature=1, max_completion_tokens=5000),
        ]
    )
    assert found["max"]["response"]["status_code"] == 400
    assert _error(found["max"]) == {
        "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
        "Use 'max_completion_tokens' instead.",
        "type": "invalid_request_error",
        "param": "max_tokens",
        "code": "unsupported_parameter",
    }
    assert _error(found["warm"])["message"] == (
        "Unsupported value: 'temperature' does not support 0.2 with this model. "
        "Only the default (1) value is supported."
    )
    assert found["default"]["response"]["status_code"] == 200


async def test_a_non_reasoning_model_takes_max_tokens_and_refuses_reasoning_effort() -> None:
    found = await _run(
        [
            chat_line("a", model="gpt-4.1-mini", max_tokens=500, temperature=0.2),
            chat_line("b", model="gpt-4.1-mini", reasoning_effort="low"),
        ]
    )
    assert found["a"]["response"]["status_code"] == 200
    assert body(found["a"])["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    assert _error(found["b"])["code"] == "unsupported_parameter"


async def test_reasoning_effort_scales_thinking_and_bad_values_are_400() -> None:
    lines = [chat_line(f"{effort}-{i}", reasoning_effort=effort) for effort in ("minimal", "high") for i in range(10)]
    found = await _run([*lines, chat_line("odd", reasoning_effort="extreme")])

    def thinking(effort: str) -> int:
        return sum(
            body(found[f"{effort}-{i}"])["usage"]["completion_tokens_details"]["reasoning_tokens"] for i in range(10)
        )

    assert thinking("high") > 5 * thinking("minimal")
    assert _error(found["odd"])["message"] == (
        "Invalid value: 'extreme'. Supported values are: 'minimal', 'low', 'medium', and 'high'."
    )


def _json_schema(schema: Any, strict: bool, name: str = "review") -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": strict, "schema": schema}}


async def test_strict_json_schema_answers_always_conform() -> None:
    validator = jsonschema_rs.Draft202012Validator(SCHEMA)
    models = _models({"gpt-5-nano": {"refusal": 0.0, "schema_break": 1.0}})
    chat = [chat_line(f"c{i}", model="gpt-5-nano", response_format=_json_schema(SCHEMA, True)) for i in range(40)]
    for line in (await _run(chat, models=models)).values():
        assert validator.is_valid(orjson.loads(body(line)["choices"][0]["message"]["content"]))
    fmt = {"format": {"type": "json_schema", "name": "review", "schema": SCHEMA, "strict": True}}
    lines = [responses_line(f"r{i}", model="gpt-5-nano", prompt="Review it", text=fmt) for i in range(20)]
    for line in (await _run(lines, RESPONSES, models=models)).values():
        message = body(line)["output"][-1]
        assert validator.is_valid(orjson.loads(message["content"][0]["text"]))
        assert body(line)["text"]["format"]["strict"] is True


async def test_best_effort_json_schema_can_miss_the_schema() -> None:
    validator = jsonschema_rs.Draft202012Validator(SCHEMA)
    models = _models({"gpt-5-nano": {"refusal": 0.0, "length": 0.0, "schema_break": 1.0}})
    lines = [chat_line(f"c{i}", model="gpt-5-nano", response_format=_json_schema(SCHEMA, False)) for i in range(10)]
    found = await _run(lines, models=models)
    answers = [orjson.loads(body(line)["choices"][0]["message"]["content"]) for line in found.values()]
    assert all(line["response"]["status_code"] == 200 for line in found.values())
    assert not any(validator.is_valid(answer) for answer in answers)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            {**SCHEMA, "required": ["summary"]},
            "In context=(), 'required' is required to be supplied and to be an array including every key in "
            "properties. Missing 'risk'.",
        ),
        (
            {**SCHEMA, "additionalProperties": True},
            "In context=(), 'additionalProperties' is required to be supplied and to be false.",
        ),
        (
            {"type": "array", "items": {"type": "string"}},
            "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"array\"'.",
        ),
        ({**SCHEMA, "allOf": [{"type": "object"}]}, "In context=(), 'allOf' is not permitted."),
        (
            {**SCHEMA, "properties": {**SCHEMA["properties"], "summary": {"type": "string", "minLength": 5}}},
            "In context=('properties', 'summary'), 'minLength' is not permitted.",
        ),
    ],
)  # fmt: skip
async def test_strict_mode_refuses_what_openai_refuses(schema: dict[str, Any], message: str) -> None:
    found = await _run([chat_line("a", response_format=_json_schema(schema, True))])
    error = _error(found["a"])
    assert error["message"] == f"Invalid schema for response_format 'review': {message}"
    assert (error["param"], error["code"]) == ("response_format", "invalid_json_schema")


async def test_keywords_outside_the_documented_list_can_be_let_through() -> None:
    schema = {**SCHEMA, "properties": {**SCHEMA["properties"], "summary": {"type": "string", "minLength": 5}}}
    found = await _run([chat_line("a", response_format=_json_schema(schema, True))], strict_unlisted_keywords="ignore")
    assert found["a"]["response"]["status_code"] == 200


async def test_json_object_needs_the_word_json() -> None:
    found = await _run(
        [
            chat_line("no", response_format={"type": "json_object"}),
            chat_line("yes", content="Answer in JSON: which files changed?", response_format={"type": "json_object"}),
        ]
    )
    assert "must contain the word 'json'" in _error(found["no"])["message"]
    assert isinstance(orjson.loads(body(found["yes"])["choices"][0]["message"]["content"]), dict)


async def test_refusals_in_chat_and_responses() -> None:
    models = _models({"gpt-5-mini": {"refusal": 1.0}, "gpt-5.4-mini": {"refusal": 1.0}})
    chat = await _run([chat_line("c", response_format=_json_schema(SCHEMA, True))], models=models)
    message = body(chat["c"])["choices"][0]["message"]
    assert message["content"] is None and message["refusal"] == "I'm sorry, but I can't help with that."
    assert body(chat["c"])["choices"][0]["finish_reason"] == "stop"
    response = body((await _run([responses_line("r")], RESPONSES, models=models))["r"])
    assert response["status"] == "completed"
    assert response["output"][-1]["content"] == [
        {"type": "refusal", "refusal": "I'm sorry, but I can't help with that."}
    ]


async def test_truncation_on_reasoning_and_plain_models() -> None:
    models = _models({"gpt-5-mini": {"length": 1.0, "refusal": 0.0}, "gpt-4.1-mini": {"length": 1.0, "refusal": 0.0}})
    found = await _run(
        [chat_line("r", max_completion_tokens=2000), chat_line("big", max_completion_tokens=20_000)], models=models
    )
    cut = body(found["r"])
    assert cut["choices"][0]["finish_reason"] == "length" and cut["choices"][0]["message"]["content"] == ""
    usage = cut["usage"]
    assert usage["completion_tokens"] == usage["completion_tokens_details"]["reasoning_tokens"] == 2000
    assert body(found["big"])["choices"][0]["finish_reason"] == "stop"

    plain = await _run([chat_line("p", model="gpt-4.1-mini", max_tokens=100)], models=models)
    choice = body(plain["p"])["choices"][0]
    assert choice["finish_reason"] == "length" and 0 < len(choice["message"]["content"]) <= 400
    assert body(plain["p"])["usage"]["completion_tokens"] == 100

    incomplete = body(
        (await _run([responses_line("x", model="gpt-5-mini", max_output_tokens=500)], RESPONSES, models=models))["x"]
    )
    assert incomplete["status"] == "incomplete" and incomplete["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [item["type"] for item in incomplete["output"]] == ["reasoning"]
    assert (
        incomplete["usage"]["output_tokens"] == incomplete["usage"]["output_tokens_details"]["reasoning_tokens"] == 500
    )


async def test_responses_refuse_chat_parameters_and_small_budgets() -> None:
    found = await _run(
        [
            responses_line("a", max_tokens=100),
            responses_line("b", max_output_tokens=8),
            responses_line("c", temperature=0.5),
        ],
        RESPONSES,
    )
    assert _error(found["a"])["message"] == "Unknown parameter: 'max_tokens'."
    assert "Expected a value >= 16, but got 8 instead." in _error(found["b"])["message"]
    assert _error(found["c"])["param"] == "temperature"


async def test_prompt_tokens_are_o200k_and_cached_prefixes_are_reported() -> None:
    encoding = bpe_openai.get_encoding("o200k_base")
    system = "You review pull requests for a payments team. " * 200
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Fix the retry loop."}]
    lines = [
        {**chat_line(f"p{i}", model="gpt-4.1-mini"), "body": {"model": "gpt-4.1-mini", "messages": messages}}
        for i in range(3)
    ]
    found = await _run(lines)
    expected = len(encoding.encode_ordinary(system + "\n" + "Fix the retry loop.")) + 3 * 2 + 3
    usages = [body(found[f"p{i}"])["usage"] for i in range(3)]
    assert {usage["prompt_tokens"] for usage in usages} == {expected}
    prefix = len(encoding.encode_ordinary(system)) + 3
    assert [usage["prompt_tokens_details"]["cached_tokens"] for usage in usages] == [
        0,
        prefix // 128 * 128,
        prefix // 128 * 128,
    ]


async def test_a_prompt_longer_than_a_million_characters_is_counted_in_pieces() -> None:
    text = "refactor the session cache handler and its retry timeout " * 18_000  # 1,044,000 characters
    found = await _run([chat_line("long", model="gpt-4.1-mini", content=text)])
    assert body(found["long"])["usage"]["prompt_tokens"] > 150_000


async def test_over_the_context_window_is_a_per_line_400() -> None:
    models = _models({"gpt-4.1-mini": {"context_window": 1_000}})
    found = await _run([chat_line("a", model="gpt-4.1-mini", content="word " * 2_000)], models=models)
    error = _error(found["a"])
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert error["message"].startswith(
        "This model's maximum context length is 1000 tokens. However, your messages resulted in"
    )
    found = await _run([responses_line("b", model="gpt-4.1-mini", prompt="word " * 2_000)], RESPONSES, models=models)
    assert (
        _error(found["b"])["message"]
        == "Your input exceeds the context window of this model. Please adjust your input and try again."
    )


async def test_unknown_and_retired_models_are_404_lines() -> None:
    models = default_models()
    found = await _run([chat_line("a", model="gpt-4.5-preview")], models=models)
    assert found["a"]["response"]["status_code"] == 404
    assert (
        _error(found["a"])["message"] == "The model `gpt-4.5-preview` does not exist or you do not have access to it."
    )
    emulator = Emulator(manual_config())
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        emulator.retire("gpt-5-nano")
        batch = await run_batch(client, emulator, to_jsonl([chat_line("n", model="gpt-5-nano")]))
        assert batch.request_counts.failed == 1 and batch.output_file_id is None
        assert _error((await results(client, batch))["n"])["code"] == "model_not_found"


async def test_same_seed_same_answers() -> None:
    lines = [chat_line(f"s{i}", response_format=_json_schema(SCHEMA, True)) for i in range(5)]
    first, second = await _run(lines, seed=3), await _run(lines, seed=3)
    other = await _run(lines, seed=4)
    assert [body(first[k])["choices"] for k in first] == [body(second[k])["choices"] for k in first]
    assert [body(first[k])["choices"] for k in first] != [body(other[k])["choices"] for k in first]
