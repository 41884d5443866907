"""Alembic migrations on SQLite and PostgreSQL: one head, upgrade from empty (twice), no drift from the
models, and a clean round trip down to base and back up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import service.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from service.store.database import alembic_config, create_engine, migrate

TABLES = {"batches", "items", "passes", "provider_batches", "attempts"}


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"alembic has {len(heads)} heads {heads}: merge them (`alembic merge heads`)"
    return heads[0]


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


def downgrade_to_base(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, "base")


def test_alembic_has_a_single_head() -> None:
    head_revision()


def test_every_revision_descends_from_one_root() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    revisions = list(scripts.walk_revisions())
    assert [r.revision for r in revisions if r.down_revision is None] == [revisions[-1].revision]
    assert revisions[0].revision == head_revision()


async def test_migrate_from_empty_is_idempotent(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        assert TABLES.isdisjoint(await connection.run_sync(table_names))
    await migrate(engine)
    await migrate(engine)
    async with engine.connect() as connection:
        assert await connection.run_sync(current_revision) == head_revision()
        assert await connection.run_sync(table_names) >= TABLES


async def test_models_and_migrations_do_not_drift(engine: AsyncEngine) -> None:
    await migrate(engine)
    async with engine.connect() as connection:
        differences = await connection.run_sync(schema_differences)
    assert differences == [], (
        "service/models.py and alembic/versions disagree; add a migration "
        f"(`alembic revision --autogenerate -m ...`): {differences}"
    )


async def test_downgrade_to_base_then_upgrade_again(engine: AsyncEngine) -> None:
    await migrate(engine)
    async with engine.begin() as connection:
        await connection.run_sync(downgrade_to_base)
    async with engine.connect() as connection:
        assert await connection.run_sync(current_revision) is None
        assert TABLES.isdisjoint(await connection.run_sync(table_names))
    await migrate(engine)
    async with engine.connect() as connection:
        assert await connection.run_sync(current_revision) == head_revision()
        assert await connection.run_sync(table_names) >= TABLES
        assert await connection.run_sync(schema_differences) == []
