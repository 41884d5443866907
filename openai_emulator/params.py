"""A batch line's body checked as OpenAI checks it when the line runs: each refusal is a per-line 4xx."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from groq_emulator.text import prompt_words
from openai_emulator.config import CHAT, EmulatorConfig, ModelSpec
from openai_emulator.strict import StrictSchemaError, check_strict
from openai_emulator.tokens import chat_messages, prompt_tokens, responses_messages

MAX_TOKENS_HINT = (
    "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
)
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
RESPONSES_MIN_OUTPUT = 16


class LineError(Exception):
    """The line's answer is this HTTP error (in the error file, ``response.body.error``)."""

    def __init__(
        self, status: int, message: str, *, type_: str = "invalid_request_error", param: str | None = None,
        code: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.error = {"message": message, "type": type_, "param": param, "code": code}


@dataclass
class Call:
    """The parts of a line the simulation needs, checked."""

    model: str
    spec: ModelSpec
    endpoint: str
    words: list[str]
    json_kind: str | None  # None (text), "json_object" or "json_schema"
    schema: Any
    schema_name: str | None
    strict: bool
    budget: int | None
    effort: str | None
    prompt: int
    messages: list[list[str]]


def model_not_found(model: str) -> LineError:
    message = f"The model `{model}` does not exist or you do not have access to it."
    return LineError(404, message, param=None, code="model_not_found")


def _spec(body: dict[str, Any], endpoint: str, config: EmulatorConfig) -> ModelSpec:
    model = body.get("model")
    spec = config.spec(model) if isinstance(model, str) else None
    if spec is None:
        raise model_not_found(str(model))
    if endpoint == CHAT and not spec.chat_completions_in_batch:
        raise model_not_found(f"{spec.snapshot}-batch")
    return spec


def _budget(value: Any, param: str, spec: ModelSpec, minimum: int = 1) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        message = f"Invalid type for '{param}': expected an integer, but got {type(value).__name__} instead."
        raise LineError(400, message, param=param, code="invalid_type")
    if value < minimum:
        message = (
            f"Invalid '{param}': integer below minimum value. Expected a value >= {minimum}, but got {value} instead."
        )
        raise LineError(400, message, param=param, code="integer_below_min_value")
    if value > spec.max_output_tokens:
        message = (
            f"{param} is too large: {value}. This model supports at most {spec.max_output_tokens} completion "
            f"tokens, whereas you provided {value}."
        )
        raise LineError(400, message, param=param, code="invalid_value")
    return value


def _effort(value: Any, param: str, spec: ModelSpec) -> str | None:
    if value is None:
        return spec.default_effort
    if not spec.reasoning:
        raise LineError(
            400,
            f"Unsupported parameter: '{param}' is not supported with this model.",
            param=param,
            code="unsupported_parameter",
        )
    if value not in spec.efforts:
        listed = ", ".join(f"'{e}'" for e in spec.efforts[:-1]) + f", and '{spec.efforts[-1]}'"
        raise LineError(
            400, f"Invalid value: '{value}'. Supported values are: {listed}.", param=param, code="unsupported_value"
        )
    return str(value)


def _temperature(body: dict[str, Any], spec: ModelSpec) -> None:
    value = body.get("temperature")
    if spec.reasoning and value is not None and value != 1:
        message = (
            f"Unsupported value: 'temperature' does not support {value} with this model. "
            "Only the default (1) value is supported."
        )
        raise LineError(400, message, param="temperature", code="unsupported_value")


def _schema(spec: ModelSpec, fmt: dict[str, Any], where: str, config: EmulatorConfig) -> tuple[Any, str, bool]:
    if not spec.structured_outputs:
        message = f"Invalid parameter: '{where}' of type 'json_schema' is not supported with this model."
        raise LineError(400, message, param=where, code="unsupported_parameter")
    name = fmt.get("name")
    if not isinstance(name, str):
        raise LineError(
            400,
            f"Missing required parameter: '{where}.name'.",
            param=f"{where}.name",
            code="missing_required_parameter",
        )
    if not _NAME.match(name):
        message = (
            f"Invalid '{where}.name': string does not match pattern. "
            "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."
        )
        raise LineError(400, message, param=f"{where}.name", code="invalid_value")
    schema = fmt.get("schema", {"type": "object"})
    strict = fmt.get("strict") is True
    if strict:
        try:
            check_strict(schema, refuse_unlisted=config.strict_unlisted_keywords == "refuse")
        except StrictSchemaError as exc:
            message = f"Invalid schema for response_format '{name}': {exc}"
            raise LineError(400, message, param=where, code="invalid_json_schema") from exc
    return schema, name, strict


def _chat(body: dict[str, Any], spec: ModelSpec, config: EmulatorConfig) -> dict[str, Any]:
    messages = body.get("messages")
    if messages is None:
        raise LineError(
            400, "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list) or not messages:
        message = (
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."
        )
        raise LineError(400, message, param="messages", code="empty_array")
    if spec.reasoning and "max_tokens" in body:
        raise LineError(400, MAX_TOKENS_HINT, param="max_tokens", code="unsupported_parameter")
    _temperature(body, spec)
    param = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    found: dict[str, Any] = {"budget": _budget(body.get(param), param, spec)}
    found["effort"] = _effort(body.get("reasoning_effort"), "reasoning_effort", spec)
    found["messages"] = chat_messages(body)
    rf = body.get("response_format")
    kind = rf.get("type") if isinstance(rf, dict) else None
    found.update(json_kind=None, schema=None, name=None, strict=False)
    if kind == "json_object":
        if not any("json" in text.lower() for parts in found["messages"] for text in parts):
            message = (
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'."
            )
            raise LineError(400, message, param="messages", code=None)
        found["json_kind"] = kind
    elif kind == "json_schema":
        fmt = rf.get("json_schema") if isinstance(rf, dict) else None
        if not isinstance(fmt, dict):
            raise LineError(
                400,
                "Missing required parameter: 'response_format.json_schema'.",
                param="response_format.json_schema",
                code="missing_required_parameter",
            )
        found["schema"], found["name"], found["strict"] = _schema(spec, fmt, "response_format", config)
        found["json_kind"] = kind
    elif kind not in (None, "text"):
        message = f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'."
        raise LineError(400, message, param="response_format.type", code="invalid_value")
    return found


def _responses(body: dict[str, Any], spec: ModelSpec, config: EmulatorConfig) -> dict[str, Any]:
    for unknown in ("max_tokens", "max_completion_tokens", "messages", "response_format"):
        if unknown in body:
            raise LineError(400, f"Unknown parameter: '{unknown}'.", param=unknown, code="unknown_parameter")
    if "input" not in body:
        raise LineError(400, "Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    _temperature(body, spec)
    found: dict[str, Any] = {
        "budget": _budget(body.get("max_output_tokens"), "max_output_tokens", spec, RESPONSES_MIN_OUTPUT)
    }
    reasoning = body.get("reasoning")
    found["effort"] = _effort(
        reasoning.get("effort") if isinstance(reasoning, dict) else None, "reasoning.effort", spec
    )
    found["messages"] = responses_messages(body)
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    found.update(json_kind=None, schema=None, name=None, strict=False)
    if kind == "json_schema" and isinstance(fmt, dict):
        found["schema"], found["name"], found["strict"] = _schema(spec, fmt, "text.format", config)
        found["json_kind"] = kind
    elif kind == "json_object":
        found["json_kind"] = kind
    elif kind not in (None, "text"):
        message = f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object', and 'json_schema'."
        raise LineError(400, message, param="text.format.type", code="invalid_value")
    return found


def _context(prompt: int, spec: ModelSpec, endpoint: str) -> None:
    window = spec.max_input_tokens
    if prompt <= window:
        return
    if endpoint == CHAT:
        message = (
            f"This model's maximum context length is {window} tokens. However, your messages resulted in "
            f"{prompt} tokens. Please reduce the length of the messages."
        )
        raise LineError(400, message, param="messages", code="context_length_exceeded")
    message = "Your input exceeds the context window of this model. Please adjust your input and try again."
    raise LineError(400, message, param="input", code="context_length_exceeded")


def parse(body: dict[str, Any], endpoint: str, config: EmulatorConfig, prompt: int | None = None) -> Call:
    """Check the line; raises LineError with OpenAI's status and error object. ``prompt``: its prompt tokens,
    when already counted."""
    spec = _spec(body, endpoint, config)
    found = _chat(body, spec, config) if endpoint == CHAT else _responses(body, spec, config)
    prompt = prompt_tokens(body, endpoint, spec.o200k) if prompt is None else prompt
    _context(prompt, spec, endpoint)
    words = prompt_words([text for parts in found["messages"] for text in parts])
    return Call(
        model=str(body["model"]),
        spec=spec,
        endpoint=endpoint,
        words=words,
        json_kind=found["json_kind"],
        schema=found["schema"],
        schema_name=found["name"],
        strict=found["strict"],
        budget=found["budget"],
        effort=found["effort"],
        prompt=prompt,
        messages=found["messages"],
    )
