"""The store's tests run on a migrated database of each dialect (`database_url`: SQLite and PostgreSQL), through
the service's own pools (`Database.api`, `Database.workers`); `pg_db` is PostgreSQL alone, for what only it does
(row locks taken by concurrent transactions, LISTEN/NOTIFY)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.store.database import Database


async def migrated(database_url: str) -> Database:
    database = Database.connect(database_url)
    await database.migrate()
    return database


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await migrated(database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def pg_db(postgres_url: str) -> AsyncIterator[Database]:
    database = await migrated(postgres_url)
    yield database
    await database.dispose()
