"""Alembic migrations on SQLite and PostgreSQL: one head, upgrade from empty (twice), no drift from the
models, and a clean round trip down to base and back up."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import Batch
from service.store import batches as batches_store
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


def upgrade_to(revision: str) -> Callable[[Connection], None]:
    return lambda connection: command.upgrade(_config_on(connection), revision)


def downgrade_to(revision: str) -> Callable[[Connection], None]:
    return lambda connection: command.downgrade(_config_on(connection), revision)


def _config_on(connection: Connection) -> Config:
    config = alembic_config()
    config.attributes["connection"] = connection
    return config


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
        await connection.run_sync(downgrade_to("base"))
    async with engine.connect() as connection:
        assert await connection.run_sync(current_revision) is None
        assert TABLES.isdisjoint(await connection.run_sync(table_names))
    await migrate(engine)
    async with engine.connect() as connection:
        assert await connection.run_sync(current_revision) == head_revision()
        assert await connection.run_sync(table_names) >= TABLES
        assert await connection.run_sync(schema_differences) == []


async def test_item_bodies_move_out_of_the_items_and_back_with_their_items(engine: AsyncEngine) -> None:
    await migrate(engine)
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    bodies = {f"c{n}": f'{{"messages": [{{"role": "user", "content": "pr {n}"}}]}}' for n in range(3)}
    async with sessions.begin() as session:
        batch = Batch(id="lb_migrated", item_count=len(bodies), pending=len(bodies))
        items = ((custom_id, body.encode(), None, False) for custom_id, body in bodies.items())
        await batches_store.insert_batch(session, batch, items)
    async with engine.begin() as connection:
        await connection.run_sync(downgrade_to("0002"))
        rows = (await connection.execute(text("SELECT custom_id, body_json FROM items"))).all()
        assert dict(rows) == bodies
        assert "item_bodies" not in await connection.run_sync(table_names)
    async with engine.begin() as connection:
        await connection.run_sync(upgrade_to("head"))
        query = "SELECT custom_id, body_json FROM items JOIN item_bodies ON item_bodies.item_id = items.id"
        assert dict((await connection.execute(text(query))).all()) == bodies
        assert await connection.run_sync(schema_differences) == []


# A batch as 0001 stored it, half way through its first pass: one item succeeded, one failed, one pending.
BODIES_AT_0001 = {
    "a": '{"messages": [{"role": "user", "content": "a"}]}',
    "b": '{"messages": [{"role": "user", "content": "b"}], "response_format": {"type": "json_object"}}',
    "c": '{"messages": [{"role": "user", "content": "c"}]}',
}
ROWS_AT_0001 = (
    "INSERT INTO batches (id, status, model, fallback_model, fallback_enabled, params, fallback_params, "
    "completion_window, user_metadata, item_count, cancel_requested, created_at, updated_at) VALUES "
    "('lb_old', 'in_progress', 'openai/gpt-oss-20b', 'openai/gpt-oss-120b', true, '{}', '{\"temperature\": 0}', "
    "'24h', '{}', 3, false, '2026-11-29 10:00:00.000000', '2026-11-29 10:00:00.000000')",
    "INSERT INTO items (id, batch_id, custom_id, position, body, status, deciding_attempt_id) VALUES "
    f"(1, 'lb_old', 'a', 0, '{BODIES_AT_0001['a']}', 'succeeded', 1), "
    f"(2, 'lb_old', 'b', 1, '{BODIES_AT_0001['b']}', 'failed', 2), "
    f"(3, 'lb_old', 'c', 2, '{BODIES_AT_0001['c']}', 'pending', NULL)",
    "INSERT INTO passes (id, batch_id, number, kind, model, params, status, created_at) VALUES "
    "(1, 'lb_old', 1, 'primary', 'openai/gpt-oss-20b', '{}', 'running', '2026-11-29 10:00:00.000000')",
    "INSERT INTO provider_batches (id, batch_id, pass_id, chunk_index, line_count, byte_count, state, "
    "request_total, request_completed, request_failed, next_action_at, retry_count, created_at) VALUES "
    "(1, 'lb_old', 1, 0, 3, 900, 'polling', 3, 1, 1, '2026-11-29 10:01:00.000000', 0, '2026-11-29 10:00:00.000000')",
    "INSERT INTO attempts (id, item_id, pass_id, provider_batch_row_id, status, error_code, content, output, "
    "input_tokens, output_tokens, cost_usd, created_at) VALUES "
    "(1, 1, 1, 1, 'succeeded', NULL, 'hello', '{\"x\": 1}', 10, 5, 0.000123, '2026-11-29 10:00:00.000000'), "
    "(2, 2, 1, 1, 'failed', 'invalid_request', NULL, NULL, 10, 0, 0.00001, '2026-11-29 10:00:00.000000'), "
    "(3, 3, 1, 1, 'pending', NULL, NULL, NULL, 0, 0, 0.0, '2026-11-29 10:00:00.000000')",
    "INSERT INTO webhook_deliveries (id, message_id, batch_id, event, url, payload, state, attempts, "
    "schedule_attempts, created_at) VALUES (1, 'msg_1', 'lb_old', 'batch.completed', 'http://hook.test', '{}', "
    "'pending', 0, 0, '2026-11-29 10:00:00.000000')",
)


async def a_batch_at_0001(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(upgrade_to("0001"))
        for statement in ROWS_AT_0001:
            await connection.execute(text(statement))


def as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value  # asyncpg decodes a json column itself


async def foreign_key_violations(connection: AsyncConnection) -> list[Any]:
    if connection.dialect.name != "sqlite":
        return []  # PostgreSQL checks them at every statement
    return list((await connection.execute(text("PRAGMA foreign_key_check"))).all())


async def test_a_database_at_0001_with_data_upgrades_to_head(engine: AsyncEngine) -> None:
    """On SQLite, rebuilding a table that other rows reference (batches, items, passes, provider_batches)
    must not trip the foreign keys the service's connections turn on."""
    await a_batch_at_0001(engine)
    await migrate(engine)
    async with engine.connect() as connection:
        assert await connection.run_sync(current_revision) == head_revision()
        assert await connection.run_sync(schema_differences) == []
        assert await foreign_key_violations(connection) == []
        query = "SELECT custom_id, status, body_json FROM items JOIN item_bodies ON item_bodies.item_id = items.id"
        items = {custom_id: (status, body) for custom_id, status, body in (await connection.execute(text(query)))}
        assert items == {
            "a": ("succeeded", BODIES_AT_0001["a"]),
            "b": ("failed", BODIES_AT_0001["b"]),
            "c": ("pending", BODIES_AT_0001["c"]),
        }
        query = "SELECT item_id, status, cost_pico, tier, chunk_id FROM attempts ORDER BY item_id"
        assert [tuple(row) for row in await connection.execute(text(query))] == [
            (1, "succeeded", 123_000_000, 0, 1),
            (2, "failed", 10_000_000, 0, 1),
            (3, "pending", 0, 0, 1),
        ]
        query = "SELECT tenant, tiers, succeeded, failed, pending, cost_pico FROM batches"
        tenant, tiers, succeeded, failed, pending, cost_pico = (await connection.execute(text(query))).one()
        assert (tenant, succeeded, failed, pending, cost_pico) == ("default", 1, 1, 1, 133_000_000)
        assert [tier["model"] for tier in as_json(tiers)] == ["openai/gpt-oss-20b", "openai/gpt-oss-120b"]
        query = "SELECT pass_id, code, count FROM failure_counts ORDER BY pass_id"
        assert [tuple(row) for row in await connection.execute(text(query))] == [
            (0, "invalid_request", 1),
            (1, "invalid_request", 1),
        ]
        assert (await connection.execute(text("SELECT byte_count FROM provider_batches"))).scalar_one() == 900
        assert (await connection.execute(text("SELECT COUNT(*) FROM webhook_deliveries"))).scalar_one() == 1


async def test_a_database_with_data_downgrades_to_0001_and_back(engine: AsyncEngine) -> None:
    await a_batch_at_0001(engine)
    await migrate(engine)
    async with engine.begin() as connection:
        await connection.run_sync(downgrade_to("0001"))
    async with engine.connect() as connection:
        assert await foreign_key_violations(connection) == []
        rows = await connection.execute(text("SELECT custom_id, body FROM items"))
        assert {custom_id: as_json(body) for custom_id, body in rows} == {
            custom_id: json.loads(body) for custom_id, body in BODIES_AT_0001.items()
        }
        assert (await connection.execute(text("SELECT COUNT(*) FROM attempts"))).scalar_one() == 3
    await migrate(engine)
    async with engine.connect() as connection:
        assert await connection.run_sync(schema_differences) == []
        assert (await connection.execute(text("SELECT COUNT(*) FROM item_bodies"))).scalar_one() == 3
