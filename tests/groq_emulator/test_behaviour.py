"""Model behaviour: outcomes, determinism, structured output, budgets, usage."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import bpe_openai
import jsonschema_rs
import orjson

from groq_emulator import Emulator, ModelBehaviour, create_emulator_app
from groq_emulator.schema_instances import generate_instance
from tests.groq_emulator.helpers import asgi_client, chat_line, manual_config, read_lines, run_batch, to_jsonl

MAX_TOKENS_TEXT = "max completion tokens reached before generating a valid document"
PR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "risk_level", "categories", "files_of_concern", "score", "breaking_change_note"],
    "properties": {
        "summary": {"type": "string", "minLength": 20, "maxLength": 400},
        "risk_level": {"type": "string", "enum": ["low", "medium", "high"]},
        "categories": {
            "type": "array",
            "items": {"type": "string", "enum": ["bugfix", "feature", "refactor", "docs", "security"]},
            "minItems": 1,
            "maxItems": 3,
            "uniqueItems": True,
        },
        "files_of_concern": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["path", "reason"],
                "properties": {"path": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
        "breaking_change_note": {"type": ["string", "null"]},
    },
}

TREE_SCHEMA: dict[str, Any] = {
    "$defs": {
        "node": {
            "type": "object",
            "required": ["name", "kind", "children"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z]+$"},
                "kind": {"anyOf": [{"const": "leaf"}, {"enum": ["dir", "link"]}]},
                "size": {"type": "number", "exclusiveMinimum": 0, "maximum": 5},
                "step": {"type": "integer", "multipleOf": 5, "minimum": 1, "maximum": 50},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2},
                "owner": {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/person"}]},
            },
        },
        "person": {
            "allOf": [
                {"type": "object", "properties": {"email": {"type": "string", "format": "email"}}},
                {
                    "required": ["email", "seen"],
                    "properties": {"seen": {"type": "string", "format": "date-time"}},
                },
            ]
        },
    },
    "type": "object",
    "required": ["root", "pair"],
    "properties": {
        "root": {"$ref": "#/$defs/node"},
        "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}], "minItems": 2},
        "tags": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 5}},
        "id": {"type": "string", "format": "uuid"},
    },
}


def json_schema_format(schema: dict[str, Any], strict: bool) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "pr_analysis", "strict": strict, "schema": schema}}


def schema_prompt(schema: dict[str, Any]) -> list[dict[str, str]]:
    system = (
        "You analyse pull requests. "
        "Respond with only a JSON object that validates against this JSON Schema:\n" + json.dumps(schema, indent=2)
    )
    user = "Pull request: tighten retry handling in the webhook dispatcher and add tests."
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def _run(lines: list[dict[str, Any]], emulator: Emulator | None = None) -> dict[str, dict[str, Any]]:
    emulator = emulator or Emulator(manual_config())
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        batch = await run_batch(client, emulator, to_jsonl(lines))
        assert batch.status == "completed"
        found = await read_lines(client, batch.output_file_id) + await read_lines(client, batch.error_file_id)
    by_id = {line["custom_id"]: line for line in found}
    assert len(by_id) == len(lines) == len(found)
    return by_id


def _body(line: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = line["response"]["body"]
    return body


def _content(line: dict[str, Any]) -> str:
    content: str = _body(line)["choices"][0]["message"]["content"]
    return content


def _finish(line: dict[str, Any]) -> str:
    finish: str = _body(line)["choices"][0]["finish_reason"]
    return finish


def test_generated_instances_validate() -> None:
    for schema in (PR_SCHEMA, TREE_SCHEMA):
        validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
        for seed in range(300):
            instance = generate_instance(schema, random.Random(seed), ["webhook", "retry", "dispatcher"])
            errors = list(validator.iter_errors(instance))
            assert not errors, (seed, instance, errors[0].message)


def test_type_lists_produce_both_branches() -> None:
    schema = PR_SCHEMA["properties"]["breaking_change_note"]
    values = [generate_instance(schema, random.Random(seed)) for seed in range(200)]
    assert None in values and any(isinstance(v, str) for v in values)


async def test_same_seed_same_outcomes() -> None:
    lines = [chat_line(f"pr-{i}", response_format={"type": "json_object"}) for i in range(200)]

    def view(found: dict[str, dict[str, Any]]) -> dict[str, Any]:
        out = {}
        for cid, line in found.items():
            body = _body(line)
            status = line["response"]["status_code"]
            out[cid] = (status, body.get("choices"), body.get("error"), body.get("usage"))
        return out

    first = view(await _run(lines, Emulator(manual_config(seed=7))))
    again = view(await _run(lines, Emulator(manual_config(seed=7))))
    other = view(await _run(lines, Emulator(manual_config(seed=8))))
    assert first == again
    assert first != other


async def test_gpt_oss_20b_fails_json_about_20_percent() -> None:
    """The seed's profile in JSON mode: ~20% json_validate_failed, and the requests that need a long generation
    (about 1.5% plus a share of the failures) run out of a 2,048-token budget: Groq's "max completion tokens"."""
    lines = [
        chat_line(f"pr-{i}", response_format={"type": "json_object"}, max_completion_tokens=2048) for i in range(2000)
    ]
    found = await _run(lines)
    codes = Counter(
        _body(line)["error"].get("code") if line["response"]["status_code"] != 200 else _finish(line)
        for line in found.values()
    )
    assert 0.17 <= codes["json_validate_failed"] / 2000 <= 0.26, codes
    assert codes["length"] == 0, "a cut-off in JSON mode is an error line, never a 200"
    max_tokens = sum(
        1
        for line in found.values()
        if line["response"]["status_code"] == 400 and _body(line)["error"]["failed_generation"] == MAX_TOKENS_TEXT
    )
    assert 0.005 <= max_tokens / 2000 <= 0.05, max_tokens
    for line in found.values():
        if line["response"]["status_code"] == 200:
            assert _finish(line) == "stop" and isinstance(orjson.loads(_content(line)), dict)


async def test_a_cut_off_generation_succeeds_with_twice_the_budget_and_less_reasoning() -> None:
    """What the cascade's raised budget relies on: the same request fits once its budget is doubled."""
    lines = [
        chat_line(f"pr-{i}", response_format={"type": "json_object"}, max_completion_tokens=2048) for i in range(600)
    ]
    found = await _run(lines)
    cut = [
        cid
        for cid, line in found.items()
        if line["response"]["status_code"] == 400 and _body(line)["error"]["failed_generation"] == MAX_TOKENS_TEXT
    ]
    assert cut
    raised = [
        chat_line(cid, response_format={"type": "json_object"}, max_completion_tokens=4096, reasoning_effort="low")
        for cid in cut
    ]
    again = await _run(raised)
    outcomes = Counter(
        "ok" if line["response"]["status_code"] == 200 else _body(line)["error"]["failed_generation"]
        for line in again.values()
    )
    assert MAX_TOKENS_TEXT not in outcomes, outcomes
    low = [
        _body(line)["usage"]["completion_tokens_details"]["reasoning_tokens"]
        for line in again.values()
        if line["response"]["status_code"] == 200
    ]
    assert max(low) < 2048, "reasoning_effort low reasons about a third as much"


async def test_text_mode_cut_off_is_a_200_with_finish_length() -> None:
    long = ModelBehaviour(json_validate_failed=0.0, schema_break=0.0, length=1.0, reasoning_tokens=(100, 400))
    emulator = Emulator(manual_config(behaviours={"openai/gpt-oss-20b": long}))
    found = await _run([chat_line(f"t-{i}", max_completion_tokens=2048) for i in range(10)], emulator)
    assert {_finish(line) for line in found.values()} == {"length"}
    assert {_body(line)["usage"]["completion_tokens"] for line in found.values()} == {2048}


async def test_gpt_oss_120b_fails_about_half_a_percent() -> None:
    lines = [
        chat_line(
            f"pr-{i}", model="openai/gpt-oss-120b", response_format={"type": "json_object"}, max_completion_tokens=2048
        )
        for i in range(4000)
    ]
    found = await _run(lines)
    failed = sum(1 for line in found.values() if line["response"]["status_code"] != 200)
    assert 0.001 <= failed / 4000 <= 0.012, failed


async def test_strict_json_schema_on_gpt_oss_always_validates() -> None:
    """Constrained decoding: no json_validate_failed and no schema break; only a budget too small cuts it off."""
    rf = json_schema_format(PR_SCHEMA, strict=True)
    found = await _run([chat_line(f"s-{i}", response_format=rf) for i in range(300)])
    validator = jsonschema_rs.Draft202012Validator(PR_SCHEMA)
    statuses = Counter(line["response"]["status_code"] for line in found.values())
    assert statuses == {200: 300}
    for line in found.values():
        assert _finish(line) == "stop" and validator.is_valid(orjson.loads(_content(line)))
    budgeted = await _run([chat_line(f"s-{i}", response_format=rf, max_completion_tokens=2048) for i in range(1000)])
    errors = Counter(
        _body(line)["error"]["failed_generation"]
        for line in budgeted.values()
        if line["response"]["status_code"] != 200
    )
    assert set(errors) <= {MAX_TOKENS_TEXT} and 0 < sum(errors.values()) <= 40, errors


async def test_strict_mode_refuses_a_schema_that_is_not_strict() -> None:
    loose = {"type": "object", "properties": {"a": {"type": "string"}}}
    found = await _run([chat_line("loose", response_format=json_schema_format(loose, strict=True))])
    assert found["loose"]["response"]["status_code"] == 400
    assert "strict mode" in _body(found["loose"])["error"]["message"]


async def test_best_effort_json_schema_break_is_a_400() -> None:
    behaviour = ModelBehaviour(json_validate_failed=0.0, schema_break=1.0, length=0.0)
    emulator = Emulator(manual_config(behaviours={"openai/gpt-oss-20b": behaviour}))
    rf = json_schema_format(PR_SCHEMA, strict=False)
    found = await _run([chat_line(f"b-{i}", response_format=rf) for i in range(20)], emulator)
    for line in found.values():
        assert line["response"]["status_code"] == 400
        error = _body(line)["error"]
        assert error["code"] == "json_validate_failed"
        assert error["message"].startswith("Generated JSON does not match the expected schema.")
        assert "jsonschema: '" in error["message"]
        assert not jsonschema_rs.Draft202012Validator(PR_SCHEMA).is_valid(orjson.loads(error["failed_generation"]))


async def test_json_object_follows_schema_in_prompt() -> None:
    validator = jsonschema_rs.Draft202012Validator(PR_SCHEMA)
    lines = [
        chat_line(f"l-{i}", model="openai/gpt-oss-120b", response_format={"type": "json_object"}) for i in range(100)
    ]
    for line in lines:
        line["body"]["messages"] = schema_prompt(PR_SCHEMA)
    found = await _run(lines)
    good = [x for x in found.values() if x["response"]["status_code"] == 200 and _finish(x) == "stop"]
    assert len(good) >= 95
    assert sum(validator.is_valid(orjson.loads(_content(line))) for line in good) >= 95

    breaking = ModelBehaviour(json_validate_failed=0.0, schema_break=1.0, length=0.0)
    emulator = Emulator(manual_config(behaviours={"openai/gpt-oss-120b": breaking}))
    broken = await _run(lines[:20], emulator)
    for line in broken.values():
        assert line["response"]["status_code"] == 200 and _finish(line) == "stop"
        assert not validator.is_valid(orjson.loads(_content(line)))


async def test_decommissioned_models_answer_model_decommissioned_and_unknown_ones_404() -> None:
    rf = json_schema_format(PR_SCHEMA, strict=True)
    lines = [
        chat_line("llama", model="llama-3.3-70b-versatile", response_format={"type": "json_object"}),
        chat_line("instant", model="llama-3.1-8b-instant"),
        chat_line("kimi", model="moonshotai/kimi-k2-instruct-0905", response_format=rf),
        chat_line("ghost", model="acme/ghost-1"),
        chat_line("qwen", model="qwen/qwen3-32b", response_format=rf),
    ]
    found = await _run(lines)
    for cid, model in (("llama", "llama-3.3-70b-versatile"), ("instant", "llama-3.1-8b-instant")):
        assert found[cid]["response"]["status_code"] == 400
        assert _body(found[cid]) == {
            "error": {
                "message": f"The model `{model}` has been decommissioned and is no longer supported. Please refer "
                "to https://console.groq.com/docs/deprecations for a recommendation on which model to use instead.",
                "type": "invalid_request_error",
                "code": "model_decommissioned",
            }
        }
    assert _body(found["kimi"])["error"]["code"] == "model_decommissioned"
    assert found["ghost"]["response"]["status_code"] == 404
    assert _body(found["ghost"])["error"] == {
        "message": "The model `acme/ghost-1` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "code": "model_not_found",
    }
    assert found["qwen"]["response"]["status_code"] == 400
    assert _body(found["qwen"])["error"]["param"] == "response_format"
    assert found["llama"]["error"] is None and found["llama"]["response"]["request_id"].startswith("req_")


async def test_a_batch_naming_a_decommissioned_model_may_fail_whole() -> None:
    emulator = Emulator(manual_config(decommissioned_fails_batch=True))
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        lines = [chat_line("ok"), chat_line("old", model="llama-3.3-70b-versatile")]
        batch = await run_batch(client, emulator, to_jsonl(lines))
    assert batch.status == "failed"
    assert batch.errors.data[0].code == "model_decommissioned"


async def test_the_model_list_has_what_the_account_can_use() -> None:
    emulator = Emulator(manual_config())
    async with asgi_client(create_emulator_app(emulator=emulator)) as client:
        listed = {model.id for model in (await client.models.list()).data}
    assert {"openai/gpt-oss-20b", "openai/gpt-oss-120b"} <= listed
    assert not listed & {"llama-3.3-70b-versatile", "llama-3.1-8b-instant", "moonshotai/kimi-k2-instruct-0905"}


async def test_token_budget_truncates_and_raising_it_helps() -> None:
    lines = [
        chat_line("tiny", model="openai/gpt-oss-120b", max_completion_tokens=5),
        chat_line("roomy", model="openai/gpt-oss-120b", max_completion_tokens=4000),
        chat_line("oss-tiny", response_format={"type": "json_object"}, max_completion_tokens=60),
        chat_line("oss-text", max_tokens=60),
        chat_line("too-big", model="openai/gpt-oss-120b", max_completion_tokens=40_000),
    ]
    reliable = {
        "openai/gpt-oss-20b": ModelBehaviour(0, 0, 0, 0, reasoning_tokens=(100, 400), max_output_tokens=65_536),
        "openai/gpt-oss-120b": ModelBehaviour(0, 0, 0, 0, max_output_tokens=32_768),
    }
    found = await _run(lines, Emulator(manual_config(behaviours=reliable)))
    assert _finish(found["tiny"]) == "length" and _body(found["tiny"])["usage"]["completion_tokens"] == 5
    assert len(_content(found["tiny"])) <= 20
    assert _finish(found["roomy"]) == "stop"
    oss = found["oss-tiny"]
    assert oss["response"]["status_code"] == 400
    assert oss["response"]["body"]["error"]["failed_generation"].startswith("max completion tokens reached")
    assert _finish(found["oss-text"]) == "length"
    assert found["too-big"]["response"]["status_code"] == 400
    assert _body(found["too-big"])["error"]["param"] == "max_tokens"


async def test_plain_text_and_usage() -> None:
    always_fail_json = ModelBehaviour(json_validate_failed=1.0, length=0.0, reasoning_tokens=(100, 400))
    emulator = Emulator(manual_config(behaviours={"openai/gpt-oss-20b": always_fail_json}))
    prompt = "Explain the database migration for the billing ledger and list the risks " * 4
    found = await _run([chat_line(f"t-{i}", content=prompt) for i in range(20)], emulator)
    for line in found.values():
        assert line["response"]["status_code"] == 200
        content = _content(line)
        assert content and not content.lstrip().startswith("{")
        usage = _body(line)["usage"]
        # gpt-oss prompts are counted in its own vocabulary (o200k), plus the chat template
        assert usage["prompt_tokens"] == len(bpe_openai.get_encoding("o200k_base").encode_ordinary(prompt)) + 54
        reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
        assert 100 <= reasoning <= 400
        assert usage["completion_tokens"] == reasoning + -(-len(content) // 4)
        assert any(word in content.lower() for word in ("database", "migration", "billing", "ledger"))


async def test_a_very_long_prompt_is_counted_and_one_over_the_window_is_a_400_line() -> None:
    """One message of a million characters used to make the tokenizer raise on every poll; it is counted in
    pieces now, and a prompt over the context window is that line's 400 (context_length_exceeded), as Groq
    answers it, while the other lines of the batch run."""
    emulator = Emulator(manual_config())
    lines = [
        chat_line("fits", content="a" * 1_000_000),  # 125,000 o200k tokens
        chat_line("digits", content="1" * 600_000),  # 200,000
        chat_line("emoji", content="\N{GRINNING FACE}" * 300_000),  # 300,000
        chat_line("short"),
    ]
    found = await _run(lines, emulator)
    assert _body(found["fits"])["usage"]["prompt_tokens"] == 125_000 + 54
    for custom_id in ("digits", "emoji"):
        assert found[custom_id]["response"]["status_code"] == 400
        assert _body(found[custom_id])["error"]["code"] == "context_length_exceeded"
    assert found["short"]["response"]["status_code"] == 200
