"""A worker process sweeps as soon as another process commits work for it (PostgreSQL's LISTEN/NOTIFY; see
service/store/notifications.py). On SQLite this loop has nothing to listen to and just waits to be stopped."""

from __future__ import annotations

import asyncio

from service.store.notifications import listen_for_work, listens
from service.workers.context import WorkerContext


async def run_wake_listener(ctx: WorkerContext, stop: asyncio.Event) -> None:
    if not listens(ctx.settings.database_url):
        await stop.wait()
        return
    await listen_for_work(ctx.settings.database_url, ctx.wake, stop)
