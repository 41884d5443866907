"""The SQLite connections SQLAlchemy gets (service/store/sqlite_driver.py): a small statement costs one trip to
the connection's thread, a large result is still read in bounded steps, and SQL behaves as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from service.store.database import create_engine
from service.store.sqlite_driver import FETCH_ROWS, OneTripConnection


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{tmp_path}/driver.db")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE numbers (n INTEGER PRIMARY KEY, label TEXT NOT NULL)"))
        await connection.execute(
            text("INSERT INTO numbers (n, label) VALUES (:n, :label)"),
            [{"n": n, "label": f"n{n}"} for n in range(1, 2 * FETCH_ROWS + 8)],
        )
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every function sent to a connection's thread (aiosqlite's hand-off, whoever calls it)."""
    sent: list[str] = []
    original = OneTripConnection._execute

    async def counting(self: OneTripConnection, function: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(function, "__name__", repr(function)))
        return await original(self, function, *args, **kwargs)

    monkeypatch.setattr(OneTripConnection, "_execute", counting)
    return sent


async def test_a_small_read_and_a_write_take_one_trip_each(engine: AsyncEngine, trips: list[str]) -> None:
    async with engine.connect() as connection:
        trips.clear()
        rows = (await connection.execute(text("SELECT n, label FROM numbers WHERE n <= 3 ORDER BY n"))).all()
        assert [tuple(row) for row in rows] == [(1, "n1"), (2, "n2"), (3, "n3")]
        assert trips == ["_execute"]
        trips.clear()
        changed = await connection.execute(text("UPDATE numbers SET label = 'small' WHERE n <= 10"))
        assert changed.rowcount == 10
        assert trips == ["_execute"]
        await connection.rollback()


async def test_a_large_result_comes_whole_and_in_order(engine: AsyncEngine, trips: list[str]) -> None:
    async with engine.connect() as connection:
        trips.clear()
        rows = (await connection.execute(text("SELECT n FROM numbers ORDER BY n"))).scalars().all()
    assert rows == list(range(1, 2 * FETCH_ROWS + 8))
    assert trips == ["_execute", "_fetch"]  # the first rows with the statement, the rest in one more trip


async def test_a_streamed_read_fetches_in_bounded_steps(engine: AsyncEngine, trips: list[str]) -> None:
    seen: list[int] = []
    async with engine.connect() as connection:
        trips.clear()
        result = await connection.stream(text("SELECT n FROM numbers ORDER BY n"))
        async for partition in result.partitions(100):
            assert len(partition) <= 100
            seen.extend(row[0] for row in partition)
    assert seen == list(range(1, 2 * FETCH_ROWS + 8))
    assert trips.count("_fetch") >= 2  # never the whole result in one go


async def test_returning_lastrowid_and_errors_behave_as_in_sqlite(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        returned = await connection.execute(text("INSERT INTO numbers (label) VALUES ('new') RETURNING n, label"))
        n, label = returned.one()
        assert label == "new" and n == 2 * FETCH_ROWS + 8
        inserted = await connection.execute(text("INSERT INTO numbers (label) VALUES ('next')"))
        assert inserted.lastrowid == n + 1
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            await connection.execute(text("INSERT INTO numbers (n, label) VALUES (1, 'again')"))


async def test_a_statement_left_unread_does_not_hold_the_connection(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        first = await connection.stream(text("SELECT n FROM numbers ORDER BY n"))
        assert (await first.fetchone()) is not None
        await first.close()
        count = (await connection.execute(text("SELECT count(*) FROM numbers"))).scalar_one()
    assert count == 2 * FETCH_ROWS + 7


async def test_a_connection_ends_its_transaction_in_one_trip(engine: AsyncEngine, trips: list[str]) -> None:
    """SQLAlchemy rolls back every connection it takes back into the pool, even right after a commit or a
    rollback: with nothing left to end, that is no trip (it used to be one, and two for a session that read)."""
    sessions = async_sessionmaker(engine)
    trips.clear()
    async with sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM numbers"))).scalar_one() == 2 * FETCH_ROWS + 7
    assert trips == ["_execute"]
    trips.clear()
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE numbers SET label = 'kept' WHERE n = 1"))
    assert trips == ["_execute", "commit"]
    trips.clear()
    async with engine.connect() as connection:
        await connection.execute(text("UPDATE numbers SET label = 'dropped' WHERE n = 1"))
    assert trips == ["_execute", "rollback"]
    async with engine.connect() as connection:
        label = (await connection.execute(text("SELECT label FROM numbers WHERE n = 1"))).scalar_one()
    assert label == "kept"  # the commit happened, the unfinished update was rolled back
