"""What one batch line returns: a deterministic simulation of the model, seeded by ``(seed, custom_id, model)``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson

from groq_emulator.behaviour import request_rng
from groq_emulator.conforming import conforming_instance
from groq_emulator.schema_instances import InstanceGenerator, break_instance
from groq_emulator.text import TextMaker
from groq_emulator.validation import InputRequest
from openai_emulator.bodies import REFUSAL_TEXT, Answer, success_body
from openai_emulator.cache import PromptCache
from openai_emulator.config import EmulatorConfig
from openai_emulator.ids import request_uuid, timed_hex
from openai_emulator.params import Call, LineError, parse
from openai_emulator.tokens import count_text, prefix

# Reasoning at each reasoning_effort, against medium.
EFFORT_FACTORS = {"none": 0.0, "minimal": 0.1, "low": 0.35, "medium": 1.0, "high": 2.2, "xhigh": 3.5}
CHARS_PER_TOKEN = 4  # to cut visible text at a token budget


@dataclass(frozen=True)
class Usage:
    input: int
    cached: int
    output: int
    reasoning: int


@dataclass(frozen=True)
class LineResult:
    """One result line, serialised (no newline); ``usage`` for a 200 (the Batch object adds it up)."""

    custom_id: str
    status_code: int
    data: bytes
    usage: Usage | None = None

    @property
    def success(self) -> bool:
        return self.status_code == 200


def _line(line_id: str, custom_id: str, status: int, request_id: str, body: dict[str, Any]) -> bytes:
    response = {"status_code": status, "request_id": request_id, "body": body}
    return orjson.dumps({"id": line_id, "custom_id": custom_id, "response": response, "error": None})


def _outcome(u: float, call: Call) -> str:
    spec = call.spec
    if u < spec.refusal:
        return "refusal"
    if u < spec.refusal + spec.length:
        return "long"
    best_effort = call.json_kind == "json_schema" and not call.strict
    if best_effort and u < spec.refusal + spec.length + spec.schema_break:
        return "schema_break"
    return "ok"


def _content(call: Call, outcome: str, rng: random.Random) -> str:
    if call.json_kind == "json_schema" and call.strict:
        return orjson.dumps(conforming_instance(call.schema, rng, call.words)).decode()
    if call.json_kind == "json_schema":
        instance = InstanceGenerator(call.schema, rng, call.words).generate()
        if outcome == "schema_break":
            instance = break_instance(call.schema, instance, rng)
        return orjson.dumps(instance).decode()
    if call.json_kind == "json_object":
        return orjson.dumps(InstanceGenerator({"type": "object"}, rng, call.words).plausible_object()).decode()
    maker = TextMaker(rng, call.words)
    if outcome == "long" and not call.spec.reasoning:
        low, high = call.spec.long_tokens
        target = rng.randint(low, high) * CHARS_PER_TOKEN
        parts = [maker.paragraph()]
        while sum(len(p) + 1 for p in parts) < target:
            parts.append(maker.paragraph())
        return "\n\n".join(parts)
    return maker.paragraph()


def _reasoning(call: Call, outcome: str, rng: random.Random) -> int:
    if not call.spec.reasoning:
        return 0
    low, high = call.spec.long_tokens if outcome == "long" else call.spec.reasoning_tokens
    return round(rng.randint(low, high) * EFFORT_FACTORS.get(call.effort or "medium", 1.0))


def answer(call: Call, rng: random.Random, cached: int) -> Answer:
    outcome = _outcome(rng.random(), call)
    reasoning = _reasoning(call, outcome, rng)
    if outcome == "refusal":
        return Answer(
            None, REFUSAL_TEXT, call.prompt, cached, count_text(REFUSAL_TEXT, call.spec.o200k), reasoning, False
        )
    content = _content(call, outcome, rng)
    visible = count_text(content, call.spec.o200k)
    budget = call.budget
    if budget is None or reasoning + visible <= budget:
        return Answer(content, None, call.prompt, cached, visible, reasoning, False)
    if reasoning >= budget:  # the budget ran out while the model was still thinking
        return Answer("", None, call.prompt, cached, 0, budget, True)
    left = budget - reasoning
    return Answer(content[: left * CHARS_PER_TOKEN], None, call.prompt, cached, left, reasoning, True)


def simulate(
    config: EmulatorConfig,
    request: InputRequest,
    endpoint: str,
    at: float,
    cache: PromptCache,
    prompt: int | None = None,
) -> LineResult:
    """Run one input line at emulated time ``at``."""
    body = request.body
    rng = request_rng(config.seed, request.custom_id, str(body.get("model")))
    line_id = timed_hex("batch_req_", at, rng)
    request_id = request_uuid(rng)
    try:
        call = parse(body, endpoint, config, prompt)
    except LineError as error:
        data = _line(line_id, request.custom_id, error.status, request_id, {"error": error.error})
        return LineResult(request.custom_id, error.status, data)
    cached = cache.cached_tokens(call.model, prefix(body, endpoint), call.spec.o200k, at)
    result = answer(call, rng, cached)
    data = _line(line_id, request.custom_id, 200, request_id, success_body(call, result, rng, at, body))
    usage = Usage(result.prompt, result.cached, result.completion, result.reasoning)
    return LineResult(request.custom_id, 200, data, usage)


def unprocessed_line(custom_id: str, code: str, rng: random.Random, at: float) -> bytes:
    """Error-file line for a request the batch never ran (``batch_expired`` / ``batch_cancelled``)."""
    messages = {
        "batch_expired": "This request could not be executed before the completion window expired.",
        "batch_cancelled": "This request was not executed because the batch was cancelled.",
    }
    error = {"code": code, "message": messages.get(code, "This request was not executed.")}
    return orjson.dumps(
        {"id": timed_hex("batch_req_", at, rng), "custom_id": custom_id, "response": None, "error": error}
    )
