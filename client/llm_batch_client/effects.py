"""The client's logic without I/O: every operation is a generator that yields what it needs done (send this
request, sleep, read a line) and gets the outcome back. The sync and the async client only carry these
effects out, each with its own I/O; resends, paging, waiting and parsing are written once, here and in
`operations.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from llm_batch_client.calls import Call
from llm_batch_client.data import Page
from llm_batch_client.errors import LlmBatchConnectionError, UnexpectedAnswer, problem_from
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
    """The request got no answer (refused, reset, timed out), or a stream was cut off."""

    error: Exception


@dataclass(frozen=True)
class Sleep:
    """Wait `seconds`, or less when `wake` is set first (a threading/asyncio Event, or a callable that says
    so); the driver answers True when woken early."""

    seconds: float
    wake: Any = None


@dataclass(frozen=True)
class ReadLine:
    """The next line of an open stream: bytes, None at its end, or NoAnswer."""

    handle: Any


@dataclass(frozen=True)
class Close:
    handle: Any


@dataclass(frozen=True)
class Emit:
    """A value for the caller of an iterating operation (a batch of a listing, a result row)."""

    value: Any


Effect = Send | Sleep | ReadLine | Close | Emit
Program = Generator[Effect, Any, T]


@dataclass(frozen=True)
class Context:
    """What a client gives every operation it runs."""

    retry: RetryPolicy


Op = Callable[[Context], Program[T]]


@dataclass(frozen=True)
class Each(Generic[T]):
    """An operation that yields many values of type T, as Emit effects."""

    run: Callable[[Context], Program[None]]


def exchange(context: Context, call: Call, *, stream: bool = False) -> Program[Answer]:
    """Send `call` until a final answer, resending (same bytes, same Idempotency-Key) after a lost answer or a
    "not now" (5xx, 429, 409 in progress) as the retry policy allows. Raises the error an error answer stands for,
    or LlmBatchConnectionError when no answer came."""
    sends = 0
    while True:
        reply = yield Send(call, stream)
        sends += 1
        delay = context.retry.delay(call, sends, reply)
        if delay is None:
            return settle(call, reply)
        if isinstance(reply, Answer) and reply.handle is not None:
            yield Close(reply.handle)
        yield Sleep(delay)


def settle(call: Call, reply: Answer | NoAnswer) -> Answer:
    if isinstance(reply, NoAnswer):
        raise no_answer(call, reply.error)
    if reply.status >= 400:
        raise problem_from(reply.status, reply.reason, reply.headers, reply.body)
    return reply


def no_answer(call: Call, error: Exception) -> LlmBatchConnectionError:
    detail = f"{call.describe()}: {type(error).__name__}: {error}"
    if call.stream is not None and not call.stream.replayable:
        detail += (
            f" ({call.stream.items_read} items were read from an iterator, which cannot be read again: to send"
            f" them again, pass the items as a list or a re-iterable object with the same idempotency_key)"
        )
    if call.idempotency_key is not None:
        detail += f"; sending it again with Idempotency-Key {call.idempotency_key} creates nothing twice"
    return LlmBatchConnectionError(detail, idempotency_key=call.idempotency_key)


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
            for element in page.data:
                yield Emit(parse(element))
            following = following.after(page.next_cursor) if page.has_more and page.next_cursor else None

    return Each(program)


def lines_op(call: Call, parse: Callable[[Any], T]) -> Each[T]:
    """Every line of one NDJSON answer, read as it streams in."""

    def program(context: Context) -> Program[None]:
        answer = yield from exchange(context, call, stream=True)
        while True:
            line = yield ReadLine(answer.handle)
            if isinstance(line, NoAnswer):
                raise LlmBatchConnectionError(f"{call.describe()}: the stream was cut off: {line.error}")
            if line is None:
                break
            if line.strip():
                yield Emit(parse(json.loads(line)))
        yield Close(answer.handle)

    return Each(program)
