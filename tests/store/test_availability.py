"""store.availability on SQLite and PostgreSQL: a model marked unavailable by a failed request stays marked,
while the marks of the model list are replaced by each new listing (a model listed again is usable again)."""

from __future__ import annotations

from service.models import ModelAvailability
from service.store import Database, transaction
from service.store import availability as availability_store
from service.store.availability import LISTING_REASON
from tests.store.rows import all_rows, meanwhile, still_waiting

GONE = "Groq answered model_decommissioned for it"


async def unavailable(db: Database) -> dict[str, str]:
    async with db.api() as session:
        return await availability_store.unavailable(session)


SCOPE = ("a", "b", "c", "d", "failed-model", "unlisted", "old-model")


async def replace_listing(db: Database, *missing: str) -> None:
    """One provider's listing of the models SCOPE names, lacking `missing`."""
    async with transaction(db.workers) as session:
        await availability_store.replace_listing(session, SCOPE, missing)


async def mark(db: Database, model: str, reason: str) -> None:
    async with transaction(db.workers) as session:
        await availability_store.mark_unavailable(session, model, reason)


async def test_mark_unavailable_inserts_the_model_or_updates_its_reason(db: Database) -> None:
    assert await unavailable(db) == {}
    await mark(db, "old-model", "Groq answered model_not_found for it")
    await mark(db, "old-model", GONE)
    await mark(db, "other-model", GONE)
    assert await unavailable(db) == {"old-model": GONE, "other-model": GONE}
    assert len(await all_rows(db.api, ModelAvailability)) == 2


async def test_a_listing_replaces_the_marks_of_the_previous_listing(db: Database) -> None:
    await replace_listing(db, "a", "b")
    assert await unavailable(db) == {"a": LISTING_REASON, "b": LISTING_REASON}
    await replace_listing(db, "b", "c")
    assert await unavailable(db) == {"b": LISTING_REASON, "c": LISTING_REASON}
    await replace_listing(db)
    assert await unavailable(db) == {}
    assert await all_rows(db.api, ModelAvailability) == []


async def test_a_mark_from_a_failed_request_survives_the_listings(db: Database) -> None:
    await mark(db, "failed-model", GONE)
    await replace_listing(db, "failed-model", "unlisted")
    assert await unavailable(db) == {"failed-model": GONE, "unlisted": LISTING_REASON}
    await replace_listing(db)  # listed again: the listing's mark goes, the failure's stays
    assert await unavailable(db) == {"failed-model": GONE}


async def test_a_model_the_listing_marked_takes_the_reason_of_a_failed_request(db: Database) -> None:
    await replace_listing(db, "m")
    await mark(db, "m", GONE)
    await replace_listing(db)
    assert await unavailable(db) == {"m": GONE}


async def test_an_available_row_is_not_reported_and_a_missing_reason_is_given_one(db: Database) -> None:
    async with transaction(db.workers) as session:
        session.add(ModelAvailability(model="fine", available=True, reason="back"))
        session.add(ModelAvailability(model="silent", available=False, reason=None))
    assert await unavailable(db) == {"silent": "not available"}


async def test_two_ingests_marking_the_same_new_model_at_once_both_succeed(db: Database) -> None:
    async with transaction(db.workers) as first:
        await availability_store.mark_unavailable(first, "old-model", GONE)
        second = meanwhile(
            db.workers, lambda s: availability_store.mark_unavailable(s, "old-model", "Groq answered model_not_found")
        )
        assert await still_waiting(second), "the second mark waits for the first ingest's transaction"
    await second  # an ingest that fails here rolls back every outcome it merged
    assert await unavailable(db) == {"old-model": "Groq answered model_not_found"}


async def test_a_listing_has_the_account_keep_a_model_the_catalogue_calls_gone(db: Database) -> None:
    """The account's list wins over the catalogue: a decommissioned model it lists is usable (listed), until a
    later listing leaves it out; another provider's listing (another scope) leaves it alone."""
    async with transaction(db.workers) as session:
        await availability_store.replace_listing(session, ("llama", "x"), ["x"], ["llama"])
    async with db.api() as session:
        found = await availability_store.read(session)
    assert found.listed == {"llama"} and found.unavailable == {"x": LISTING_REASON}
    async with transaction(db.workers) as session:
        await availability_store.replace_listing(session, ("openai:m",), ["openai:m"])
    async with db.api() as session:
        found = await availability_store.read(session)
    assert found.listed == {"llama"} and set(found.unavailable) == {"x", "openai:m"}
    async with transaction(db.workers) as session:
        await availability_store.replace_listing(session, ("llama", "x"), [])
    async with db.api() as session:
        found = await availability_store.read(session)
    assert found.listed == frozenset() and set(found.unavailable) == {"openai:m"}
