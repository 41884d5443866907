"""Laying out a pass (service/batches/layout.py), on a real database, without the workers around it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlmodel import col

from service.batches.config import LifecycleConfig
from service.batches.layout import lay_out
from service.models import Batch, PassKind
from service.store import Database, transaction
from service.store import batches as batches_store
from service.store import items as items_store
from service.store import passes as passes_store
from tests.conftest import test_settings as make_settings
from tests.store.rows import MODEL, add_batch


@pytest.fixture
async def pg_db(postgres_url: str) -> AsyncIterator[Database]:
    database = Database.connect(postgres_url)
    await database.migrate()
    yield database
    await database.dispose()


@pytest.mark.postgres
async def test_the_first_pass_of_a_large_batch_is_planned_with_its_items_statistics(
    pg_db: Database, postgres_url: str, tmp_path: Path
) -> None:
    """Without statistics PostgreSQL reads the whole batch for every page of items it lays out. The batch here
    says it holds a bulk load's worth of items and has 40: the lay-out takes too few to refresh statistics
    afterwards, so the items' row count can only come from the refresh before the first read."""
    async with transaction(pg_db.workers) as session:
        await add_batch(session, "lb_big", [f"c{n}" for n in range(40)])
        await session.execute(
            update(Batch).where(col(Batch.id) == "lb_big").values(item_count=items_store.BULK_LOAD_ROWS)
        )
        pass_ = await passes_store.insert(session, "lb_big", kind=PassKind.PRIMARY, model=MODEL, tier=0)
    config = LifecycleConfig.from_settings(make_settings(postgres_url, tmp_path))
    async with transaction(pg_db.workers) as session:
        batch = await batches_store.get_batch(session, "lb_big")
        assert batch is not None
        assert await lay_out(session, config, batch, pass_) == 40
    async with pg_db.api() as session:
        counts = await session.execute(
            text("SELECT relname, reltuples FROM pg_class WHERE relname IN ('items', 'attempts') ORDER BY relname")
        )
        assert dict(counts.all()) == {"attempts": -1, "items": 40}
