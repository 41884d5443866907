"""What the sync and the async client share around their I/O: the constructor, how an operation becomes a
method (ParamSpec keeps its parameters typed), how a program is stepped through, and the pieces of a request
and of an answer."""

from __future__ import annotations

import inspect
import socket
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

import httpx

from llm_batch_client import operations
from llm_batch_client.calls import Call
from llm_batch_client.effects import Answer, Context, Each, Effect, NoAnswer, Op, Program
from llm_batch_client.retrying import RetryPolicy
from llm_batch_client.waiting import is_signalled

DEFAULT_TIMEOUT_SECONDS = 60.0
USER_AGENT = "llm-batch-client/0.3"
WAKE_CHECK_SECONDS = 0.25  # how often a callable signal is asked while a wait sleeps

H = TypeVar("H")
P = ParamSpec("P")
T = TypeVar("T")


class ClientBase(Generic[H]):
    """`base_url`, `token` (sent as a bearer token, never logged), `timeout` (seconds per request), `retry`
    (when a request is sent again; RetryPolicy()), `httpx_options` (more arguments for the httpx client:
    limits, verify, proxy, headers...)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        retry: RetryPolicy | None = None,
        httpx_options: dict[str, Any] | None = None,
    ) -> None:
        headers = {"User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        options = dict(httpx_options or {})
        headers.update(options.pop("headers", {}))
        self._http: H = self._open(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, **options)
        self._context = Context(retry or RetryPolicy(), base_url.rstrip("/"))

    def _open(self, **options: Any) -> H:
        raise NotImplementedError


class SyncRunner:
    """What the sync client is: its methods answer values (and iterators)."""


class AsyncRunner:
    """What the async client is: its methods answer awaitables (and async iterators)."""


def _bind(build: Callable[..., Any], runner: str) -> Callable[..., Any]:
    """A function that builds the operation `build` from its arguments and hands it to the client's `runner`
    (`_run` or `_each`, which both clients have), with the operation's docstring and signature (plus self)."""

    def method(self: Any, /, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, runner)(build(*args, **kwargs))

    method.__doc__ = build.__doc__
    method.__module__ = build.__module__
    signature = inspect.signature(build)
    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[self_parameter, *signature.parameters.values()], return_annotation=inspect.Signature.empty
    )
    return method


class _Method:
    """A client method made of an operation: the same function on both clients, typed by the client's kind."""

    runner = "_run"

    def __init__(self, build: Callable[..., Any]) -> None:
        self._function = _bind(build, self.runner)

    def __set_name__(self, owner: type, name: str) -> None:
        self._function.__name__ = name
        self._function.__qualname__ = f"{owner.__name__}.{name}"

    def _for(self, client: object | None) -> Any:
        """Read on the class: the function (its signature with self); on a client: the bound method."""
        return self._function if client is None else types.MethodType(self._function, client)


class Returning(_Method, Generic[P, T]):
    """A method answering the operation's result: T, or for the async client Awaitable[T]."""

    def __init__(self, build: Callable[P, Op[T]]) -> None:
        super().__init__(build)

    @overload
    def __get__(self, client: None, owner: type | None = None) -> Callable[..., Any]: ...
    @overload
    def __get__(self, client: SyncRunner, owner: type | None = None) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncRunner, owner: type | None = None) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, client: object | None, owner: type | None = None) -> Any:
        return self._for(client)


class Iterating(_Method, Generic[P, T]):
    """A method answering the operation's values one by one: Iterator[T], or AsyncIterator[T]."""

    runner = "_each"

    def __init__(self, build: Callable[P, Each[T]]) -> None:
        super().__init__(build)

    @overload
    def __get__(self, client: None, owner: type | None = None) -> Callable[..., Any]: ...
    @overload
    def __get__(self, client: SyncRunner, owner: type | None = None) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, client: AsyncRunner, owner: type | None = None) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, client: object | None, owner: type | None = None) -> Any:
        return self._for(client)


class Methods:
    """The methods of both clients, each one operation of operations.py (see there for what each does)."""

    submit = Returning(operations.submit)
    estimate = Returning(operations.estimate)
    get = Returning(operations.get)
    list = Iterating(operations.list_batches)
    iter_results = Iterating(operations.results)
    results_page = Returning(operations.results_page)
    item = Returning(operations.item)
    retry = Returning(operations.retry)
    cancel = Returning(operations.cancel)
    delete_batch = Returning(operations.delete_batch)
    set_budget = Returning(operations.set_budget)
    redeliver_webhook = Returning(operations.redeliver_webhook)
    models = Returning(operations.models)
    health = Returning(operations.health)
    wait = Returning(operations.wait)
    wait_for_webhook = Returning(operations.wait_for_webhook)


class Steps:
    """A program stepped through: `advance(reply)` is its next effect, or None once it has returned (what it
    returned is then appended to `result`, the list the caller passed: a driver's loop is a generator, and
    cannot return a value of its own to a caller that only iterates it)."""

    def __init__(self, program: Program[Any], result: list[Any]) -> None:
        self.program = program
        self.result = result

    def advance(self, reply: Any) -> Effect | None:
        try:
            return self.program.send(reply)
        except StopIteration as done:
            self.result.append(done.value)
            return None


@dataclass(frozen=True)
class OpenStream:
    """A streamed answer being read: the httpx response, the iterator of its body's chunks (sync or async) and
    what cuts them into lines."""

    response: Any
    chunks: Any
    lines: LineSplitter


class LineSplitter:
    """Bytes cut into complete lines as they arrive (the last, unfinished line kept for the next chunk); lines
    stay bytes, which json.loads reads as they are."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        lines = (self._rest + chunk).split(b"\n") if self._rest else chunk.split(b"\n")
        self._rest = lines.pop()
        return lines

    def end(self) -> list[bytes] | None:
        """The last line if the body did not end with a newline; None once there is nothing more."""
        rest, self._rest = self._rest, b""
        return [rest] if rest.strip() else None


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and what it was raised from, down the chain (httpx wraps httpcore wraps the OSError)."""
    cause: BaseException | None = error
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def no_answer(error: httpx.TransportError) -> NoAnswer:
    """NoAnswer for what httpx raised, said in a few words; `sent` is False when no connection was made."""
    return NoAnswer(
        error, reason=_reason(error), sent=not isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout))
    )


def _reason(error: httpx.TransportError) -> str:
    text = str(error)
    if isinstance(error, httpx.ConnectError):
        causes = list(_causes(error))
        if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
            return "connection refused"
        if any(isinstance(cause, socket.gaierror) for cause in causes):
            return f"the host name does not resolve ({text})"
        return f"cannot connect ({text})"
    if isinstance(error, httpx.ConnectTimeout):
        return "no connection within the timeout"
    if isinstance(error, httpx.ReadTimeout):
        return "no answer within the timeout"
    if isinstance(error, httpx.WriteTimeout):
        return "the request could not be sent within the timeout"
    if isinstance(error, httpx.RemoteProtocolError):
        return "the connection was closed before an answer came"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def request_arguments(call: Call, content: Any) -> dict[str, Any]:
    return {
        "method": call.method,
        "url": call.path,
        "params": call.params,
        "headers": call.headers(),
        "content": content,
    }


def answer(response: httpx.Response, body: bytes = b"", handle: Any = None) -> Answer:
    return Answer(response.status_code, response.reason_phrase, response.headers, body, handle)


class WakeChecks:
    """The pauses of a sleep that a callable signal may cut short: sleep each pause; `woken` says why it ended."""

    def __init__(self, wake: Any, seconds: float) -> None:
        self.wake = wake
        self.seconds = seconds
        self.woken = False

    def __iter__(self) -> Iterator[float]:
        deadline = time.monotonic() + self.seconds
        while not is_signalled(self.wake):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            yield min(WAKE_CHECK_SECONDS, remaining)
        self.woken = True
