"""The client's logic without I/O: every operation is a generator that yields what it needs done (send this
request, sleep, read a line) and gets the outcome back. The sync and the async client only carry these
effects out, each with its own I/O; resends, paging, waiting and parsing are written once, here and in
`operations.py`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from llm_batch_client.calls import Call
from llm_batch_client.data import Page
from llm_batch_client.errors import LlmBatchConnectionError, UnexpectedAnswer, attempts_text, problem_from
from llm_batch_client.retrying import RetryPolicy

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """Send `call`. With `stream`, a successful answer stays open (its lines are read with ReadLine)."""

    call: Call
    stream: bool = False


@dataclass(frozen=True)
class Answer:
    """An HTTP answer. `body` is empty for an open stream, whose `handle` the driver knows."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes = b""
    handle: Any = None

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise UnexpectedAnswer(
                f"the answer ({self.status}) is not JSON: {self.body[:200]!r}", self.status
            ) from None


@dataclass(frozen=True)
class NoAnswer:
    """The request got no answer (refused, reset, timed out), or a stream was cut off. `reason` says so in a
    few words ("connection refused"); `sent` is False when no connection was made, so nothing reached the
    service."""

    error: Exception
    reason: str = ""
    sent: bool = True


@dataclass(frozen=True)
class Sleep:
    """Wait `seconds`, or less when `wake` is set first (a threading/asyncio Event, or a callable that says
    so); the driver answers True when woken early."""

    seconds: float
    wake: Any = None


@dataclass(frozen=True)
class ReadLines:
    """The next complete lines of an open stream, as many as have arrived (a list of bytes, never empty), None
    at its end, or NoAnswer."""

    handle: Any


@dataclass(frozen=True)
class Close:
    handle: Any


@dataclass(frozen=True)
class Emit:
    """Values for the caller of an iterating operation, in order (a page of batches, the result rows of the
    lines that arrived)."""

    values: Sequence[Any]


Effect = Send | Sleep | ReadLines | Close | Emit
Program = Generator[Effect, Any, T]


@dataclass(frozen=True)
class Context:
    """What a client gives every operation it runs: its resend policy and the service's base URL (for errors)."""

    retry: RetryPolicy
    base_url: str = ""


Op = Callable[[Context], Program[T]]


@dataclass(frozen=True)
class Each(Generic[T]):
    """An operation that yields many values of type T, as Emit effects."""

    run: Callable[[Context], Program[None]]


def exchange(context: Context, call: Call, *, stream: bool = False) -> Program[Answer]:
    """Send `call` until a final answer, resending (same bytes, same Idempotency-Key) after a lost answer or a
    "not now" (5xx, 429, 409 in progress) as the retry policy allows. Raises the error an error answer stands for,
    or LlmBatchConnectionError when no answer came."""
    sends, started, reached = 0, time.monotonic(), False
    while True:
        reply = yield Send(call, stream)
        sends += 1
        reached = reached or not isinstance(reply, NoAnswer) or reply.sent
        delay = context.retry.delay(call, sends, reply)
        if delay is None:
            if isinstance(reply, NoAnswer):
                raise no_answer(context, call, reply, sends, time.monotonic() - started, reached)
            return settle(reply)
        if isinstance(reply, Answer) and reply.handle is not None:
            yield Close(reply.handle)
        yield Sleep(delay)


def settle(reply: Answer) -> Answer:
    if reply.status >= 400:
        raise problem_from(reply.status, reply.reason, reply.headers, reply.body)
    return reply


def no_answer(
    context: Context, call: Call, reply: NoAnswer, sends: int, seconds: float, reached: bool
) -> LlmBatchConnectionError:
    """The error for a request that got no answer after `sends` tries. `reached`: whether any try may have
    reached the service (a connection was made), so that it may have acted on it."""
    reason = reply.reason or str(reply.error)
    detail = f"no answer from {context.base_url}: {reason} ({attempts_text(call.describe(), sends, seconds)})"
    if call.stream is not None and not call.stream.replayable:
        detail += (
            f"; {call.stream.items_read} items were read from an iterator, which cannot be read again: to send"
            f" them again, pass the items as a list or a re-iterable object"
        )
    if call.idempotency_key is not None and reached:
        detail += (
            f"; the service may have acted on it: sending it again with idempotency_key={call.idempotency_key!r}"
            f" answers what it did instead of doing it twice"
        )
    return LlmBatchConnectionError(
        detail,
        idempotency_key=call.idempotency_key,
        url=context.base_url,
        request=call.describe(),
        reason=reason,
        reached=reached,
        sends=sends,
        seconds=seconds,
    )


def json_program(context: Context, call: Call, parse: Callable[[Any], T]) -> Program[T]:
    answer = yield from exchange(context, call)
    return parse(answer.json())


def json_op(call: Call, parse: Callable[[Any], T]) -> Op[T]:
    """One request, its JSON answer read by `parse`."""

    def program(context: Context) -> Program[T]:
        return (yield from json_program(context, call, parse))

    return program


def pages_op(call: Call, parse: Callable[[Any], T]) -> Each[T]:
    """Every element of every page: `{data, has_more, next_cursor}` pages, followed through `after`."""

    def program(context: Context) -> Program[None]:
        following: Call | None = call
        while following is not None:
            page = yield from json_program(context, following, Page.from_json)
            yield Emit([parse(element) for element in page.data])
            following = following.after(page.next_cursor) if page.has_more and page.next_cursor else None

    return Each(program)


def lines_op(call: Call, parse: Callable[[Any], T]) -> Each[T]:
    """Every line of one NDJSON answer, read as it streams in."""

    def program(context: Context) -> Program[None]:
        answer = yield from exchange(context, call, stream=True)
        while True:
            lines = yield ReadLines(answer.handle)
            if isinstance(lines, NoAnswer):
                raise LlmBatchConnectionError(
                    f"{call.describe()}: the stream from {context.base_url} was cut off: {lines.reason or lines.error}",
                    url=context.base_url,
                    request=call.describe(),
                    reason=lines.reason or str(lines.error),
                    reached=True,
                )
            if lines is None:
                break
            yield Emit([parse(json_line(line)) for line in lines if line.strip()])
        yield Close(answer.handle)

    return Each(program)


_scan: Callable[[str, int], tuple[Any, int]] = getattr(json.JSONDecoder(), "scan_once")  # noqa: B009  (untyped)


def json_line(line: bytes) -> Any:
    """One NDJSON line: what json.loads(line) gives, without its detection of the encoding and its whitespace
    regular expressions around the value, a third of its time on a result row. Anything unusual (whitespace
    around the value, invalid JSON) goes through json.loads, for its answer or its error message."""
    text = line.decode("utf-8")
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)
