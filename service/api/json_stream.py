"""Reading JSON as it streams in, value by value, knowing at every moment which field is being read.

ijson's push parser hands each event to a `Builder` the moment it is parsed, so when the parser stops at a bad
value (NaN, Infinity, a number too large, an unpaired surrogate) the builder's path names the field it stands in.
The C parser silently turns a lone high-surrogate escape (`"\\ud800"`) into "?": bytes are scanned for unpaired
surrogate escapes before they reach it. Nesting is bounded (MAX_JSON_DEPTH, from each top-level field's value
or each item of the items list), so no input makes anything downstream recurse without bound.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from typing import Any

import ijson

from service.api.limits import MAX_JSON_DEPTH
from service.kit.problems import Problem, limit_exceeded
from service.pipeline.errors import SubmissionError

UNPAIRED_SURROGATE = "holds an unpaired surrogate escape (such as \\udc00): JSON text must be valid Unicode"


class Refused(Exception):
    def __init__(self, error: SubmissionError | Problem) -> None:
        self.error = error


def path_text(path: list[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def json_refusal(path: list[str | int], error: Exception) -> SubmissionError:
    """What is wrong, said of the field it stands in."""
    where = path_text(path)
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, UnicodeDecodeError):
        reason = UNPAIRED_SURROGATE
    elif "integer overflow" in message:
        reason = "is an integer too large to read (at most 64 bits)"
    elif "overflow" in message:
        reason = "is a number too large to read (at most about 1.8e308)"
    elif "invalid char" in message or "after the minus sign" in message:
        reason = "is not a JSON value (NaN, Infinity and unquoted words are not JSON)"
    elif "premature EOF" in message:
        reason = "ends before the JSON is complete"
    elif "trailing garbage" in message:
        reason = "is followed by more than one JSON value"
    else:
        reason = f"is not valid JSON ({message})"
    return SubmissionError(f"{where} {reason}", field=where)


def too_deep(where: str) -> Problem:
    return limit_exceeded(
        f"{where} nests objects and arrays more than MAX_JSON_DEPTH = {MAX_JSON_DEPTH} levels deep",
        field=where,
        setting="MAX_JSON_DEPTH",
        maximum=MAX_JSON_DEPTH,
    )


class Builder:
    """Builds values from ijson's basic events, keeping the path of what is being built (for refusals)."""

    def __init__(self, on_item: Callable[[Any, int], None] | None) -> None:
        self.stack: list[Any] = []
        self.path: list[str | int] = []
        self.on_item = on_item  # called with each element of the top-level "items" list instead of keeping it
        self.top: dict[str, Any] | None = None
        self.in_items = False
        self.items_seen = False
        self.item_index = 0
        self.done = False
        self.event_count = 0  # events received: whether a piece of input completed a token (see Feeder)

    def events(self) -> Generator[None, tuple[str, Any], None]:
        """The coroutine ijson sends each (event, value) to. A submission is hundreds of thousands of events:
        the whole state machine runs here, its state in locals, with no method call per event; `stack` and
        `path` are the builder's own lists, so a refusal reads the path where the parser stopped."""
        stack, path, on_item = self.stack, self.path, self.on_item
        in_items = False
        while True:
            event, value = yield
            self.event_count += 1
            if self.done:
                raise Refused(SubmissionError("the body holds more than one JSON value", field="body"))
            if event == "map_key":
                path[-1] = value
                continue
            if event == "start_map" or event == "start_array":
                opened: Any = {} if event == "start_map" else []
                depth = len(stack)
                if depth == 0:
                    if event != "start_map":
                        raise Refused(SubmissionError("the body must be a JSON object", field="body"))
                    self.top = opened
                    stack.append(opened)
                    path.append(None)  # type: ignore[arg-type]
                    continue
                # Depth counts from the value of a top-level field, or from an item of the items list.
                if depth - (2 if in_items else 1) >= MAX_JSON_DEPTH:
                    raise Refused(too_deep(path_text(self.value_path())))
                if depth == 1 and path[-1] == "items" and on_item is not None:
                    if self.items_seen:
                        raise Refused(SubmissionError('"items" appears twice in the body', field="items"))
                    if event != "start_array":
                        raise Refused(SubmissionError("items must be a list of items", field="items"))
                    self.items_seen = self.in_items = in_items = True
                    stack.append(opened)
                    path.append(0)
                    continue
                stack.append(opened)
                path.append(0 if event == "start_array" else None)  # type: ignore[arg-type]
                continue
            if event == "end_map" or event == "end_array":
                value = stack.pop()
                path.pop()
                if not stack:
                    self.done = True
                    continue
                if in_items and len(stack) == 1:
                    self.in_items = in_items = False  # the end of the items list itself
                    continue
            # A value (a scalar, or a container just closed) goes into its parent.
            if not stack:
                raise Refused(SubmissionError("the body must be a JSON object", field="body"))
            parent = stack[-1]
            if in_items and len(stack) == 2:
                assert on_item is not None
                on_item(value, self.item_index)
                self.item_index += 1
                path[-1] = self.item_index
            elif type(parent) is list:
                parent.append(value)
                path[-1] = len(parent)
            else:
                parent[path[-1]] = value

    def value_path(self) -> list[str | int]:
        return [part for part in self.path if part is not None]


HEX2 = rb"[0-9a-fA-F]{2}"
HIGH = rb"\\u[dD][89abAB]" + HEX2
LOW = rb"\\u[dD][c-fC-F]" + HEX2
HIGH_ESCAPE = re.compile(HIGH)
# What may be an unpaired surrogate escape, found by the regex engine alone: a well-formed pair (the text of
# nearly every emoji written as escapes) is never a candidate, so a body of millions of pairs costs no Python
# per pair. Third branch: a pair whose high half follows a backslash, which may make it text (`\\ud83d`) and
# the low half an unpaired escape.
CANDIDATE = re.compile(
    HIGH + b"(?!" + LOW + b")|" + LOW + b"(?<!" + HIGH + LOW + b")|" + HIGH + LOW + b"(?<=\\\\" + HIGH + LOW + b")"
)
LOOKBEHIND = 64  # bytes already fed that an escape's backslashes and a low surrogate's pair are looked for in


def _is_escape(window: bytes, backslash: int) -> bool:
    """Whether the backslash at `backslash` starts an escape (it is not itself escaped by another)."""
    run = 0
    while backslash - run - 1 >= 0 and window[backslash - run - 1] == 0x5C:
        run += 1
    return run % 2 == 0


def lone_surrogate(before: bytes, data: bytes, final: bool) -> tuple[int, int | None]:
    """(how many bytes of `data` can be fed now, the offset in `data` of an unpaired surrogate escape or None).
    `before`: the last bytes already fed. Bytes whose verdict needs what comes next are held back."""
    if b"\\" not in data:
        return len(data), None
    window, base = before + data, len(before)
    cut = len(data)
    if not final:  # an escape cut in two by the chunk boundary waits for the rest
        tail = data.rfind(b"\\", max(0, len(data) - 12))
        if tail >= 0:
            cut = tail
    for match in CANDIDATE.finditer(window):
        start = match.start()
        if match.end() <= base or start - base >= cut:
            continue
        if match.end() - start == 12:  # a pair after a backslash: text and an escape, or a real pair
            if _is_escape(window, start):
                continue
            start += 6  # the high half is text: the low half is an escape of its own, unpaired
        elif not _is_escape(window, start):
            continue  # text, not an escape
        elif HIGH_ESCAPE.fullmatch(match.group()) and not final and len(window) - match.end() < 6:
            return start - base, None  # its pair may be in the next chunk: wait for it
        return cut, max(0, start - base)
    return cut, None


class Feeder:
    """Bytes in, events to `builder` as they are parsed. Raises Refused (the builder's refusal, or an unpaired
    surrogate), or ijson.JSONError / UnicodeDecodeError (read them with `refusal`).

    The C parser reads a token cut by the end of a piece again from its start with each further piece: a string
    of n bytes arriving 64 KiB at a time cost n^2 / 64 KiB (a 12 MB string of escapes: 8.5 s). So while the
    pieces sent complete no token, the next is held back until it is as long as all of them (the stuck token
    doubles between two reads): a token costs at most about three reads of itself, and what is held is never
    more than the token the parser holds anyway."""

    def __init__(self, builder: Builder) -> None:
        self.builder = builder
        sink = builder.events()
        next(sink)
        self.parser = ijson.basic_parse_coro(sink, use_float=True)
        self.pending = b""  # not yet checked for unpaired surrogates (an escape may be cut in two)
        self.held = b""  # checked, not yet sent: the stuck token's next piece
        self.stuck = 0  # bytes sent since the parser last completed a token
        self.fed_tail = b""

    def feed(self, chunk: bytes, *, final: bool = False) -> None:
        data = self.pending + chunk
        cut, lone = lone_surrogate(self.fed_tail, data, final)
        if lone is not None:
            self._check(data[:lone])
            self._send()
            where = path_text(self.builder.value_path())
            raise Refused(SubmissionError(f"{where} {UNPAIRED_SURROGATE}", field=where))
        self._check(data[:cut])
        self.pending = data[cut:]
        if final:
            self._check(self.pending)
            self.pending = b""
            self._send()
            self.parser.close()
        elif len(self.held) >= self.stuck:
            self._send()

    def _check(self, data: bytes) -> None:
        if data:
            self.held += data
            self.fed_tail = (self.fed_tail + data)[-LOOKBEHIND:]

    def _send(self) -> None:
        if self.held:
            data, self.held = self.held, b""
            events = self.builder.event_count
            self.parser.send(data)
            self.stuck = self.stuck + len(data) if self.builder.event_count == events else 0

    def refusal(self, error: Exception) -> SubmissionError:
        return json_refusal(self.builder.value_path(), error)


def parse_bytes(data: bytes) -> tuple[Builder, Exception | None]:
    """Read one whole JSON text (an NDJSON line) through a Builder: the builder, and what stopped it, if anything."""
    builder = Builder(None)
    feeder = Feeder(builder)
    try:
        feeder.feed(data, final=True)
    except (ijson.JSONError, UnicodeDecodeError, Refused) as error:
        return builder, error
    return builder, None
