"""Waiting for a batch to finish: polling with a growing interval, or waiting for a signal (the webhook
receiver sets it) and polling slowly meanwhile, in case the webhook never comes; BatchWaitTimeout when it does
not finish in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llm_batch_client.calls import Call, segment
from llm_batch_client.data import Batch
from llm_batch_client.effects import Context, Program, Sleep, json_program
from llm_batch_client.errors import LlmBatchConnectionError, LlmBatchError

DEFAULT_WAIT_SECONDS = 24 * 3600.0
# Answers a wait polls through (the service restarting, a proxy in between): it ends at its deadline only.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})

Progress = Callable[[Batch], None]


class BatchWaitTimeout(TimeoutError):
    """wait() gave up: the batch had not finished after `timeout` seconds. `batch` is the last one seen."""

    def __init__(self, batch_id: str, timeout: float, batch: Batch | None) -> None:
        status = batch.status if batch is not None else "unknown"
        super().__init__(f"batch {batch_id} still {status} after {timeout:g}s")
        self.batch_id = batch_id
        self.timeout = timeout
        self.batch = batch


@dataclass(frozen=True)
class Schedule:
    """Poll intervals: `first`, growing by `factor` after each poll, up to `most`."""

    first: float
    most: float
    factor: float = 1.5

    def interval(self, polls: int) -> float:
        return float(min(self.most, self.first * self.factor**polls))


def is_signalled(signal: Any) -> bool:
    """A threading.Event or asyncio.Event that is set, or a callable that answers True."""
    is_set = getattr(signal, "is_set", None)
    return bool(is_set() if is_set is not None else signal())


def _transient(error: LlmBatchError) -> bool:
    return isinstance(error, LlmBatchConnectionError) or error.status in TRANSIENT_STATUSES


def wait_program(
    context: Context,
    batch_id: str,
    *,
    timeout: float,
    schedule: Schedule,
    on_progress: Progress | None,
    signal: Any = None,
) -> Program[Batch]:
    """GET the batch until it is completed, failed or cancelled. A signal set while sleeping polls at once;
    one already set at the last poll (that batch was not finished yet) is not looked at again, so a signal
    that stays set cannot turn the wait into a busy loop."""
    call = Call("GET", f"/batches/{segment(batch_id)}", safe=True)
    deadline = time.monotonic() + timeout
    polls, last = 0, None
    while True:
        set_before = signal is not None and is_signalled(signal)
        try:
            last = yield from json_program(context, call, Batch.from_json)
        except LlmBatchError as error:
            if not _transient(error):
                raise
        else:
            if on_progress is not None:
                on_progress(last)
            if last.finished:
                return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BatchWaitTimeout(batch_id, timeout, last)
        yield Sleep(min(schedule.interval(polls), remaining), None if set_before else signal)
        polls += 1
