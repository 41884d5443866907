"""A request's ``params`` checked as the Messages API checks them; in a batch a violation is an ``errored``
result once the whole batch has ended (validation is asynchronous)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anthropic_emulator.config import EmulatorConfig, ModelSpec
from anthropic_emulator.schema import SchemaRefused, check_schema
from anthropic_emulator.tokens import Part, count, parts
from groq_emulator.text import message_texts, prompt_words

KNOWN = frozenset(
    {
        "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "temperature", "top_p", "top_k",
        "tools", "tool_choice", "thinking", "output_config", "output_format", "service_tier", "cache_control",
        "container", "context_management", "mcp_servers", "inference_geo", "user_profile_id", "diagnostics",
        "stream", "speed",
    }
)  # fmt: skip
SYSTEM_ROLE = (
    'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, '
    'not "system" as an input message role.'
)


class RequestError(Exception):
    """The request's result is ``errored`` with this error."""

    def __init__(self, message: str, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.type = type_
        self.message = message


@dataclass
class Call:
    model: str
    spec: ModelSpec
    max_tokens: int
    schema: Any
    prompt: list[Part]
    words: list[str]


def _model(params: dict[str, Any], config: EmulatorConfig) -> ModelSpec:
    if "model" not in params:
        raise RequestError("model: Field required")
    model = params["model"]
    if not isinstance(model, str):
        raise RequestError("model: Input should be a valid string")
    spec = config.spec(model)
    if spec is None:
        raise RequestError(f"model: {model}", "not_found_error")
    return spec


def _max_tokens(params: dict[str, Any], spec: ModelSpec) -> int:
    if "max_tokens" not in params:
        raise RequestError("max_tokens: Field required")
    value = params["max_tokens"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError("max_tokens: Input should be a valid integer")
    if value < 1:
        raise RequestError("max_tokens: Input should be greater than or equal to 1")
    if value > spec.max_tokens:
        raise RequestError(
            f"max_tokens: {value} > {spec.max_tokens}, which is the maximum allowed number of output tokens "
            f"for {spec.id}"
        )
    return value


def _messages(params: dict[str, Any]) -> None:
    if "messages" not in params:
        raise RequestError("messages: Field required")
    messages = params["messages"]
    if not isinstance(messages, list):
        raise RequestError("messages: Input should be a valid list")
    if not messages:
        raise RequestError("messages: List should have at least 1 item after validation, not 0")
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system":
            raise RequestError(SYSTEM_ROLE)
        if role not in ("user", "assistant"):
            raise RequestError(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise RequestError(f"messages.{index}.content: Input should be a valid string or list")


def _schema(params: dict[str, Any], spec: ModelSpec) -> Any:
    config = params.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else params.get("output_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise RequestError("output_config.format.type: Input should be 'json_schema'")
    if not spec.structured_outputs:
        raise RequestError(f"'{spec.id}' does not support output_config.format (structured outputs).")
    schema = fmt.get("schema")
    try:
        check_schema(schema)
    except SchemaRefused as exc:
        raise RequestError(str(exc)) from exc
    return schema


def parse(params: Any, config: EmulatorConfig) -> Call:
    """Check one request; raises RequestError."""
    if not isinstance(params, dict):
        raise RequestError("params: Input should be a valid dictionary")
    for key in params:
        if key not in KNOWN:
            raise RequestError(f"{key}: Extra inputs are not permitted")
    if params.get("stream") is True:
        raise RequestError("stream: Streaming is not supported in the Message Batches API")
    if "speed" in params:
        raise RequestError("speed: Not supported in the Message Batches API")
    spec = _model(params, config)
    max_tokens = _max_tokens(params, spec)
    _messages(params)
    system = params.get("system")
    if system is not None and not isinstance(system, str | list):
        raise RequestError("system: Input should be a valid string or list")
    schema = _schema(params, spec)
    prompt = parts(params, schema)
    tokens = sum(count(part, config.chars_per_token) for part in prompt)
    if tokens > spec.max_input_tokens:
        raise RequestError(f"prompt is too long: {tokens} tokens > {spec.max_input_tokens} maximum")
    texts = [system] if isinstance(system, str) else message_texts([{"content": system}])
    words = prompt_words(texts + message_texts(params["messages"]))
    return Call(str(params["model"]), spec, max_tokens, schema, prompt, words)
