"""The asyncio client, on httpx: the same methods as LlmBatchClient, to be awaited (`list` and
`iter_results` with `async for`). For ASGI views, Celery with an event loop, and any asyncio code.

    async with AsyncLlmBatchClient(url, token=token) as client:
        batch = await client.submit(rows_async_generator(), fallback=True)   # streamed as NDJSON
        async for row in client.iter_results(batch.id, since_pass=0):
            ...

Leaving an `async for` early: wrap the iterator in `contextlib.aclosing()` to close its connection at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from llm_batch_client import binding
from llm_batch_client.effects import Answer, Close, Each, Effect, Emit, NoAnswer, Op, ReadLines, Send, Sleep

T = TypeVar("T")


class _AsyncDriver(binding.ClientBase[httpx.AsyncClient]):
    def _open(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(**options)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, op: Op[T]) -> T:
        result: list[T] = []
        async for _ in self._drive(op(self._context), result):
            raise TypeError("an operation with one result emitted values")
        return result[0]

    async def _each(self, each: Each[T]) -> AsyncIterator[T]:
        async for value in self._drive(each.run(self._context), []):
            yield value

    async def _drive(self, program: Generator[Effect, Any, Any], result: list[Any]) -> AsyncIterator[Any]:
        steps, opened, reply = binding.Steps(program, result), list[httpx.Response](), None
        try:
            while (effect := steps.advance(reply)) is not None:
                if isinstance(effect, Emit):
                    for value in effect.values:
                        yield value
                    reply = None
                else:
                    reply = await self._perform(effect, opened)
        finally:
            program.close()
            for response in opened:
                await response.aclose()

    async def _perform(self, effect: Effect, opened: list[httpx.Response]) -> Any:
        if isinstance(effect, Send):
            return await self._send(effect, opened)
        if isinstance(effect, Sleep):
            return await self._sleep(effect)
        if isinstance(effect, ReadLines):
            try:
                return await self._read_lines(effect.handle)
            except httpx.TransportError as error:
                return binding.no_answer(error)
        assert isinstance(effect, Close)
        await effect.handle.response.aclose()
        return None

    async def _send(self, effect: Send, opened: list[httpx.Response]) -> Answer | NoAnswer:
        call = effect.call
        content = call.stream.achunks() if call.stream is not None else call.body
        try:
            response = await self._http.send(
                self._http.build_request(**binding.request_arguments(call, content)), stream=True
            )
        except httpx.TransportError as error:
            return binding.no_answer(error)
        if effect.stream and response.status_code < 400:
            opened.append(response)
            return binding.answer(
                response, handle=binding.OpenStream(response, response.aiter_bytes(), binding.LineSplitter())
            )
        try:
            return binding.answer(response, await response.aread())
        except httpx.TransportError as error:
            return binding.no_answer(error)
        finally:
            await response.aclose()

    async def _read_lines(self, stream: binding.OpenStream) -> list[bytes] | None:
        async for chunk in stream.chunks:
            lines = stream.lines.feed(chunk)
            if lines:
                return lines
        return stream.lines.end()

    async def _sleep(self, effect: Sleep) -> bool:
        if effect.wake is None:
            await asyncio.sleep(effect.seconds)
            return False
        if isinstance(effect.wake, asyncio.Event):
            try:
                await asyncio.wait_for(effect.wake.wait(), effect.seconds)
            except asyncio.TimeoutError:  # not TimeoutError itself before Python 3.11
                return False
            return True
        checks = binding.WakeChecks(effect.wake, effect.seconds)
        for pause in checks:
            await asyncio.sleep(pause)
        return checks.woken


class AsyncLlmBatchClient(_AsyncDriver, binding.AsyncRunner, binding.Methods):
    """The asyncio client: LlmBatchClient's methods, awaited. Use `async with`, or await aclose()."""

    async def __aenter__(self) -> AsyncLlmBatchClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()
