"""store.notifications: on PostgreSQL `announce_work` reaches a listener only when its transaction commits (never
after a rollback) and `listen_for_work` wakes its worker at connect and on every notice until stopped; on SQLite
announcing is a no-op (no statement at all) and nothing listens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import event

from service.store import Database, transaction
from service.store import notifications as notifications_store
from service.store.notifications import CHANNEL
from tests.store.rows import is_postgres

QUIET = 0.3  # how long "no notice" is waited for


@pytest.fixture
async def notices(postgres_url: str) -> AsyncIterator[asyncio.Queue[str]]:
    """Every notice on the work channel, as an asyncpg listener on a connection of its own receives it."""
    received: asyncio.Queue[str] = asyncio.Queue()
    connection = await asyncpg.connect(postgres_url)
    await connection.add_listener(CHANNEL, lambda _conn, _pid, channel, _payload: received.put_nowait(channel))
    yield received
    await connection.close()


@pytest.mark.postgres
async def test_announce_work_reaches_a_listener_only_once_its_transaction_commits(
    pg_db: Database, notices: asyncio.Queue[str]
) -> None:
    async with transaction(pg_db.api) as session:
        await notifications_store.announce_work(session)
        await asyncio.sleep(QUIET)
        assert notices.empty(), "nothing is delivered before the commit"
    assert await asyncio.wait_for(notices.get(), timeout=5) == CHANNEL


@pytest.mark.postgres
async def test_announce_work_in_a_transaction_rolled_back_reaches_nobody(
    pg_db: Database, notices: asyncio.Queue[str]
) -> None:
    with pytest.raises(RuntimeError):
        async with transaction(pg_db.api) as session:
            await notifications_store.announce_work(session)
            raise RuntimeError("the submission failed")
    await asyncio.sleep(QUIET)
    assert notices.empty()
    async with transaction(pg_db.api) as session:  # the listener is still there: the next commit reaches it
        await notifications_store.announce_work(session)
    assert await asyncio.wait_for(notices.get(), timeout=5) == CHANNEL


@pytest.mark.postgres
@pytest.mark.parametrize("driver", ["postgresql", "postgresql+asyncpg"])
async def test_listen_for_work_wakes_at_connect_and_on_each_notice_until_stopped(
    pg_db: Database, postgres_url: str, driver: str
) -> None:
    wakes: asyncio.Queue[None] = asyncio.Queue()
    stop = asyncio.Event()
    url = postgres_url.replace("postgresql://", f"{driver}://", 1)
    listener = asyncio.ensure_future(notifications_store.listen_for_work(url, lambda: wakes.put_nowait(None), stop))
    try:
        await asyncio.wait_for(wakes.get(), timeout=5)  # the sweep at connect: notices sent before are lost
        for _ in range(2):
            async with transaction(pg_db.api) as session:
                await notifications_store.announce_work(session)
            await asyncio.wait_for(wakes.get(), timeout=5)
        await asyncio.sleep(QUIET)
        assert wakes.empty(), "one wake per commit"
    finally:
        stop.set()
        await asyncio.wait_for(listener, timeout=5)
    assert listener.done() and listener.exception() is None


async def test_announce_work_issues_a_statement_only_on_postgresql(db: Database) -> None:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(db.api_engine.sync_engine, "before_cursor_execute", record)
    try:
        async with transaction(db.api) as session:
            await notifications_store.announce_work(session)
    finally:
        event.remove(db.api_engine.sync_engine, "before_cursor_execute", record)
    notify = [statement for statement in statements if "pg_notify" in statement]
    assert len(notify) == (1 if is_postgres(db) else 0)
    if not is_postgres(db):
        assert statements == [], "SQLite: announcing touches nothing"


@pytest.mark.parametrize(
    ("url", "listens"),
    [
        ("postgresql://u:p@db:5432/llm", True),
        ("postgresql+asyncpg://u@db/llm", True),
        ("postgres://u@db/llm", True),
        ("sqlite:///./llm_batch.db", False),
        ("sqlite+aiosqlite:///:memory:", False),
    ],
)
def test_only_a_postgresql_url_is_listened_on(url: str, listens: bool) -> None:
    assert notifications_store.listens(url) is listens
