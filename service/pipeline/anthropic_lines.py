"""Anthropic's Message Batches wire: the ``params`` of a request for an adapted chat-completions body, its line,
and the reading of a result line.

Translation (`anthropic_params`), with the choices made where the chat body and the Messages API differ:

- system and developer messages, wherever they stand, become the top-level ``system`` in their order (a string
  joined by blank lines, or text blocks when one carries ``cache_control``); their non-text parts are dropped,
  ``system`` takes text only. The installed SDK also types ``role: "system"`` inside ``messages``; the top-level
  parameter is used because every API version and the emulator take it;
- the other messages alternate ``user``/``assistant``: a tool message is a ``tool_result`` block of a user turn,
  consecutive messages of one role are merged into one turn of blocks, a single message's string content stays a
  string; parts: ``text`` → text block, ``image_url`` → image block (a base64 source from a ``data:`` URL, else a
  url source), ``cache_control`` kept; a part of any other type is passed as it is (Anthropic then refuses the
  request, which says more than dropping it silently);
- function tools become ``{name, description, input_schema}``, ``tool_choice`` ``required`` → ``any``, a named
  function → ``tool``, ``parallel_tool_calls: false`` → ``disable_parallel_tool_use``; assistant ``tool_calls``
  become ``tool_use`` blocks (arguments that are not a JSON object are kept as ``{"arguments": <text>}``);
  a tool's ``strict`` is dropped (strict tools would count against the structured-output limits);
- ``max_tokens`` is always set, at least 1: ``max_completion_tokens``, else ``max_tokens``, else the default;
- ``temperature`` and ``top_p`` are sent only with ``sampling=True``. Claude models after Opus 4.6 (Opus 4.7 and
  later, Sonnet 5, Opus 5) refuse the request with "`temperature` is deprecated for this model", and the
  installed SDK no longer has either parameter; older models (Haiku 4.5, Sonnet 4.5) take them, temperature in
  0 to 1 (a value above 1 is clamped to 1) and not together with ``top_p`` (Sonnet 4.5 and Opus 4.1+ refuse both:
  temperature is kept). Which models take them is the catalogue's to say;
- ``stop`` → ``stop_sequences``;
- structured output: a ``json_schema`` response_format becomes ``output_config.format`` when the schema fits
  Anthropic's limits (`anthropic_schema`), else the schema goes into the system prompt as the same instruction
  `requests.py` writes for JSON mode and the answer is judged by our validation alone; ``json_object`` becomes
  that instruction without a schema. ``output_config`` is also left out when the conversation ends with an
  assistant message (prefill, which structured output refuses);
- dropped, because Anthropic has no such parameter: ``response_format`` itself, ``n``, ``seed``,
  ``logit_bias``, ``presence_penalty``, ``frequency_penalty``, ``logprobs``/``top_logprobs``,
  ``reasoning_effort`` (``output_config.effort`` exists, but only some models take it), ``user`` and
  ``metadata`` (Anthropic's ``metadata`` holds a ``user_id`` of its own format), ``service_tier``, ``store``,
  ``stream``/``stream_options``, ``verbosity``, non-function tools, and any key not listed here.

The schema sent (`anthropic_schema`) is the strict derivation of `strict.py` (every property required, an
optional one nullable, ``additionalProperties: false`` everywhere), so that ``strict_used`` lets
`strip_introduced_nulls` remove the nulls it lets in, then fitted to Anthropic's limits (facts file B6): no
recursion and only local ``$ref``s into ``$defs``, an object root, enums of plain values, at most 16 union-typed
parameters (each optional property counts: it became nullable, so the 24-optional limit is never the one
reached); numeric, length and array constraints other than ``minItems`` 0/1, ``pattern`` (Anthropic's regex
support is partial) and formats it does not know move into the node's description, as the SDK's own
``transform_schema`` does, and are checked by our validation afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson

from service.pipeline import failure_codes as codes
from service.pipeline.classify import (
    MalformedLine,
    Outcome,
    as_object,
    failure,
    judge,
    text_or_none,
    token_count,
    unprocessed,
)
from service.pipeline.cost import Usage
from service.pipeline.expectations import OutputExpectation, response_format_schema
from service.pipeline.requests import JSON_INSTRUCTION, SCHEMA_INSTRUCTION_PREFIX, body_bytes
from service.pipeline.schemas import compact_json
from service.pipeline.strict import derive_strict_schema, strict_refusal

MAX_UNION_PARAMETERS = 16
STRING_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
# Kept out of the schema sent, noted in the node's description instead.
CONSTRAINTS = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
    }
)
_SYSTEM_ROLES = ("system", "developer")
_TOOL_CHOICES = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}
# Error types of a request that must be changed before it can succeed, with their HTTP status.
_REQUEST_ERRORS = {
    codes.INVALID_REQUEST_ERROR: 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "request_too_large": 413,
}
# Error types of a request that did not run: sent again as it is.
_NOT_RUN_ERRORS = {"api_error": 500, "rate_limit_error": 429, "timeout_error": 504, "overloaded_error": 529}
_PROMPT_TOO_LONG = "prompt is too long"


# --- params --------------------------------------------------------------------------------------------------


def anthropic_params(
    chat_body: Mapping[str, Any], *, max_tokens_default: int, sampling: bool = False
) -> tuple[dict[str, Any], bool]:
    """Anthropic ``params`` for a chat body already adapted to the model (its ``model`` the Anthropic id), and
    whether they ask for structured output (``output_config``). `sampling`: the model takes ``temperature`` and
    ``top_p``."""
    system, turns = _conversation(chat_body.get("messages"))
    output_config, instruction = _structured_output(chat_body.get("response_format"), turns)
    if instruction is not None and not any(instruction in block["text"] for block in system):
        system.append({"type": "text", "text": instruction})
    params: dict[str, Any] = {
        "model": chat_body.get("model"),
        "max_tokens": _max_tokens(chat_body, max_tokens_default),
        "messages": turns,
    }
    if system:
        params["system"] = _system_param(system)
    if output_config is not None:
        params["output_config"] = output_config
    stop = _stop_sequences(chat_body.get("stop"))
    if stop:
        params["stop_sequences"] = stop
    if sampling:
        params.update(_sampling(chat_body))
    params.update(_tool_params(chat_body))
    return params, output_config is not None


def anthropic_line(line_id: str, params: Mapping[str, Any]) -> bytes:
    """One request ``{"custom_id", "params"}`` as a JSON line, newline included; sorted keys, so the same
    request is the same bytes."""
    return b'{"custom_id":' + orjson.dumps(line_id) + b',"params":' + body_bytes(params) + b"}\n"


def _max_tokens(chat_body: Mapping[str, Any], default: int) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = chat_body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return max(1, value)
    return max(1, default)


def _stop_sequences(stop: Any) -> list[str]:
    if isinstance(stop, str):
        return [stop] if stop else []
    if isinstance(stop, list):
        return [sequence for sequence in stop if isinstance(sequence, str) and sequence]
    return []


def _sampling(chat_body: Mapping[str, Any]) -> dict[str, Any]:
    for key in ("temperature", "top_p"):
        value = chat_body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {key: min(max(value, 0), 1)}
    return {}


def _system_param(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if any("cache_control" in block for block in blocks):
        return blocks
    return "\n\n".join(block["text"] for block in blocks)


# --- messages ------------------------------------------------------------------------------------------------


def _conversation(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the system text blocks, the user/assistant turns)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, Mapping):
            continue
        role = message.get("role")
        if role in _SYSTEM_ROLES:
            system.extend(_system_blocks(message.get("content")))
        elif role == "assistant":
            _add_turn(turns, "assistant", _assistant_content(message))
        elif role == "tool":
            _add_turn(turns, "user", [_tool_result(message)])
        else:
            _add_turn(turns, "user", _user_content(message.get("content")))
    return system, turns


def _add_turn(turns: list[dict[str, Any]], role: str, content: str | list[Any]) -> None:
    if turns and turns[-1]["role"] == role:
        turns[-1] = {"role": role, "content": _as_blocks(turns[-1]["content"]) + _as_blocks(content)}
    else:
        turns.append({"role": role, "content": content})


def _as_blocks(content: str | list[Any]) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content)


def _system_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        return []
    return [
        _text_block(part["text"], part)
        for part in content
        if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)
    ]


def _user_content(content: Any) -> str | list[Any]:
    if isinstance(content, list):
        return [_block(part) for part in content]
    return content if isinstance(content, str) else ""


def _assistant_content(message: Mapping[str, Any]) -> str | list[Any]:
    content = message.get("content")
    calls = message.get("tool_calls")
    calls = calls if isinstance(calls, list) else []
    if isinstance(content, str) and not calls:
        return content
    blocks = [block for block in _as_blocks(_user_content(content)) if not _empty_text(block)]
    return blocks + [_tool_use(call) for call in calls if isinstance(call, Mapping)]


def _empty_text(block: Any) -> bool:
    """Anthropic refuses an empty text block; an assistant message with tool calls often has empty content."""
    return isinstance(block, dict) and block.get("type") == "text" and not block.get("text")


def _block(part: Any) -> Any:
    """A chat content part as a content block; a part of any other type is passed as it is."""
    if not isinstance(part, Mapping):
        return part
    kind = part.get("type")
    if kind == "text":
        return _text_block(part.get("text"), part)
    if kind == "refusal":  # an earlier assistant answer that refused
        return _text_block(part.get("refusal"), part)
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        return _with_cache_control({"type": "image", "source": _image_source(str(url))}, part)
    return part


def _text_block(text: Any, part: Mapping[str, Any]) -> dict[str, Any]:
    return _with_cache_control({"type": "text", "text": text}, part)


def _with_cache_control(block: dict[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    if part.get("cache_control") is not None:
        block["cache_control"] = part["cache_control"]
    return block


def _image_source(url: str) -> dict[str, Any]:
    """A ``data:<media type>;base64,<data>`` URL as a base64 source; any other URL as a url source."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type, *attributes = header[len("data:") :].split(";")
        if "base64" in attributes:
            return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _tool_use(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function")
    function = function if isinstance(function, Mapping) else {}
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": _arguments(function)}


def _arguments(function: Mapping[str, Any]) -> dict[str, Any]:
    raw = function.get("arguments")
    try:
        parsed = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    except orjson.JSONDecodeError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"arguments": raw}


def _tool_result(message: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": message.get("tool_call_id"),
        "content": _user_content(message.get("content")),
    }


def _tool_params(chat_body: Mapping[str, Any]) -> dict[str, Any]:
    tools = chat_body.get("tools")
    functions = [
        tool["function"]
        for tool in (tools if isinstance(tools, list) else [])
        if isinstance(tool, Mapping) and tool.get("type") == "function" and isinstance(tool.get("function"), Mapping)
    ]
    if not functions:
        return {}
    params: dict[str, Any] = {"tools": [_tool(function) for function in functions]}
    choice = _tool_choice(chat_body.get("tool_choice"), chat_body.get("parallel_tool_calls"))
    if choice is not None:
        params["tool_choice"] = choice
    return params


def _tool(function: Mapping[str, Any]) -> dict[str, Any]:
    parameters = function.get("parameters")
    tool = {
        "name": function.get("name"),
        "input_schema": parameters if isinstance(parameters, Mapping) else {"type": "object", "properties": {}},
    }
    if isinstance(function.get("description"), str):
        tool["description"] = function["description"]
    return tool


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    translated: dict[str, Any] | None = None
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        translated = dict(_TOOL_CHOICES[choice])
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        translated = {"type": "tool", "name": choice["function"].get("name")}
    if parallel is False:
        translated = translated or {"type": "auto"}
        if translated["type"] != "none":
            translated["disable_parallel_tool_use"] = True
    return translated


# --- structured output ---------------------------------------------------------------------------------------


class NotFitting(Exception):
    """The schema is over Anthropic's structured-output limits; the reason says which."""


def _structured_output(response_format: Any, turns: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str | None]:
    """(``output_config``, or the instruction for the system prompt)."""
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "json_object":
        return None, JSON_INSTRUCTION
    if kind != "json_schema":
        return None, None
    schema = response_format_schema({"response_format": response_format})
    if schema is None:
        return None, JSON_INSTRUCTION
    fitted = anthropic_schema(schema)
    prefilled = bool(turns) and turns[-1]["role"] == "assistant"
    if fitted is not None and not prefilled:
        return {"format": {"type": "json_schema", "schema": fitted}}, None
    return None, SCHEMA_INSTRUCTION_PREFIX + compact_json(schema).decode()


def anthropic_schema(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The schema for ``output_config.format`` (a fresh object each call), or None when it does not fit."""
    encoded = _fitted(compact_json(schema, sort_keys=True))
    return None if encoded is None else orjson.loads(encoded)


def anthropic_schema_refusal(schema: Mapping[str, Any]) -> str | None:
    """Why `schema` goes into the prompt rather than into ``output_config``, or None when it fits."""
    try:
        _fit(schema)
    except NotFitting as reason:
        return str(reason)
    return None


@lru_cache(maxsize=256)
def _fitted(schema_json: bytes) -> bytes | None:
    try:
        return orjson.dumps(_fit(orjson.loads(schema_json)))
    except NotFitting:
        return None


def _fit(schema: Mapping[str, Any]) -> dict[str, Any]:
    derived = derive_strict_schema(schema)
    if derived is None:
        raise NotFitting(f"no strict form: {strict_refusal(schema)}")
    if derived.get("type") != "object":
        raise NotFitting("the root is not an object")
    _check_refs(derived)
    fitted = _fit_node(derived, "$")
    unions = _union_count(fitted)
    if unions > MAX_UNION_PARAMETERS:
        raise NotFitting(
            f"{unions} union-typed parameters (optional properties count, as nullable), "
            f"over Anthropic's {MAX_UNION_PARAMETERS}"
        )
    return fitted


def _fit_node(node: Mapping[str, Any], where: str) -> dict[str, Any]:
    fitted: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in node.items():
        if key in ("properties", "$defs"):
            fitted[key] = {name: _fit_node(sub, f"{where}.{key}.{name}") for name, sub in value.items()}
        elif key == "items":
            fitted[key] = _fit_node(value, f"{where}.items")
        elif key == "anyOf":
            fitted[key] = [_fit_node(branch, f"{where}.anyOf[{i}]") for i, branch in enumerate(value)]
        elif key in CONSTRAINTS or (key == "format" and not (isinstance(value, str) and value in STRING_FORMATS)):
            notes.append(f"{key}: {_note_value(value)}")
        elif key == "minItems" and value not in (0, 1):
            fitted[key] = 1
            notes.append(f"{key}: {_note_value(value)}")
        elif key != "$comment":
            fitted[key] = value
    _check_literals(fitted, where)
    if notes:
        described = fitted.get("description")
        prefix = f"{described}\n\n" if isinstance(described, str) and described else ""
        fitted["description"] = prefix + "{" + ", ".join(notes) + "}"
    return fitted


def _note_value(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _check_literals(node: Mapping[str, Any], where: str) -> None:
    enum = node.get("enum")
    values = [*(enum if isinstance(enum, list) else []), *([node["const"]] if "const" in node else [])]
    if any(isinstance(value, dict | list) for value in values):
        raise NotFitting(f"{where} has an enum or const of objects or arrays")


def _check_refs(schema: Mapping[str, Any]) -> None:
    """Only local references into ``$defs``, and none that leads back to where it started."""
    defs = schema.get("$defs") or {}
    for ref in _refs(schema):
        if not ref.startswith("#/$defs/") or ref.removeprefix("#/$defs/") not in defs:
            raise NotFitting(f"the $ref {ref!r} is not a local definition")
    graph = {name: {ref.removeprefix("#/$defs/") for ref in _refs(sub)} for name, sub in defs.items()}
    for start in graph:
        seen: set[str] = set()
        stack = list(graph[start])
        while stack:
            name = stack.pop()
            if name == start:
                raise NotFitting(f"the definition {start!r} is recursive")
            if name not in seen:
                seen.add(name)
                stack.extend(graph.get(name, ()))


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("$ref"), str):
                found.add(item["$ref"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _union_count(node: Mapping[str, Any]) -> int:
    """Union-typed nodes (a list of types, or anyOf) as written: a definition counts once however often used."""
    declared = node.get("type")
    count = int((isinstance(declared, list) and len(declared) > 1) or "anyOf" in node)
    for key in ("properties", "$defs"):
        count += sum(_union_count(sub) for sub in (node.get(key) or {}).values())
    if isinstance(node.get("items"), dict):
        count += _union_count(node["items"])
    return count + sum(_union_count(branch) for branch in node.get("anyOf") or [])


# --- results -------------------------------------------------------------------------------------------------


def classify_anthropic(line: dict[str, Any], expectation: OutputExpectation) -> Outcome:
    """One line of a Message Batch's results: ``{"custom_id", "result": {"type": ...}}``."""
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str):
        return failure("", codes.MALFORMED_RESULT, "result line has no string custom_id")
    try:
        result = as_object(line.get("result"), "result")
        kind = result.get("type")
        if kind == "succeeded":
            return _succeeded(custom_id, as_object(result.get("message"), "result.message"), expectation)
        if kind == "errored":
            return _errored(custom_id, result.get("error"))
        if kind == "expired":
            return unprocessed(custom_id, codes.BATCH_EXPIRED, "the batch expired before this request was processed")
        if kind == "canceled":
            return unprocessed(custom_id, codes.CANCELLED, "the batch was cancelled before this request was processed")
        raise MalformedLine(f"result.type is {kind!r}")
    except MalformedLine as problem:
        return failure(custom_id, codes.MALFORMED_RESULT, f"malformed result line: {problem}")


def _succeeded(custom_id: str, message: Mapping[str, Any], expectation: OutputExpectation) -> Outcome:
    content = _message_text(message.get("content"))
    stop_reason = text_or_none(message.get("stop_reason"))
    usage = anthropic_usage(message.get("usage"))
    request_id = text_or_none(message.get("id"))

    def outcome(code: str | None, error_message: str | None, output: Any | None = None) -> Outcome:
        return Outcome(custom_id, code is None, code, error_message, content, output, stop_reason, usage, request_id)

    if stop_reason == "refusal":
        return outcome(codes.REFUSED, _refusal_message(message.get("stop_details")))
    if stop_reason == "max_tokens":
        return outcome(codes.MAX_TOKENS, "the model stopped at the max_tokens limit")
    if stop_reason == "model_context_window_exceeded":
        return outcome(codes.CONTEXT_LENGTH_EXCEEDED, "the answer filled the model's context window")
    if stop_reason == "pause_turn":
        return outcome(codes.PROVIDER_ERROR, "the model paused its turn (server tools) before answering")
    return outcome(*judge(content, expectation))


def _message_text(blocks: Any) -> str | None:
    """The text blocks' text joined, or None when there is none (a refusal, only tool use)."""
    if not isinstance(blocks, list):
        raise MalformedLine("result.message.content is not a list")
    texts = [
        block["text"]
        for block in blocks
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
    ]
    return "".join(texts) if texts else None


def _refusal_message(details: Any) -> str:
    details = details if isinstance(details, dict) else {}
    explanation = text_or_none(details.get("explanation")) or "the model refused"
    category = text_or_none(details.get("category"))
    return f"{explanation} (category: {category})" if category else explanation


def _errored(custom_id: str, error: Any) -> Outcome:
    """``{"type": "error", "error": {"type", "message"}, "request_id"}``: a request to fix, a model that is not
    there, or a request that did not run (sent again)."""
    envelope = error if isinstance(error, dict) else {}
    inner = envelope.get("error")
    inner = inner if isinstance(inner, dict) else envelope
    error_type = text_or_none(inner.get("type"))
    message = text_or_none(inner.get("message")) or error_type or "the request errored"
    code, status = _error_code(error_type, message)
    return failure(
        custom_id, code, message, provider_request_id=text_or_none(envelope.get("request_id")), http_status=status
    )


def _error_code(error_type: str | None, message: str) -> tuple[str, int | None]:
    if error_type is None:
        return codes.PROVIDER_ERROR, None
    if error_type == "not_found_error":
        return codes.MODEL_NOT_FOUND, 404
    if error_type == codes.INVALID_REQUEST_ERROR and message.startswith(_PROMPT_TOO_LONG):
        return codes.CONTEXT_LENGTH_EXCEEDED, 400
    if error_type in _REQUEST_ERRORS:
        return error_type, _REQUEST_ERRORS[error_type]
    return codes.PROVIDER_SERVER_ERROR, _NOT_RUN_ERRORS.get(error_type)


def anthropic_usage(raw: Any) -> Usage:
    """Anthropic's ``input_tokens`` leaves out the prompt tokens read from or written to the cache: the total
    adds them back."""
    if not isinstance(raw, dict):
        return Usage()
    written = token_count(raw.get("cache_creation_input_tokens"))
    read = token_count(raw.get("cache_read_input_tokens"))
    return Usage(
        token_count(raw.get("input_tokens")) + written + read, token_count(raw.get("output_tokens")), read, written
    )
