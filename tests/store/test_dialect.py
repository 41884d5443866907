"""store.dialect on SQLite and PostgreSQL: bulk statements written with `?` run by the driver on either dialect
(placeholders numbered for asyncpg; booleans, NULLs, large integers and microsecond datetimes read back equal
through the models), the failure-count upsert, `write_transaction` (commits or rolls back whole; on SQLite it
holds the write lock from its start), and migrations from several processes at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, update
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from service.kit.clock import utcnow
from service.models import Chunk, FailureCount, ModelAvailability
from service.store import Database, dialect, transaction, write_transaction
from tests.store.conftest import migrated
from tests.store.rows import BIG_PICO, all_rows, is_postgres, meanwhile, one_row, scalar, seed, still_waiting


def test_question_marks_become_numbered_placeholders() -> None:
    assert (
        dialect._numbered("UPDATE t SET a = ?, b = b + ? WHERE id = ?")
        == "UPDATE t SET a = $1, b = b + $2 WHERE id = $3"
    )
    assert dialect._numbered("SELECT 1") == "SELECT 1"
    assert dialect.insert_statement("t", ["a", "b", "c"]) == "INSERT INTO t (a, b, c) VALUES (?, ?, ?)"


@contextmanager
def statements_run(db: Database) -> Iterator[list[str]]:
    """The SQL the worker pool sends while the block runs."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    engine = db.worker_engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_execute_many_inserts_booleans_nulls_and_datetimes_that_read_back_equal(db: Database) -> None:
    stamp = utcnow().replace(microsecond=1)
    rows = [
        ("kept", True, None, stamp),
        ("gone", False, "decommissioned ✓", stamp + timedelta(days=1, microseconds=998_998)),
        ("old", False, "", stamp.replace(year=2001, month=2, day=3, hour=4, minute=5, second=6, microsecond=0)),
    ]
    statement = dialect.insert_statement("model_availability", ("model", "available", "reason", "updated_at"))
    async with transaction(db.workers) as session:
        await dialect.execute_many(session, statement, rows)
    stored = await all_rows(db.api, ModelAvailability, col(ModelAvailability.updated_at))
    assert sorted((r.model, r.available, r.reason, r.updated_at) for r in stored) == sorted(rows)
    async with db.api() as session:  # and the models' own comparisons find them, to the microsecond
        after = await session.scalar(select(ModelAvailability.model).where(ModelAvailability.updated_at > stamp))
        exact = await session.scalar(select(ModelAvailability.model).where(ModelAvailability.updated_at == stamp))
    assert (after, exact) == ("gone", "kept")


async def test_insert_many_writes_values_that_read_back_equal_within_the_transaction(db: Database) -> None:
    """On PostgreSQL by COPY: as the first statement of its transaction and after others, rolled back with it."""
    stamp = utcnow().replace(microsecond=7)
    columns = ("model", "available", "reason", "updated_at")
    rows = [("copied", True, None, stamp), ("also", False, "tab\tnewline\n é ✓ \\N", stamp + timedelta(days=1))]
    with pytest.raises(RuntimeError, match="undone"):
        async with transaction(db.workers) as session:
            await dialect.insert_many(session, "model_availability", columns, rows)
            raise RuntimeError("undone")
    assert await all_rows(db.api, ModelAvailability, col(ModelAvailability.model)) == []
    async with transaction(db.workers) as session:
        await dialect.insert_many(session, "model_availability", columns, rows[:1])
        await dialect.insert_many(session, "model_availability", columns, rows[1:])
        await dialect.insert_many(session, "model_availability", columns, [])
    stored = await all_rows(db.api, ModelAvailability, col(ModelAvailability.updated_at))
    assert [(r.model, r.available, r.reason, r.updated_at) for r in stored] == rows


async def test_execute_many_updates_with_large_integers_and_nulls(db: Database) -> None:
    sent = await seed(db.workers)
    due = utcnow() + timedelta(minutes=3)
    async with transaction(db.workers) as session:
        await dialect.execute_many(
            session,
            "UPDATE provider_batches SET worst_case_pico = worst_case_pico + ?, byte_count = ?, next_action_at = ?,"
            " files_deleted_at = ?, reserved = ? WHERE id = ?",
            [(BIG_PICO, 2**40, due, None, True, sent.chunk_id), (1, 0, due, None, False, sent.chunk_id + 99)],
        )
    chunk = await one_row(db.api, Chunk, sent.chunk_id)
    assert (chunk.worst_case_pico, chunk.byte_count, chunk.next_action_at, chunk.files_deleted_at, chunk.reserved) == (
        BIG_PICO,
        2**40,
        due,
        None,
        True,
    )


async def test_execute_many_of_no_rows_sends_nothing(db: Database) -> None:
    async with transaction(db.workers) as session:
        await session.connection()
        with statements_run(db) as seen:
            await dialect.execute_many(session, "UPDATE no_such_table SET x = ?", [])
    assert seen == []


async def test_add_failure_counts_upserts_each_code(db: Database) -> None:
    await seed(db.workers)
    async with transaction(db.workers) as session:
        await dialect.add_failure_counts(session, "lb_one", 1, {"a": 1, "b": 2})
        await dialect.add_failure_counts(session, "lb_one", 1, {"b": 3, "c": BIG_PICO % 2**31})
        await dialect.add_failure_counts(session, "lb_one", 2, {"a": 7})
        with statements_run(db) as seen:
            await dialect.add_failure_counts(session, "lb_one", 1, {})
    assert seen == []
    stored = {(row.pass_id, row.code): row.count for row in await all_rows(db.api, FailureCount)}
    assert stored == {(1, "a"): 1, (1, "b"): 5, (1, "c"): BIG_PICO % 2**31, (2, "a"): 7}


async def test_write_transaction_commits_whole_or_rolls_back_whole(db: Database) -> None:
    sent = await seed(db.workers)
    async with write_transaction(db.workers) as session:
        await session.execute(update(Chunk).values(retry_count=1))
        await session.execute(update(Chunk).values(last_error="kept"))
    with pytest.raises(RuntimeError):
        async with write_transaction(db.workers) as session:
            await session.execute(update(Chunk).values(retry_count=2, last_error="lost"))
            raise RuntimeError("the step failed")
    chunk = await one_row(db.api, Chunk, sent.chunk_id)
    assert (chunk.retry_count, chunk.last_error) == (1, "kept")


async def test_write_transaction_holds_sqlites_write_lock_from_its_start(db: Database) -> None:
    """What it reads still holds when it writes: on SQLite no one else writes meanwhile; on PostgreSQL the
    statements inside lock what they decide on, so a plain read there holds nothing."""
    sent = await seed(db.workers)

    async with write_transaction(db.workers) as session:
        assert await session.scalar(select(Chunk.retry_count)) == 0
        writer = meanwhile(db.api, lambda other: other.execute(update(Chunk).values(retry_count=5)))
        assert await still_waiting(writer) == (not is_postgres(db))
        await session.execute(update(Chunk).values(last_error="read 0"))
    await writer
    assert (await one_row(db.api, Chunk, sent.chunk_id)).retry_count == 5


async def test_the_dialect_is_told_from_the_url_and_from_a_session(db: Database) -> None:
    assert dialect.is_sqlite_url(make_url("sqlite+aiosqlite:///x.db"))
    assert not dialect.is_sqlite_url(make_url("postgresql+asyncpg://u@h/db"))
    async with db.api() as session:
        assert dialect.is_sqlite(session) is not is_postgres(db)


async def test_a_new_sqlite_file_has_16_kb_pages_in_wal_mode_and_workers_a_larger_cache(sqlite_url: str) -> None:
    database = await migrated(sqlite_url)
    try:
        assert await scalar(database.api, "PRAGMA page_size") == dialect.SQLITE_PAGE_BYTES == 16384
        assert await scalar(database.api, "PRAGMA journal_mode") == "wal"
        assert await scalar(database.workers, "PRAGMA cache_size") == -dialect.SQLITE_WORKER_CACHE_KIB
        assert await scalar(database.api, "PRAGMA cache_size") == -2000, "the API's connections keep the default"
    finally:
        await database.dispose()


async def test_migrations_from_several_processes_at_once_all_succeed(database_url: str) -> None:
    databases = [Database.connect(database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(database.migrate() for database in databases))
        assert await scalar(databases[0].api, "SELECT count(*) FROM alembic_version") == 1
    finally:
        for database in databases:
            await database.dispose()
    again = await migrated(database_url)
    await again.dispose()


@pytest.mark.postgres
async def test_refresh_statistics_gives_postgresql_the_row_counts(pg_db: Database) -> None:
    await seed(pg_db.workers, custom_ids=[f"c{n}" for n in range(50)])
    count = "SELECT reltuples FROM pg_class WHERE relname = 'items'"
    assert await scalar(pg_db.api, count) == -1, "never analysed"
    async with transaction(pg_db.workers) as session:
        await dialect.refresh_statistics(session, ("items", "attempts"))
    assert await scalar(pg_db.api, count) == 50
