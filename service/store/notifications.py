"""Waking workers in other processes when work arrives: LISTEN/NOTIFY on PostgreSQL.

A submission, a retry or a cancel notifies in its own transaction, so the notice is delivered when (and only
if) it commits. Every worker process listens on a connection of its own and sweeps at once instead of at its
next idle tick. SQLite has no such channel: its workers find the work on their next tick (or at once, when the
API that took the request runs them in its own process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from service.store.database import async_url
from service.store.dialect import is_sqlite

logger = logging.getLogger(__name__)

CHANNEL = "llm_batch_work"
RECONNECT_SECONDS = (1.0, 30.0)


async def announce_work(session: AsyncSession) -> None:
    """Tell every listening worker, once this transaction commits, that there is work to sweep for."""
    if not is_sqlite(session):
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


def listens(database_url: str) -> bool:
    return async_url(database_url).get_backend_name() == "postgresql"


def _dsn(database_url: str) -> str:
    url = async_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def listen_for_work(database_url: str, on_work: Callable[[], None], stop: asyncio.Event) -> None:
    """Call `on_work` on every notice until `stop`; reconnects (with back-off) when the connection drops."""
    pause = RECONNECT_SECONDS[0]
    while not stop.is_set():
        connection: asyncpg.Connection | None = None
        try:
            connection = await asyncpg.connect(_dsn(database_url))
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
            await connection.add_listener(CHANNEL, lambda *_notice: on_work())
            pause = RECONNECT_SECONDS[0]
            on_work()  # notices sent while we were not listening are lost: sweep once now
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        except (OSError, asyncpg.PostgresError) as error:
            logger.warning("cannot listen for new work (%s); retrying in %.0fs", type(error).__name__, pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
            pause = min(pause * 2, RECONNECT_SECONDS[1])
        finally:
            if connection is not None and not connection.is_closed():
                await connection.close()
