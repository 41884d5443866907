"""The success bodies of a batch line: a chat completion, or a response of the Responses API."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from openai_emulator.config import CHAT
from openai_emulator.ids import base62, timed_hex
from openai_emulator.params import Call

REFUSAL_TEXT = "I'm sorry, but I can't help with that."


@dataclass(frozen=True)
class Answer:
    """What the model produced, counted."""

    content: str | None  # None: refused
    refusal: str | None
    prompt: int
    cached: int
    visible: int
    reasoning: int
    truncated: bool

    @property
    def completion(self) -> int:
        return self.visible + self.reasoning


def chat_body(call: Call, answer: Answer, rng: random.Random, at: float) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer.content,
        "refusal": answer.refusal,
        "annotations": [],
    }
    return {
        "id": base62("chatcmpl-", rng, 29),
        "object": "chat.completion",
        "created": int(at),
        "model": call.spec.snapshot,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "length" if answer.truncated else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": answer.prompt,
            "completion_tokens": answer.completion,
            "total_tokens": answer.prompt + answer.completion,
            "prompt_tokens_details": {"cached_tokens": answer.cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": answer.reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": None,
    }


def _text_format(call: Call) -> dict[str, Any]:
    if call.json_kind == "json_schema":
        return {"type": "json_schema", "name": call.schema_name, "schema": call.schema, "strict": call.strict}
    return {"type": call.json_kind or "text"}


def _output(call: Call, answer: Answer, rng: random.Random, at: float) -> list[dict[str, Any]]:
    output: list[dict[str, Any]] = []
    if call.spec.reasoning:
        output.append({"id": timed_hex("rs_", at, rng, 50), "type": "reasoning", "summary": []})
    if answer.refusal is not None:
        content: list[dict[str, Any]] = [{"type": "refusal", "refusal": answer.refusal}]
    elif answer.truncated and not answer.content:
        return output  # the budget ran out while reasoning: no message at all
    else:
        content = [{"type": "output_text", "annotations": [], "logprobs": [], "text": answer.content}]
    status = "incomplete" if answer.truncated else "completed"
    message = {"id": timed_hex("msg_", at, rng, 50), "type": "message", "status": status, "role": "assistant"}
    output.append({**message, "content": content})
    return output


def responses_body(call: Call, answer: Answer, rng: random.Random, at: float, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": timed_hex("resp_", at, rng, 50),
        "object": "response",
        "created_at": int(at),
        "status": "incomplete" if answer.truncated else "completed",
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if answer.truncated else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": call.budget,
        "model": call.spec.snapshot,
        "output": _output(call, answer, rng, at),
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": call.effort, "summary": None},
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": _text_format(call), "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": answer.prompt,
            "input_tokens_details": {"cached_tokens": answer.cached, "cache_write_tokens": 0},
            "output_tokens": answer.completion,
            "output_tokens_details": {"reasoning_tokens": answer.reasoning},
            "total_tokens": answer.prompt + answer.completion,
        },
        "user": None,
        "metadata": {},
    }


def success_body(call: Call, answer: Answer, rng: random.Random, at: float, body: dict[str, Any]) -> dict[str, Any]:
    if call.endpoint == CHAT:
        return chat_body(call, answer, rng, at)
    return responses_body(call, answer, rng, at, body)
