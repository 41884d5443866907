"""OpenAI's ``/v1/responses`` wire: the body for an adapted chat-completions body, and the reading of its lines.

`responses_body` translates; `classify_responses` reads a batch output or error line whose ``response.body`` is
a Response object, sharing the line envelope and the judging of the answer with `classify`.

Choices in the translation (the Responses API as the installed ``openai`` SDK types it):

- system and developer messages stay input items with their own role, in place, rather than moving into
  ``instructions``: ``instructions`` takes a string only (a system message's content parts would be flattened),
  it sits before every input item (a system message later in the conversation would move), and its purpose is
  to be swapped out across ``previous_response_id`` chains, which a batch line never has;
- an assistant message's text becomes string content (the input message type takes ``input_*`` parts, which an
  assistant message may not carry) followed by one ``function_call`` item per tool call; a tool message becomes
  a ``function_call_output`` item;
- ``max_output_tokens`` is at least 16, the endpoint's minimum (a smaller budget would fail the line);
- ``store`` is false unless the caller set it: chat completions are not stored by default, responses are;
- function tools keep their ``strict`` as chat reads it (false unless set; the Responses API's default is true);
- dropped, because the endpoint has no such parameter: ``stop``, ``n``, ``seed``, ``logit_bias``,
  ``presence_penalty``, ``frequency_penalty``, ``logprobs``/``top_logprobs`` (the answer is judged on its text),
  ``stream``/``stream_options`` (a batch does not stream), ``modalities``, ``audio``, ``prediction``,
  ``web_search_options``, the legacy ``functions``/``function_call``, and non-function tools. Any other key the
  chat body carries is dropped too, so that the line is never refused for a parameter the endpoint lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.pipeline import failure_codes as codes
from service.pipeline.classify import (
    MalformedLine,
    Outcome,
    as_object,
    classify_openai_line,
    failure,
    judge,
    text_or_none,
    token_count,
)
from service.pipeline.cost import Usage
from service.pipeline.expectations import OutputExpectation

MIN_OUTPUT_TOKENS = 16
DEFAULT_SCHEMA_NAME = "output"
# Taken as they are: the endpoint has parameters of the same name and meaning.
PASSED_THROUGH = (
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "metadata",
    "service_tier",
    "store",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
)
_INCOMPLETE_CODES = {"max_output_tokens": codes.MAX_TOKENS, "content_filter": codes.REFUSED}
_INCOMPLETE_MESSAGES = {
    "max_output_tokens": "the model stopped at the max output tokens limit",
    "content_filter": "the provider's content filter stopped the answer",
}


def responses_body(chat_body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``/v1/responses`` body for a chat-completions body already adapted to the model."""
    body: dict[str, Any] = {"model": chat_body.get("model"), "input": _input(chat_body.get("messages"))}
    body.update((key, chat_body[key]) for key in PASSED_THROUGH if key in chat_body)
    body.setdefault("store", False)
    budget = _max_output_tokens(chat_body)
    if budget is not None:
        body["max_output_tokens"] = budget
    text = _text_config(chat_body)
    if text:
        body["text"] = text
    effort = chat_body.get("reasoning_effort")
    if isinstance(effort, str):
        body["reasoning"] = {"effort": effort}
    tools = _tools(chat_body.get("tools"))
    if tools:
        body["tools"] = tools
        choice = _tool_choice(chat_body.get("tool_choice"))
        if choice is not None:
            body["tool_choice"] = choice
    return body


def _max_output_tokens(chat_body: Mapping[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = chat_body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return max(MIN_OUTPUT_TOKENS, value)
    return None


def _text_config(chat_body: Mapping[str, Any]) -> dict[str, Any]:
    text: dict[str, Any] = {}
    text_format = _text_format(chat_body.get("response_format"))
    if text_format is not None:
        text["format"] = text_format
    if isinstance(chat_body.get("verbosity"), str):
        text["verbosity"] = chat_body["verbosity"]
    return text


def _text_format(response_format: Any) -> dict[str, Any] | None:
    """``response_format`` as ``text.format``: the json_schema fields move up one level."""
    if not isinstance(response_format, Mapping):
        return None
    kind = response_format.get("type")
    if kind != "json_schema":
        return {"type": kind} if kind in ("json_object", "text") else None
    spec = response_format.get("json_schema")
    spec = spec if isinstance(spec, Mapping) else {}
    name = spec.get("name")
    text_format: dict[str, Any] = {
        "type": "json_schema",
        "name": name if isinstance(name, str) and name else DEFAULT_SCHEMA_NAME,
        "strict": spec.get("strict") is True,
    }
    for key in ("schema", "description"):
        if key in spec:
            text_format[key] = spec[key]
    return text_format


def _input(messages: Any) -> list[Any]:
    if not isinstance(messages, list):
        return []
    items: list[Any] = []
    for message in messages:
        if isinstance(message, Mapping):
            items.extend(_items(message))
    return items


def _items(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    role = message.get("role")
    if role == "tool":
        return [{"type": "function_call_output", "call_id": message.get("tool_call_id"), "output": _text(message)}]
    if role == "assistant":
        return _assistant_items(message)
    return [{"role": role if role in ("system", "developer") else "user", "content": _content(message)}]


def _assistant_items(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    text = _text(message)
    items: list[dict[str, Any]] = [{"role": "assistant", "content": text}] if text else []
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments") or "{}",
                }
            )
    return items


def _text(message: Mapping[str, Any]) -> str:
    """A message's text: its string content, or its text (and refusal) parts joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = (part.get("text", part.get("refusal")) for part in content if isinstance(part, Mapping))
    return "".join(text for text in texts if isinstance(text, str))


def _content(message: Mapping[str, Any]) -> Any:
    content = message.get("content")
    if isinstance(content, list):
        return [_part(part) for part in content]
    return content if isinstance(content, str) else ""


def _part(part: Any) -> Any:
    """A chat content part as an input content part; a part of any other type is passed as it is."""
    if not isinstance(part, Mapping):
        return part
    kind = part.get("type")
    if kind == "text":
        return {"type": "input_text", "text": part.get("text")}
    if kind == "image_url":
        image = part.get("image_url")
        image = image if isinstance(image, Mapping) else {"url": image}
        detail = image.get("detail")
        return {"type": "input_image", "image_url": image.get("url"), "detail": detail or "auto"}
    if kind == "file" and isinstance(part.get("file"), Mapping):
        return {"type": "input_file", **part["file"]}
    return part


def _tools(tools: Any) -> list[dict[str, Any]]:
    """Function tools, flattened: ``{"type": "function", "name", "description", "parameters", "strict"}``."""
    if not isinstance(tools, list):
        return []
    found: list[dict[str, Any]] = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, Mapping) and tool.get("type") == "function" else None
        if not isinstance(function, Mapping):
            continue
        flat = {
            "type": "function",
            "name": function.get("name"),
            "parameters": function.get("parameters"),
            "strict": function.get("strict") is True,
        }
        if isinstance(function.get("description"), str):
            flat["description"] = function["description"]
        found.append(flat)
    return found


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        return choice
    function = choice.get("function") if isinstance(choice, Mapping) else None
    if isinstance(function, Mapping):
        return {"type": "function", "name": function.get("name")}
    return None


def classify_responses(line: dict[str, Any], expectation: OutputExpectation) -> Outcome:
    """One line of a ``/v1/responses`` batch."""
    return classify_openai_line(line, expectation, _classify_response, responses_usage)


def _classify_response(custom_id: str, response: Mapping[str, Any], expectation: OutputExpectation) -> Outcome:
    body = as_object(response.get("body"), "response.body")
    status = body.get("status")
    if not isinstance(status, str):
        raise MalformedLine("response.body.status is not a string")
    request_id = text_or_none(response.get("request_id")) or text_or_none(body.get("id"))
    usage = responses_usage(body.get("usage"))
    if status == "failed":
        return _failed(custom_id, body, usage, request_id)
    if status == "cancelled":
        return failure(custom_id, codes.CANCELLED, "the response was cancelled", usage=usage)
    if status not in ("completed", "incomplete"):
        raise MalformedLine(f"response.body.status is {status!r}, not a finished response")
    content, refusal = _output_text(body.get("output"))
    reason = _incomplete_reason(body) if status == "incomplete" else None
    finish_reason = reason or status

    def outcome(code: str | None, error_message: str | None, output: Any | None = None) -> Outcome:
        return Outcome(custom_id, code is None, code, error_message, content, output, finish_reason, usage, request_id)

    if refusal is not None:
        return outcome(codes.REFUSED, refusal or "the model refused")
    if status == "incomplete":
        code = _INCOMPLETE_CODES.get(reason or "", codes.PROVIDER_ERROR)
        return outcome(code, _INCOMPLETE_MESSAGES.get(reason or "", f"the response is incomplete ({reason})"))
    return outcome(*judge(content, expectation))


def _failed(custom_id: str, body: Mapping[str, Any], usage: Usage, request_id: str | None) -> Outcome:
    """A response that failed: its error's code (a ``server_error`` never really ran: sent again)."""
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    code = text_or_none(error.get("code")) or codes.PROVIDER_ERROR
    if code == "server_error":
        code = codes.PROVIDER_SERVER_ERROR
    message = text_or_none(error.get("message")) or "the response failed"
    return failure(custom_id, code, message, usage=usage, provider_request_id=request_id)


def _incomplete_reason(body: Mapping[str, Any]) -> str | None:
    details = body.get("incomplete_details")
    return text_or_none(details.get("reason")) if isinstance(details, dict) else None


def _output_text(output: Any) -> tuple[str | None, str | None]:
    """(the ``output_text`` of the message items joined, or None when there is none; the refusal, if any)."""
    if not isinstance(output, list):
        raise MalformedLine("response.body.output is not a list")
    texts: list[str] = []
    refusal: str | None = None
    for item in output:
        if not isinstance(item, dict) or item.get("type") != "message":
            continue  # reasoning, tool calls
        parts = item.get("content")
        for part in parts if isinstance(parts, list) else []:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "output_text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "refusal":
                refusal = text_or_none(part.get("refusal")) or ""
    return ("".join(texts) if texts else None), refusal


def responses_usage(raw: Any) -> Usage:
    """A Response's usage: ``input_tokens`` already counts the cached ones and those written to the cache."""
    if not isinstance(raw, dict):
        return Usage()
    details = raw.get("input_tokens_details")
    details = details if isinstance(details, dict) else {}
    return Usage(
        token_count(raw.get("input_tokens")),
        token_count(raw.get("output_tokens")),
        token_count(details.get("cached_tokens")),
        token_count(details.get("cache_write_tokens")),
    )
