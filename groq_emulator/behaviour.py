"""What one batch request returns: a deterministic simulation of a chat completion on Groq.

Randomness comes from ``random.Random`` seeded by ``(seed, custom_id, model)``, so the same
seed always gives the same outcome and content for the same request.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from groq_emulator.config import EmulatorConfig, ModelBehaviour
from groq_emulator.errors import error_body
from groq_emulator.ids import new_id
from groq_emulator.schema_instances import InstanceGenerator, break_instance, schema_error_text
from groq_emulator.text import SCHEMA_MARKER, TextMaker, message_texts, prompt_words
from groq_emulator.tokens import count_o200k
from groq_emulator.validation import InputRequest

JVF_GENERATE = "Failed to generate JSON. Please adjust your prompt. See 'failed_generation' for more details."
JVF_VALIDATE = "Failed to validate JSON. Please adjust your prompt."
JVF_VALIDATE_SEE = JVF_VALIDATE + " See 'failed_generation' for more details."
JVF_SCHEMA = (
    "Generated JSON does not match the expected schema. Please adjust your prompt. "
    "See 'failed_generation' for more details."
)
MAX_TOKENS_TEXT = "max completion tokens reached before generating a valid document"
JSON_SCHEMA_UNSUPPORTED = (
    "This model does not support response format `json_schema`. "
    "See supported models at https://console.groq.com/docs/structured-outputs#supported-models"
)
DECOMMISSIONED = (
    "The model `{model}` has been decommissioned and is no longer supported. Please refer to "
    "https://console.groq.com/docs/deprecations for a recommendation on which model to use instead."
)
# The chat template around the messages (the harmony preamble of gpt-oss, role headers), in prompt tokens.
TEMPLATE_TOKENS = 50
PER_MESSAGE_TOKENS = 4
# How much a reasoning model thinks at each reasoning_effort, against Groq's default (medium).
EFFORT_FACTORS = {"low": 0.35, "medium": 1.0, "high": 2.2}


@dataclass(frozen=True)
class LineResult:
    """One output-file line, already serialised (without the trailing newline)."""

    custom_id: str
    status_code: int
    data: bytes

    @property
    def success(self) -> bool:
        return self.status_code == 200


def request_rng(seed: int, *parts: str) -> random.Random:
    digest = hashlib.sha256("\x1f".join((str(seed), *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _fingerprint(model: str) -> str:
    return "fp_" + hashlib.sha256(model.encode()).hexdigest()[:10]


@functools.lru_cache(maxsize=256)
def _schema_in(text: str) -> Any:
    at = text.find(SCHEMA_MARKER)
    if at < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[at + len(SCHEMA_MARKER) :].lstrip())
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _prompt_schema(texts: list[str]) -> Any:
    """The JSON Schema the service embeds in a message after ``JSON Schema:``, if any (do not mutate)."""
    for text in texts:
        schema = _schema_in(text)
        if schema is not None:
            return schema
    return None


@dataclass
class _Request:
    """The parts of a request body the simulation needs, checked."""

    model: str
    texts: list[str]
    words: list[str]
    rf_type: str | None
    schema: Any
    strict: bool
    budget: int | None
    messages: int = 1
    effort: str = "medium"
    prompt: int = 0  # the prompt tokens Groq bills, counted once the request is parsed


def _strict_refusal(schema: Any, where: str = "schema") -> str | None:
    """Why a schema is not valid for strict mode (every property required, additionalProperties false)."""
    if not isinstance(schema, dict):
        return None
    nodes: list[tuple[Any, str]] = [(schema, where)]
    while nodes:
        node, path = nodes.pop()
        if not isinstance(node, dict):
            continue
        properties = node.get("properties")
        if isinstance(properties, dict):
            if node.get("additionalProperties") is not False:
                return f"{path}: 'additionalProperties' must be false in strict mode"
            missing = [name for name in properties if name not in (node.get("required") or [])]
            if missing:
                return f"{path}: every property must be required in strict mode (missing: {missing[0]})"
        for key, value in node.items():
            if isinstance(value, dict):
                nodes.append((value, f"{path}/{key}"))
            elif isinstance(value, list):
                nodes.extend((item, f"{path}/{key}/{i}") for i, item in enumerate(value))
    return None


def _parse(body: dict[str, Any], config: EmulatorConfig) -> _Request | tuple[int, dict[str, Any]]:
    model = body["model"]
    if model in config.decommissioned_models:
        return 400, error_body(DECOMMISSIONED.format(model=model), code="model_decommissioned")
    if not config.model_exists(model):
        message = f"The model `{model}` does not exist or you do not have access to it."
        return 404, error_body(message, code="model_not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return 400, error_body("'messages' : minimum number of items is 1", param="messages")
    budget = body.get("max_completion_tokens", body.get("max_tokens"))
    behaviour = config.behaviour(model)
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        return 400, error_body("`max_tokens` must be a positive integer", param="max_tokens")
    if budget is not None and budget > behaviour.max_output_tokens:
        message = (
            f"`max_tokens` must be less than or equal to `{behaviour.max_output_tokens}`, the maximum value "
            "for `max_tokens` is less than the `context_window` for this model"
        )
        return 400, error_body(message, param="max_tokens")
    texts = message_texts(messages)
    rf = body.get("response_format")
    rf_type = rf.get("type") if isinstance(rf, dict) else None
    schema: Any = None
    strict = False
    if rf_type == "json_schema":
        if model not in config.json_schema_models:
            return 400, error_body(JSON_SCHEMA_UNSUPPORTED, param="response_format")
        spec = rf.get("json_schema") if isinstance(rf, dict) else None
        spec = spec if isinstance(spec, dict) else {}
        schema = spec.get("schema", {})
        strict = spec.get("strict") is True and model in config.strict_models
        refusal = _strict_refusal(schema) if strict else None
        if refusal is not None:
            return 400, error_body(f"Invalid JSON schema for strict mode: {refusal}", param="response_format")
    elif rf_type == "json_object":
        schema = _prompt_schema(texts)
    elif rf_type not in (None, "text"):
        return 400, error_body(f"response_format.type `{rf_type}` is not supported", param="response_format")
    words = prompt_words(texts)
    effort = body.get("reasoning_effort")
    request = _Request(
        model,
        texts,
        words,
        rf_type if rf_type != "text" else None,
        schema,
        strict,
        budget,
        messages=len(messages),
        effort=effort if effort in EFFORT_FACTORS else "medium",
    )
    request.prompt = prompt_tokens(request, config)
    if request.prompt > behaviour.context_window:
        message = (
            f"Please reduce the length of the messages or completion. The prompt is {request.prompt} tokens, "
            f"more than this model's context window of {behaviour.context_window} tokens."
        )
        return 400, error_body(message, param="messages", code="context_length_exceeded")
    return request


def _outcome(u: float, req: _Request, behaviour: ModelBehaviour) -> str:
    """`long`: the request needs a long generation (whether it fits is the budget's business)."""
    offset = 0.0
    if req.rf_type is not None and not req.strict:
        long_share = behaviour.json_validate_failed * behaviour.max_tokens_share
        if u < long_share:
            return "long"
        if u < behaviour.json_validate_failed:
            return "json_validate_failed"
        offset = behaviour.json_validate_failed
        if u < offset + behaviour.schema_break and req.schema is not None:
            return "schema_break"
        offset += behaviour.schema_break
    if u < offset + behaviour.length:
        return "long"
    return "ok"


def _line(line_id: str, custom_id: str, status: int, request_id: str, body: dict[str, Any]) -> bytes:
    response = {"status_code": status, "request_id": request_id, "body": body}
    return orjson.dumps({"id": line_id, "custom_id": custom_id, "response": response, "error": None})


def simulate(config: EmulatorConfig, request: InputRequest, processed_at: float) -> LineResult:
    """Run one input line "on Groq" at emulated time ``processed_at``."""
    body = request.body
    rng = request_rng(config.seed, request.custom_id, str(body["model"]))
    u = rng.random()
    line_id = new_id("batch_req_out_", processed_at, rng)
    request_id = new_id("req_", processed_at, rng)
    parsed = _parse(body, config)
    if isinstance(parsed, tuple):
        status, error = parsed
        return LineResult(request.custom_id, status, _line(line_id, request.custom_id, status, request_id, error))
    req = parsed
    behaviour = config.behaviour(req.model)
    outcome = _outcome(u, req, behaviour)
    if req.rf_type is None:
        content = TextMaker(rng, req.words).paragraph()
        instance: Any = None
    else:
        schema = req.schema if req.schema is not None else {"type": "object"}
        instance = InstanceGenerator(schema, rng, req.words).generate()
        content = orjson.dumps(instance).decode()
    low, high = behaviour.long_reasoning_tokens if outcome == "long" else behaviour.reasoning_tokens
    reasoning = round(rng.randint(low, high) * EFFORT_FACTORS.get(req.effort, 1.0)) if high > 0 else 0
    finish = "stop"

    if outcome == "json_validate_failed":
        if rng.random() < 0.15:
            error = error_body(JVF_VALIDATE, code="json_validate_failed", failed_generation="")
        else:
            partial = content[: rng.randint(1, max(1, len(content) - 1))]
            prefix = rng.choice(("", "", "```json\n", "Here is the JSON requested:\n"))
            error = error_body(JVF_GENERATE, code="json_validate_failed", failed_generation=prefix + partial)
        return LineResult(request.custom_id, 400, _line(line_id, request.custom_id, 400, request_id, error))
    if outcome == "schema_break":
        broken = break_instance(req.schema, instance, rng)
        content = orjson.dumps(broken).decode()
        if req.rf_type == "json_schema":  # Groq checks best-effort json_schema output itself
            message = f"{JVF_SCHEMA} Error: {schema_error_text(req.schema, broken)}"
            error = error_body(message, code="json_validate_failed", failed_generation=content)
            return LineResult(request.custom_id, 400, _line(line_id, request.custom_id, 400, request_id, error))

    completion_tokens = reasoning + max(1, math.ceil(len(content) / 4))
    if req.budget is not None and req.budget < completion_tokens:
        if req.rf_type is not None:  # JSON mode cut off: no valid document, Groq's only signal is this error
            error = error_body(JVF_VALIDATE_SEE, code="json_validate_failed", failed_generation=MAX_TOKENS_TEXT)
            return LineResult(request.custom_id, 400, _line(line_id, request.custom_id, 400, request_id, error))
        content = content[: max(0, req.budget - reasoning) * 4]
        completion_tokens, finish = req.budget, "length"

    prompt = req.prompt
    completion = _completion(rng, req, behaviour, content, finish, completion_tokens, reasoning, prompt)
    completion["created"] = int(processed_at)
    completion["x_groq"] = {"id": request_id}
    return LineResult(request.custom_id, 200, _line(line_id, request.custom_id, 200, request_id, completion))


def prompt_tokens(req: _Request, config: EmulatorConfig) -> int:
    """What Groq bills as the prompt: the messages' tokens in the model's own vocabulary where we have it
    (o200k for gpt-oss), a quarter of the characters otherwise, plus the chat template around them."""
    texts = list(req.texts)
    if req.rf_type == "json_schema" and req.schema is not None:
        texts.append(orjson.dumps(req.schema).decode())
    if req.model in config.o200k_models:
        counted = count_o200k("\n".join(texts))
        return counted + TEMPLATE_TOKENS + PER_MESSAGE_TOKENS * req.messages
    return max(1, sum(len(t) for t in texts) // 4)


def _completion(
    rng: random.Random,
    req: _Request,
    behaviour: ModelBehaviour,
    content: str,
    finish: str,
    completion_tokens: int,
    reasoning: int,
    prompt: int,
) -> dict[str, Any]:
    prompt_tokens = prompt
    prompt_time = round(prompt_tokens / rng.uniform(8000.0, 20000.0), 6)
    completion_time = round(completion_tokens / (behaviour.tokens_per_second * rng.uniform(0.8, 1.2)), 6)
    usage: dict[str, Any] = {
        "queue_time": round(rng.uniform(0.02, 1.5), 6),
        "prompt_tokens": prompt_tokens,
        "prompt_time": prompt_time,
        "completion_tokens": completion_tokens,
        "completion_time": completion_time,
        "total_tokens": prompt_tokens + completion_tokens,
        "total_time": round(prompt_time + completion_time, 6),
    }
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        message["reasoning"] = TextMaker(rng, req.words).sentence(10, 25)
    return {
        "id": f"chatcmpl-{uuid.UUID(int=rng.getrandbits(128), version=4)}",
        "object": "chat.completion",
        "created": 0,
        "model": req.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
        "system_fingerprint": _fingerprint(req.model),
        "x_groq": {},
    }


def unprocessed_line(custom_id: str, code: str, rng: random.Random, at: float) -> bytes:
    """Error-file line for a request the batch never ran (``batch_expired`` / ``batch_cancelled``)."""
    messages = {
        "batch_expired": "This request could not be executed before the completion window expired.",
        "batch_cancelled": "This request was not executed because the batch was cancelled.",
    }
    error = {"code": code, "message": messages.get(code, "This request was not executed.")}
    line = {"id": new_id("batch_req_out_", at, rng), "custom_id": custom_id, "response": None, "error": error}
    return orjson.dumps(line)
