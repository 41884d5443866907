"""The one module that knows SQLite from PostgreSQL. Callers state intent; this module picks the statement.

- Claiming a row: PostgreSQL's `FOR UPDATE SKIP LOCKED` lets concurrent workers pass over a row another one is
  claiming; SQLite has no row locks, so the claim runs in a transaction opened with `BEGIN IMMEDIATE`, which
  takes the database's single write lock before reading (queueing on the busy timeout, with WAL so that
  readers go on).
- Migrations from several processes at once: an advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite.
- Adding to a counter row that may not exist yet: `INSERT … ON CONFLICT DO UPDATE`, each dialect's own.
- Bulk writes: one statement run by the driver for every row (`executemany` on plain tuples), with the
  dialect's placeholders and, on SQLite, timestamps as SQLAlchemy stores them.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import FailureCount, ModelAvailability

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
MIGRATION_LOCK_KEY = 727274
# Bulk loads and merges rewrite runs of neighbouring rows: with 16 KB pages a 21,000-item run writes and reads
# the WAL in under half the calls of 4 KB pages (73k pwrite against 193k), for ~4% less CPU in bench/scale.py.
SQLITE_PAGE_BYTES = 16384
# The workers' connections load and merge whole passes: a larger page cache keeps the pages a merge rewrites.
SQLITE_WORKER_CACHE_KIB = 8 * 1024
SQLITE_CONNECT_ARGS = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}


def is_sqlite_url(url: URL) -> bool:
    return url.drivername.startswith("sqlite")


def is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _on_sqlite_connect(dbapi_connection: Any, _record: Any, *, cache_kib: int | None = None) -> None:
    # WAL lets readers run beside the one writer; the busy timeout makes writers queue instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")  # takes effect only on a file still empty
    _use_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    if cache_kib is not None:
        cursor.execute(f"PRAGMA cache_size=-{cache_kib}")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL unless it already is. WAL is a property of the file, not of the connection.

    Switching needs the file to itself, and SQLite answers "database is locked" at once, without the busy
    timeout, while another connection holds it (several processes starting on a new file at once). That
    other connection is migrating or switching it, and the next connection opened finds WAL: this one carries
    on in the mode the file has.
    """
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as error:
        if "locked" not in str(error):
            raise
        logger.info("SQLite file busy; this connection keeps its journal mode until the file is switched to WAL")


def configure_sqlite_engine(engine: AsyncEngine, url: URL, *, cache_kib: int | None = None) -> None:
    """`cache_kib`: each connection's page cache, in KiB (None: SQLite's 2 MB)."""
    if url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        _on_sqlite_connect(dbapi_connection, record, cache_kib=cache_kib)

    event.listen(engine.sync_engine, "connect", on_connect)


@asynccontextmanager
async def write_transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A transaction whose reads must still hold when it writes. SQLite: BEGIN IMMEDIATE takes the write lock
    first. PostgreSQL: a plain transaction; the statements inside lock what they decide on (FOR UPDATE, or a
    conditional UPDATE as the first statement)."""
    async with sessions() as session, session.begin():
        if is_sqlite(session):
            await session.execute(text("BEGIN IMMEDIATE"))
        yield session


async def serialise_migrations(connection: AsyncConnection) -> None:
    """Only one process migrates at a time; the others then find the schema at the newest migration."""
    if connection.dialect.name == "postgresql":
        await connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
    else:  # SQLite: the DDL runs inside a transaction that holds the write lock from its start
        await connection.exec_driver_sql("BEGIN IMMEDIATE")


async def mark_model_unavailable(session: AsyncSession, model: str, reason: str, at: datetime) -> None:
    """Insert or overwrite the model's row in one statement (two ingests marking one model at once both win)."""
    table = ModelAvailability.__table__  # type: ignore[attr-defined]
    statement = (postgresql_insert if not is_sqlite(session) else sqlite_insert)(table)
    statement = statement.values(model=model, available=False, reason=reason, updated_at=at)
    statement = statement.on_conflict_do_update(
        index_elements=["model"], set_={"available": False, "reason": reason, "updated_at": at}
    )
    await session.execute(statement)


async def add_failure_counts(session: AsyncSession, batch_id: str, pass_id: int, codes: Mapping[str, int]) -> None:
    """count = count + n for each code, inserting the rows that do not exist yet (one upsert, both dialects)."""
    if not codes:
        return
    table = FailureCount.__table__  # type: ignore[attr-defined]
    statement = (postgresql_insert if not is_sqlite(session) else sqlite_insert)(table)
    statement = statement.on_conflict_do_update(
        index_elements=["batch_id", "pass_id", "code"],
        set_={"count": table.c.count + statement.excluded.count},
    )
    await session.execute(
        statement, [{"batch_id": batch_id, "pass_id": pass_id, "code": code, "count": n} for code, n in codes.items()]
    )


_PLACEHOLDER = re.compile(r"\?")
SQLITE_TIMESTAMP = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy's SQLite DATETIME stores a value


def _numbered(statement: str) -> str:
    counter = iter(range(1, statement.count("?") + 1))
    return _PLACEHOLDER.sub(lambda _match: f"${next(counter)}", statement)


async def execute_many(session: AsyncSession, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run `statement` (`?` placeholders, no `?` anywhere else) once per row, by the driver itself: none of
    SQLAlchemy's per-row work, which dominates bulk writes of tens of thousands of rows."""
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        columns = [index for index, value in enumerate(rows[0]) if isinstance(value, datetime)]
        prepared = [_with_timestamps(row, columns) for row in rows] if columns else [tuple(row) for row in rows]
        await connection.exec_driver_sql(statement, prepared)
    else:
        await connection.exec_driver_sql(_numbered(statement), [tuple(row) for row in rows])


def _with_timestamps(row: Sequence[Any], columns: Sequence[int]) -> tuple[Any, ...]:
    """The row with its datetimes (in the columns where the first row has them) as SQLite text."""
    values = list(row)
    for index in columns:
        value = values[index]
        if isinstance(value, datetime):
            values[index] = _sqlite_text(value)
    return tuple(values)


@lru_cache(maxsize=256)
def _sqlite_text(value: datetime) -> str:
    """Remembered: the rows of one bulk write mostly share a timestamp, and strftime is slow."""
    return value.strftime(SQLITE_TIMESTAMP)


def insert_statement(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


async def insert_many(session: AsyncSession, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """New rows of `table` (values in the order of `columns`), written by the driver in the session's
    transaction: `executemany` on SQLite; binary COPY on PostgreSQL, where the server's work per row is two
    thirds of an INSERT's and the client's under half (bench: 25,000 rows, 0.22 -> 0.15 s and 0.03 -> 0.013 s)."""
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        await execute_many(session, insert_statement(table, columns), rows)
        return
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    if not driver.is_in_transaction():
        # SQLAlchemy begins its transaction with its first statement: the COPY must not run on its own.
        await connection.exec_driver_sql("SELECT 1")
    await driver.copy_records_to_table(table, records=rows, columns=list(columns))


async def refresh_statistics(session: AsyncSession, tables: Sequence[str]) -> None:
    """After a bulk load: PostgreSQL plans by table statistics, and with none yet it takes tens of thousands of
    fresh rows for a few dozen (sorting a whole batch for every page of results) until autovacuum comes by.
    SQLite's planner uses the indexes without statistics: nothing to do."""
    if not is_sqlite(session):
        await session.execute(text(f"ANALYZE {', '.join(tables)}"))
