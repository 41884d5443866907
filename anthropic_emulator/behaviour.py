"""What one request of a batch returns: a deterministic simulation seeded by ``(seed, custom_id, model)``."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import orjson

from anthropic_emulator.config import EmulatorConfig
from anthropic_emulator.ids import new_id
from anthropic_emulator.params import Call, RequestError, parse
from anthropic_emulator.requests import Item
from anthropic_emulator.tokens import PromptCache, Split
from groq_emulator.behaviour import request_rng
from groq_emulator.conforming import conforming_instance
from groq_emulator.text import TextMaker

REFUSAL_CATEGORIES = (None, "cyber", "bio", "general_harms")
REFUSAL_EXPLANATION = "This request was declined because it may relate to potentially harmful content."


@dataclass(frozen=True)
class Outcome:
    """One results line (no newline) and its result type."""

    custom_id: str
    kind: str  # succeeded | errored | canceled | expired
    data: bytes


def result_line(custom_id: str, result: dict[str, Any]) -> Outcome:
    return Outcome(custom_id, str(result["type"]), orjson.dumps({"custom_id": custom_id, "result": result}))


def errored(custom_id: str, type_: str, message: str, rng: random.Random) -> Outcome:
    error = {"type": "error", "error": {"type": type_, "message": message}, "request_id": new_id("req_", rng)}
    return result_line(custom_id, {"type": "errored", "error": error})


def _required_first(schema: Any, value: Any) -> Any:
    """Anthropic emits an object's required properties first."""
    if not isinstance(value, dict) or not isinstance(schema, dict):
        return value
    required = [name for name in schema.get("required", []) if name in value]
    return {**{name: value[name] for name in required}, **value}


def _text(call: Call, rng: random.Random, long: bool) -> str:
    if call.schema is not None:
        return orjson.dumps(_required_first(call.schema, conforming_instance(call.schema, rng, call.words))).decode()
    maker = TextMaker(rng, call.words)
    if not long:
        return maker.paragraph()
    low, high = call.spec.long_tokens
    target = rng.randint(low, high) * 4
    paragraphs = [maker.paragraph()]
    while sum(len(p) + 2 for p in paragraphs) < target:
        paragraphs.append(maker.paragraph())
    return "\n\n".join(paragraphs)


def _usage(split: Split, output: int) -> dict[str, Any]:
    written_1h = split.written if split.ttl == "1h" else 0
    return {
        "input_tokens": split.uncached,
        "cache_creation_input_tokens": split.written,
        "cache_read_input_tokens": split.read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": split.written - written_1h,
            "ephemeral_1h_input_tokens": written_1h,
        },
        "output_tokens": output,
        "service_tier": "batch",
    }


def message(call: Call, rng: random.Random, split: Split, ratio: float) -> dict[str, Any]:
    u = rng.random()
    body: dict[str, Any] = {"id": new_id("msg_", rng), "type": "message", "role": "assistant", "model": call.spec.id}
    if u < call.spec.refusal:
        details = {"type": "refusal", "category": rng.choice(REFUSAL_CATEGORIES), "explanation": REFUSAL_EXPLANATION}
        stop = {"stop_reason": "refusal", "stop_sequence": None, "stop_details": details}
        return {**body, "content": [], **stop, "usage": _usage(split, 3)}
    text = _text(call, rng, long=u < call.spec.refusal + call.spec.length)
    output = max(1, math.ceil(len(text) / ratio))
    reason = "end_turn"
    if output > call.max_tokens:
        text, output, reason = text[: math.floor(call.max_tokens * ratio)], call.max_tokens, "max_tokens"
    content = [{"type": "text", "text": text}]
    stop = {"stop_reason": reason, "stop_sequence": None, "stop_details": None}
    return {**body, "content": content, **stop, "usage": _usage(split, output)}


def simulate(config: EmulatorConfig, item: Item, at: float, cache: PromptCache) -> Outcome:
    """Run one request at emulated time ``at``."""
    params = item.params
    model = params.get("model") if isinstance(params, dict) else None
    rng = request_rng(config.seed, item.custom_id, str(model))
    try:
        call = parse(params, config)
    except RequestError as error:
        return errored(item.custom_id, error.type, error.message, rng)
    ratio = config.chars_per_token
    hit = request_rng(config.seed, item.custom_id, "cache")
    split = cache.split(call.model, call.prompt, ratio, call.spec.min_cache_tokens, at, hit, config.cache_hit_rate)
    return result_line(item.custom_id, {"type": "succeeded", "message": message(call, rng, split, ratio)})
