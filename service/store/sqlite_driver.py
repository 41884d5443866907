"""aiosqlite connections whose statements take one trip to the connection's thread instead of four.

aiosqlite runs each call on the connection's own thread, and SQLAlchemy's adapter awaits it for each of
creating a cursor, executing, fetching the rows and closing the cursor: four hand-offs to that thread and
back per statement (~0.15 ms each on a busy 2-core machine, more than SQLite takes to answer a small read).
These cursors execute and fetch the first rows in one trip, and close there when the rows are all read. A
large result, such as a streamed read, is fetched on in further trips, `FETCH_ROWS` at a time: memory stays
bounded as before.

SQLAlchemy's own adapter reaches into aiosqlite's internals the same way (`_execute`, `_conn`, `_thread`).
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import URL

FETCH_ROWS = 500  # rows fetched per trip: a whole small result in the first one, bounded memory for a large one
T = TypeVar("T")
Description = tuple[tuple[Any, ...], ...] | None


def _execute(
    connection: sqlite3.Connection, sql: str, parameters: Any, many: bool
) -> tuple[sqlite3.Cursor | None, Description, int, int | None, list[Any]]:
    """Runs on the connection's thread: execute, read the first rows, close the cursor if that was all."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        description = cursor.description
        rows = cursor.fetchmany(FETCH_ROWS) if description is not None else []
        rowcount, lastrowid = cursor.rowcount, cursor.lastrowid
    except BaseException:
        cursor.close()
        raise
    if description is None or len(rows) < FETCH_ROWS:
        cursor.close()
        return None, description, rowcount, lastrowid, rows
    return cursor, description, rowcount, lastrowid, rows


def _fetch(cursor: sqlite3.Cursor, wanted: int | None) -> tuple[sqlite3.Cursor | None, list[Any]]:
    """Runs on the connection's thread: up to `wanted` more rows (None: all), closing the cursor at the end."""
    rows = cursor.fetchall() if wanted is None else cursor.fetchmany(wanted)
    if wanted is None or len(rows) < wanted:
        cursor.close()
        return None, rows
    return cursor, rows


class OneTripCursor:
    """The async cursor SQLAlchemy's aiosqlite adapter drives, answering most statements in one trip."""

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._open: sqlite3.Cursor | None = None  # the thread's cursor, while rows remain to be read
        self._rows: deque[Any] = deque()
        self.description: Description = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _run(self, sql: str, parameters: Any, *, many: bool) -> OneTripCursor:
        await self.close()
        self._open, self.description, self.rowcount, self.lastrowid, rows = await self._connection.on_thread(
            _execute, self._connection._conn, sql, parameters, many
        )
        self._rows = deque(rows)
        return self

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> OneTripCursor:
        return await self._run(sql, () if parameters is None else parameters, many=False)

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> OneTripCursor:
        return await self._run(sql, parameters, many=True)

    async def _fill(self, wanted: int | None) -> None:
        if self._open is not None:
            self._open, rows = await self._connection.on_thread(_fetch, self._open, wanted)
            self._rows.extend(rows)

    async def fetchone(self) -> Any:
        if not self._rows:
            await self._fill(FETCH_ROWS)
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        size = size or self.arraysize
        if len(self._rows) < size:
            await self._fill(max(FETCH_ROWS, size - len(self._rows)))
        return [self._rows.popleft() for _ in range(min(size, len(self._rows)))]

    async def fetchall(self) -> list[Any]:
        await self._fill(None)
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def __aiter__(self) -> AsyncIterator[Any]:
        while (row := await self.fetchone()) is not None:
            yield row

    async def close(self) -> None:
        self._rows.clear()
        if self._open is not None:
            cursor, self._open = self._open, None
            await self._connection.on_thread(cursor.close)


class OneTripConnection(aiosqlite.Connection):
    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    async def commit(self) -> None:
        if self._conn.in_transaction:
            await self.on_thread(self._conn.commit)

    async def rollback(self) -> None:
        """No trip when there is nothing to roll back, as sqlite3 itself does nothing then. SQLAlchemy rolls
        back each connection it takes back into the pool, after a session has already ended its transaction:
        that was a second trip for every session, and a third for a session that only read."""
        if self._conn.in_transaction:
            await self.on_thread(self._conn.rollback)

    async def on_thread(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)`, run on the connection's thread."""
        result: T = await self._execute(function, *args)  # type: ignore[no-untyped-call]
        return result


def connector(url: URL, **connect_args: Any) -> Callable[[], Awaitable[OneTripConnection]]:
    """An `async_creator` for SQLAlchemy: the connection the URL names, with the same arguments SQLAlchemy's
    aiosqlite dialect would pass, plus `connect_args`."""
    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(url)
    open_file = partial(sqlite3.connect, *args, **{**kwargs, **connect_args})

    async def connect() -> OneTripConnection:
        connection = OneTripConnection(open_file, iter_chunk_size=64)
        connection._thread.daemon = True  # as SQLAlchemy does: an unclosed connection never holds the exit
        await connection
        return connection

    return connect
