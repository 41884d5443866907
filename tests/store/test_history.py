"""store.history on SQLite and PostgreSQL: a tenant's finished attempts on one model, strict lines or not (and of
one output schema, when asked), grouped by raised-budget resend vs first send, status and code, with the attempts,
output tokens and billed attempts of each group; reused answers and attempts still in flight count for nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlmodel import col

from service.kit.clock import utcnow
from service.models import Attempt, PassKind
from service.pipeline.estimate import OutcomeCount
from service.store import Database, transaction
from service.store import attempts as attempts_store
from service.store import history as history_store
from tests.store.rows import (
    MODEL,
    STRONG_MODEL,
    SUCCESS,
    Outcome,
    decide,
    decide_all,
    failure,
    finished_row,
    seed,
    send_pass,
)

SCHEMA, OTHER_SCHEMA = "a" * 64, "b" * 64


@pytest.fixture
async def history(db: Database) -> None:
    """Tenant acme on MODEL, not strict, schema SCHEMA: a succeeded; b failed as invalid JSON (billed) and then
    succeeded with a raised budget; c failed as an error line (not billed); d is in flight; e's answer was reused.
    Besides: a strict pass, another schema, another model and another tenant, one attempt each."""
    main = await seed(db.workers, "lb_main", tuple("abcde"), tenant="acme", schema_fingerprint=SCHEMA)
    async with transaction(db.workers) as session:
        await session.execute(
            update(Attempt)
            .where(col(Attempt.id) == main.attempts["e"])
            .values(reused_from_attempt_id=main.attempts["a"])
        )
        await decide(
            session,
            main,
            {
                "a": Outcome(output_tokens=20),
                "b": failure("json_validate_failed", output_tokens=30),
                "c": failure("json_validate_failed", input_tokens=0, output_tokens=0),
                "e": SUCCESS,
            },
        )
        raised = await send_pass(
            session, "lb_main", {"b": main.items["b"]}, kind=PassKind.CASCADE, sent_because="raised_budget:max_tokens"
        )
        await decide(session, raised, {"b": Outcome(output_tokens=50)})
    for batch_id, tenant, schema, model, strict, outcome in (
        ("lb_strict", "acme", SCHEMA, MODEL, True, Outcome(output_tokens=1)),
        ("lb_schema", "acme", OTHER_SCHEMA, MODEL, False, Outcome(output_tokens=7)),
        ("lb_strong", "acme", SCHEMA, STRONG_MODEL, False, Outcome(output_tokens=3)),
        ("lb_globex", "globex", SCHEMA, MODEL, False, failure("max_tokens", output_tokens=9)),
    ):
        sent = await seed(
            db.workers, batch_id, ("x",), tenant=tenant, model=model, strict=strict, schema_fingerprint=schema
        )
        await decide_all(db.workers, sent, {"x": outcome})


async def groups(
    db: Database, *, tenant: str = "acme", model: str = MODEL, strict: bool = False, schema: str | None = SCHEMA
) -> list[OutcomeCount]:
    async with db.api() as session:
        found = await history_store.outcome_groups(
            session, tenant=tenant, model=model, strict=strict, schema_fingerprint=schema
        )
    return sorted(found, key=lambda group: (group.raised, group.status, group.error_code or ""))


FIRST_SUCCESS = OutcomeCount(raised=False, status="succeeded", error_code=None, attempts=1, output_tokens=20, billed=1)
FIRST_INVALID = OutcomeCount(
    raised=False, status="failed", error_code="json_validate_failed", attempts=2, output_tokens=30, billed=1
)
RAISED_SUCCESS = OutcomeCount(raised=True, status="succeeded", error_code=None, attempts=1, output_tokens=50, billed=1)


@pytest.mark.usefixtures("history")
async def test_outcomes_are_grouped_by_raised_or_first_status_and_code_with_billed_counts(db: Database) -> None:
    assert await groups(db) == [FIRST_INVALID, FIRST_SUCCESS, RAISED_SUCCESS]


@pytest.mark.usefixtures("history")
async def test_without_a_schema_every_schemas_attempts_count(db: Database) -> None:
    assert await groups(db, schema=None) == [
        FIRST_INVALID,
        OutcomeCount(False, "succeeded", None, attempts=2, output_tokens=27, billed=2),
        RAISED_SUCCESS,
    ]
    assert await groups(db, schema=OTHER_SCHEMA) == [OutcomeCount(False, "succeeded", None, 1, 7, 1)]


@pytest.mark.usefixtures("history")
async def test_strict_lines_have_a_history_of_their_own(db: Database) -> None:
    assert await groups(db, strict=True) == [OutcomeCount(False, "succeeded", None, 1, 1, 1)]


@pytest.mark.usefixtures("history")
async def test_history_is_the_tenants_own_on_that_model(db: Database) -> None:
    assert await groups(db, tenant="globex") == [OutcomeCount(False, "failed", "max_tokens", 1, 9, 1)]
    assert await groups(db, model=STRONG_MODEL) == [OutcomeCount(False, "succeeded", None, 1, 3, 1)]
    assert await groups(db, tenant="initech") == []
    assert await groups(db, model="unknown-model") == []


async def test_only_the_most_recent_attempts_are_read(db: Database) -> None:
    custom_ids = [f"c{n}" for n in range(history_store.RECENT + 2)]
    sent = await seed(db.workers, "lb_main", custom_ids, tenant="acme", schema_fingerprint=SCHEMA)
    now = utcnow()
    async with transaction(db.workers) as session:  # the two oldest failed; the newest RECENT succeeded
        await attempts_store.finish(
            session,
            [
                finished_row(sent.attempts[c], failure("timeout") if n < 2 else Outcome(output_tokens=1), now)
                for n, c in enumerate(custom_ids)
            ],
        )
    recent = history_store.RECENT
    assert await groups(db) == [OutcomeCount(False, "succeeded", None, recent, recent, recent)]
