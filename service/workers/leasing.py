"""Leasing at run time: a step's lease is renewed in a side task while the step runs, and the step is stopped
when the lease is lost (the SQL of claiming, renewing and releasing is in service/store/leases.py).

A lease is renewed every third of its length. When it cannot be renewed (another worker took the row over
after this process was paused past the lease, or the database stayed unreachable until the lease ran out),
the step is cancelled: it must not go on as if it still owned the row. A step marks the few lines that must
run to the end once started (a provider call and the write recording it) with `protected()`; cancellation
waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from service.kit.fencing import Guard, LeaseLost, current_guard
from service.store import leases as leases_store
from service.store import transaction
from service.workers.context import WorkerContext

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def _keep_lease(ctx: WorkerContext, table: Any, row_id: Any) -> bool:
    """Renew the lease every third of its length. Returns True once it is lost, False once the step itself has
    let go of the row (work that finishes clears its lease in the same transaction)."""
    loop = asyncio.get_running_loop()
    interval = ctx.lease_seconds / 3
    held_until = loop.time() + ctx.lease_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            async with transaction(ctx.sessions) as session:
                renewed = await leases_store.renew(session, table, row_id, ctx.worker_id, ctx.lease_seconds)
                owner = None if renewed else await leases_store.owner_of(session, table, row_id)
        except Exception as error:  # a database hiccup: the lease holds until it runs out, keep trying
            logger.warning("could not renew the lease on %s %s: %s", table.__tablename__, row_id, error)
            if loop.time() >= held_until:
                return True
            continue
        if not renewed:
            return owner is not None
        held_until = loop.time() + ctx.lease_seconds


async def run_with_lease(ctx: WorkerContext, table: Any, row_id: Any, step: Callable[[], Awaitable[T]]) -> T:
    """Run `step` on a row this worker has leased, renewing the lease meanwhile. Raises LeaseLost (after
    cancelling the step) when the lease is lost before the step ends."""
    guard = Guard()

    async def guarded() -> T:
        current_guard.set(guard)
        return await step()

    step_task = asyncio.ensure_future(guarded())
    keeper = asyncio.create_task(_keep_lease(ctx, table, row_id))
    try:
        await asyncio.wait({step_task, keeper}, return_when=asyncio.FIRST_COMPLETED)
        if not step_task.done() and not keeper.result():
            await asyncio.wait({step_task})
        if not step_task.done():
            unprotected = asyncio.create_task(guard.unprotected.wait())
            await asyncio.wait({step_task, unprotected}, return_when=asyncio.FIRST_COMPLETED)
            unprotected.cancel()
            if not step_task.done():
                logger.warning("lost the lease on %s %s; stopping its step", table.__tablename__, row_id)
                step_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, LeaseLost):
                    await step_task
                raise LeaseLost(f"{table.__tablename__} {row_id}")
        return step_task.result()
    finally:
        for task in (step_task, keeper):
            if not task.done():
                task.cancel()
        await asyncio.gather(step_task, keeper, return_exceptions=True)
