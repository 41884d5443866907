"""store.idempotency on SQLite and PostgreSQL: a key is one request per tenant (the first claim takes it, the
others find it held, even while the first transaction is still open), an expired key or one whose holder died
is taken afresh, the answer is stored only by the holder and only with its work, and expired keys are purged."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from service.kit.clock import utcnow
from service.models import IdempotencyKey, IdempotencyState
from service.store import Database, transaction
from service.store import idempotency as idempotency_store
from tests.store.rows import all_rows, still_waiting

KEY = "order-42"


async def claim(
    db: Database,
    owner: str,
    *,
    tenant: str = "acme",
    key: str = KEY,
    locked_for: timedelta = timedelta(seconds=30),
    expires_in: timedelta = timedelta(hours=24),
) -> bool:
    now = utcnow()
    return await idempotency_store.claim(
        db.api,
        tenant=tenant,
        key=key,
        request_hash=f"hash of {owner}",
        method="POST",
        path="/batches",
        owner=owner,
        locked_until=now + locked_for,
        expires_at=now + expires_in,
    )


async def complete(db: Database, owner: str, tenant: str = "acme") -> bool:
    async with transaction(db.api) as session:
        return await idempotency_store.complete(
            session, tenant=tenant, key=KEY, owner=owner, status=202, body='{"id": "lb_1"}', location="/batches/lb_1"
        )


async def find(db: Database, tenant: str = "acme") -> IdempotencyKey | None:
    return await idempotency_store.find(db.api, tenant, KEY)


async def test_the_first_claim_takes_the_key_and_the_others_find_it_held(db: Database) -> None:
    assert await claim(db, "first")
    assert not await claim(db, "second")
    row = await find(db)
    assert row is not None
    assert (row.owner, row.state, row.request_hash, row.method, row.path) == (
        "first",
        IdempotencyState.IN_PROGRESS,
        "hash of first",
        "POST",
        "/batches",
    )


async def test_a_key_is_one_request_per_tenant(db: Database) -> None:
    assert await claim(db, "acme's", tenant="acme")
    assert await claim(db, "globex's", tenant="globex")
    acme, globex = await find(db, "acme"), await find(db, "globex")
    assert acme is not None and globex is not None and (acme.owner, globex.owner) == ("acme's", "globex's")
    assert await find(db, "initech") is None


async def test_an_expired_key_is_taken_afresh(db: Database) -> None:
    assert await claim(db, "first", expires_in=timedelta(seconds=-1))
    assert await complete(db, "first")
    assert await claim(db, "second")
    row = await find(db)
    assert row is not None and (row.owner, row.state, row.response_body) == (
        "second",
        IdempotencyState.IN_PROGRESS,
        None,
    )


async def test_a_key_whose_holder_died_is_taken_afresh_but_a_completed_one_is_not(db: Database) -> None:
    assert await claim(db, "died", locked_for=timedelta(seconds=-1))
    assert await claim(db, "second", locked_for=timedelta(seconds=-1))
    assert await complete(db, "second")
    assert not await claim(db, "third"), "a completed answer outlives its lock until the key expires"
    row = await find(db)
    assert row is not None and (row.owner, row.state) == ("second", IdempotencyState.COMPLETED)


async def test_complete_stores_the_answer_only_for_the_holder(db: Database) -> None:
    assert await claim(db, "holder")
    assert not await complete(db, "someone else")
    assert not await complete(db, "holder", tenant="globex")
    assert await complete(db, "holder")
    assert not await complete(db, "holder"), "an answer is stored once"
    row = await find(db)
    assert row is not None
    assert (row.state, row.response_status, row.response_body, row.response_location) == (
        IdempotencyState.COMPLETED,
        202,
        '{"id": "lb_1"}',
        "/batches/lb_1",
    )


async def test_the_answer_is_stored_with_the_work_or_not_at_all(db: Database) -> None:
    assert await claim(db, "holder")
    with pytest.raises(RuntimeError):
        async with transaction(db.api) as session:
            assert await idempotency_store.complete(
                session, tenant="acme", key=KEY, owner="holder", status=202, body="{}", location=None
            )
            raise RuntimeError("the work failed")
    row = await find(db)
    assert row is not None and (row.state, row.response_status) == (IdempotencyState.IN_PROGRESS, None)


async def test_a_claim_taken_over_after_its_lock_ran_out_cannot_complete(db: Database) -> None:
    assert await claim(db, "slow", locked_for=timedelta(seconds=-1))
    assert await claim(db, "fast")
    assert not await complete(db, "slow")
    assert await complete(db, "fast")


async def test_give_back_frees_only_the_holders_key_in_progress(db: Database) -> None:
    assert await claim(db, "holder")
    await idempotency_store.give_back(db.api, tenant="acme", key=KEY, owner="someone else")
    await idempotency_store.give_back(db.api, tenant="globex", key=KEY, owner="holder")
    assert (await find(db)) is not None
    await idempotency_store.give_back(db.api, tenant="acme", key=KEY, owner="holder")
    assert await find(db) is None
    assert await claim(db, "next")
    assert await complete(db, "next")
    await idempotency_store.give_back(db.api, tenant="acme", key=KEY, owner="next")
    assert (await find(db)) is not None, "a completed answer is not given back"


async def test_purge_expired_deletes_only_expired_keys_of_every_tenant(db: Database) -> None:
    for tenant, key, expires_in in (
        ("acme", "old-1", -5),
        ("globex", "old-1", 60),  # the same key, alive in another tenant
        ("globex", "old-2", -5),
        ("acme", "live", 60),
    ):
        assert await claim(db, "o", tenant=tenant, key=key, expires_in=timedelta(seconds=expires_in))
    assert await idempotency_store.purge_expired(db.api) == 2
    assert sorted((row.tenant, row.key) for row in await all_rows(db.api, IdempotencyKey)) == [
        ("acme", "live"),
        ("globex", "old-1"),
    ]
    assert await idempotency_store.purge_expired(db.api) == 0


def key_row(owner: str, now: datetime) -> dict[str, Any]:
    return {
        "tenant": "acme",
        "key": KEY,
        "request_hash": "h",
        "method": "POST",
        "path": "/batches",
        "state": IdempotencyState.IN_PROGRESS,
        "owner": owner,
        "locked_until": now + timedelta(seconds=30),
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
    }


async def concurrent_claim(db: Database, *, first_commits: bool) -> bool:
    """Claim the key while another replica's claim of it is inserted and not yet committed; what we got."""
    first = db.api()
    async with first:
        await first.begin()
        await first.execute(insert(IdempotencyKey).values(**key_row("first", utcnow())))
        second = asyncio.ensure_future(claim(db, "second"))
        assert await still_waiting(second), "the second claim waits for the first transaction"
        await (first.commit() if first_commits else first.rollback())
    return await second


async def test_a_claim_racing_one_that_commits_finds_the_key_held(db: Database) -> None:
    assert not await concurrent_claim(db, first_commits=True)
    row = await find(db)
    assert row is not None and row.owner == "first"


async def test_a_claim_racing_one_that_rolls_back_takes_the_key(db: Database) -> None:
    assert await concurrent_claim(db, first_commits=False)
    row = await find(db)
    assert row is not None and row.owner == "second"
