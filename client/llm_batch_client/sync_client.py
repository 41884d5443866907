"""The synchronous client, on httpx: carries out the effects of `operations.py` with blocking I/O.

with LlmBatchClient("http://llm-batch.internal:8000", token=settings.LLM_BATCH_TOKEN) as client:
    batch = client.submit(items, BatchOptions(params=PARAMS), fallback=True)
    batch = client.wait(batch.id, on_progress=print)
    for row in client.iter_results(batch.id, status="failed"):
        ...
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from llm_batch_client import binding
from llm_batch_client.effects import Answer, Close, Each, Effect, Emit, NoAnswer, Op, ReadLines, Send, Sleep

T = TypeVar("T")


class _Driver(binding.ClientBase[httpx.Client]):
    def _open(self, **options: Any) -> httpx.Client:
        return httpx.Client(**options)

    def close(self) -> None:
        self._http.close()

    def _run(self, op: Op[T]) -> T:
        result: list[T] = []
        for _ in self._drive(op(self._context), result):
            raise TypeError("an operation with one result emitted values")
        return result[0]

    def _each(self, each: Each[T]) -> Iterator[T]:
        yield from self._drive(each.run(self._context), [])

    def _drive(self, program: Generator[Effect, Any, Any], result: list[Any]) -> Iterator[Any]:
        steps, opened, reply = binding.Steps(program, result), list[httpx.Response](), None
        try:
            while (effect := steps.advance(reply)) is not None:
                if isinstance(effect, Emit):
                    yield from effect.values
                    reply = None
                else:
                    reply = self._perform(effect, opened)
        finally:
            program.close()
            for response in opened:
                response.close()

    def _perform(self, effect: Effect, opened: list[httpx.Response]) -> Any:
        if isinstance(effect, Send):
            return self._send(effect, opened)
        if isinstance(effect, Sleep):
            return self._sleep(effect)
        if isinstance(effect, ReadLines):
            try:
                return self._read_lines(effect.handle)
            except httpx.TransportError as error:
                return binding.no_answer(error)
        assert isinstance(effect, Close)
        effect.handle.response.close()
        return None

    def _send(self, effect: Send, opened: list[httpx.Response]) -> Answer | NoAnswer:
        call = effect.call
        content = call.stream.chunks() if call.stream is not None else call.body
        try:
            response = self._http.send(
                self._http.build_request(**binding.request_arguments(call, content)), stream=True
            )
        except httpx.TransportError as error:
            return binding.no_answer(error)
        if effect.stream and response.status_code < 400:
            opened.append(response)
            return binding.answer(
                response, handle=binding.OpenStream(response, response.iter_bytes(), binding.LineSplitter())
            )
        try:
            return binding.answer(response, response.read())
        except httpx.TransportError as error:
            return binding.no_answer(error)
        finally:
            response.close()

    def _read_lines(self, stream: binding.OpenStream) -> list[bytes] | None:
        for chunk in stream.chunks:
            lines = stream.lines.feed(chunk)
            if lines:
                return lines
        return stream.lines.end()

    def _sleep(self, effect: Sleep) -> bool:
        if effect.wake is None:
            time.sleep(effect.seconds)
            return False
        if isinstance(effect.wake, threading.Event):
            return effect.wake.wait(effect.seconds)
        checks = binding.WakeChecks(effect.wake, effect.seconds)
        for pause in checks:
            time.sleep(pause)
        return checks.woken


class LlmBatchClient(_Driver, binding.SyncRunner, binding.Methods):
    """The synchronous client: `LlmBatchClient(base_url, token=None, *, timeout=60, retry=RetryPolicy(),
    httpx_options=None)`. Use it as a context manager, or call close(). Errors: LlmBatchError (the service's
    problem+json), LlmBatchConnectionError (no answer), BatchWaitTimeout."""

    def __enter__(self) -> LlmBatchClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
