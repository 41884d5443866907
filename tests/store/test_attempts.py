"""store.attempts on SQLite and PostgreSQL: pending attempts laid out in bulk and finished in bulk by the driver
(values, NULLs, datetimes and large costs read back equal), a chunk's unfinished attempts, an item's lineage
(read as one id range for consecutive ids, as IN lists for scattered ones, the same either way), and what reuse
may take: the tenant's recent paid-for successes, and replayable failures of items that went on to succeed."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col

from service.kit.clock import utcnow
from service.models import Attempt, AttemptStatus, ItemStatus, PassKind
from service.pipeline.routing import REPLAYABLE
from service.providers.protocol import ProviderBatchInfo
from service.store import Database, transaction
from service.store import attempts as attempts_store
from service.store import chunks as chunks_store
from service.store.attempts import LineageStep, Reusable
from service.store.items import IDS_PER_STATEMENT
from tests.store.rows import (
    BIG_PICO,
    MODEL,
    STRONG_MODEL,
    SUCCESS,
    SentPass,
    add_batch,
    all_rows,
    decide,
    decide_all,
    failure,
    finished_row,
    one_row,
    pending_row,
    seed,
    send_pass,
)

REPLAY = sorted(REPLAYABLE)
LONG_AGO = utcnow() - timedelta(days=30)


async def test_insert_rows_lays_out_pending_attempts_as_given(db: Database) -> None:
    before = utcnow()
    async with transaction(db.workers) as session:
        ids = await add_batch(session, "lb_one", ("a", "b"))
        sent = await send_pass(session, "lb_one", {})
        await attempts_store.insert_rows(
            session,
            [
                pending_row(
                    ids["a"],
                    sent.pass_id,
                    sent.chunk_id,
                    tier=2,
                    sent_because="raised_budget:max_tokens",
                    overrides_json='{"max_completion_tokens": 4096}',
                    max_tokens_sent=4096,
                    reasoning_effort_sent="low",
                    request_hash="f" * 64,
                ),
                pending_row(ids["b"], sent.pass_id, None, tier=None),
            ],
        )
    a, b = await all_rows(db.api, Attempt, col(Attempt.item_id))
    assert (a.item_id, a.pass_id, a.chunk_id, a.tier, a.sent_because, a.overrides_json) == (
        ids["a"],
        sent.pass_id,
        sent.chunk_id,
        2,
        "raised_budget:max_tokens",
        '{"max_completion_tokens": 4096}',
    )
    assert (a.max_tokens_sent, a.reasoning_effort_sent, a.request_hash, a.status) == (
        4096,
        "low",
        "f" * 64,
        AttemptStatus.PENDING,
    )
    assert (b.chunk_id, b.tier, b.overrides_json, b.max_tokens_sent, b.request_hash) == (None,) * 5
    for attempt in (a, b):
        assert (attempt.input_tokens, attempt.output_tokens, attempt.cost_pico, attempt.finished_at) == (0, 0, 0, None)
        assert before <= attempt.created_at <= utcnow()


async def test_insert_returning_ids_gives_the_new_ids_in_order(db: Database) -> None:
    async with transaction(db.workers) as session:
        ids = await add_batch(session, "lb_one")
        sent = await send_pass(session, "lb_one", {})
        rows = [pending_row(ids[c], sent.pass_id, None, sent_because=f"because {c}") for c in ("c", "a", "b")]
        new_ids = await attempts_store.insert_returning_ids(session, rows)
    stored = {attempt.id: attempt for attempt in await all_rows(db.api, Attempt)}
    assert [(stored[i].item_id, stored[i].sent_because) for i in new_ids] == [
        (ids["c"], "because c"),
        (ids["a"], "because a"),
        (ids["b"], "because b"),
    ]


async def test_finish_writes_each_outcome_and_reads_back_equal(db: Database) -> None:
    sent = await seed(db.workers, custom_ids=("a", "b"))
    finished = utcnow().replace(microsecond=654_321)
    async with transaction(db.workers) as session:
        await attempts_store.finish(
            session,
            [
                finished_row(sent.attempts["a"], SUCCESS, finished)._replace(cost_pico=BIG_PICO, content="é ✓"),
                finished_row(sent.attempts["b"], failure("max_tokens", output_tokens=0), finished)._replace(
                    provider_request_id=None, input_tokens=2_000_000_000
                ),
            ],
        )
    a = await one_row(db.api, Attempt, sent.attempts["a"])
    b = await one_row(db.api, Attempt, sent.attempts["b"])
    assert (a.status, a.error_code, a.error_message, a.content, a.output_json, a.finish_reason) == (
        AttemptStatus.SUCCEEDED,
        None,
        None,
        "é ✓",
        '{"ok": true}',
        "stop",
    )
    assert (a.input_tokens, a.output_tokens, a.cost_pico, a.provider_request_id, a.finished_at) == (
        100,
        20,
        BIG_PICO,
        f"req_{sent.attempts['a']}",
        finished,
    )
    assert (b.status, b.error_code, b.error_message, b.content, b.output_json, b.finish_reason) == (
        AttemptStatus.FAILED,
        "max_tokens",
        "max_tokens happened",
        None,
        None,
        None,
    )
    assert (b.input_tokens, b.output_tokens, b.provider_request_id, b.finished_at) == (2_000_000_000, 0, None, finished)


async def test_pending_of_chunk_is_the_chunks_unfinished_attempts_by_custom_id(db: Database) -> None:
    sent = await seed(db.workers)
    async with transaction(db.workers) as session:
        await decide(session, sent, {"a": SUCCESS})
        await send_pass(session, "lb_one", {"b": sent.items["b"]}, kind=PassKind.CASCADE, tier=1)
    async with db.workers() as session:
        pending = await attempts_store.pending_of_chunk(session, sent.chunk_id)
    assert set(pending) == {"b", "c"}
    assert pending["c"] == attempts_store.PendingAttempt(
        attempt_id=sent.attempts["c"],
        item_id=sent.items["c"],
        custom_id="c",
        own_format=False,
        item_status=ItemStatus.PENDING,
        tier=0,
        sent_because="first",
        overrides_json=None,
        max_tokens_sent=None,
        reasoning_effort_sent=None,
    )


async def test_of_item_lists_its_attempts_by_pass_with_the_provider_batch(db: Database) -> None:
    sent = await seed(db.workers)
    async with transaction(db.workers) as session:
        second = await send_pass(session, "lb_one", {"a": sent.items["a"]}, kind=PassKind.CASCADE, model=STRONG_MODEL)
        third = await send_pass(session, "lb_one", {}, kind=PassKind.RETRY)
        await attempts_store.insert_returning_ids(session, [pending_row(sent.items["a"], third.pass_id, None)])
        await chunks_store.record_provider_state(session, second.chunk_id, ProviderBatchInfo("batch_two", "validating"))
    async with db.api() as session:
        steps = await attempts_store.of_item(session, sent.items["a"])
    assert [(pass_.number, pass_.model, provider_id) for _attempt, pass_, provider_id in steps] == [
        (1, MODEL, None),
        (2, STRONG_MODEL, "batch_two"),
        (3, MODEL, None),
    ]
    assert {attempt.item_id for attempt, _pass, _id in steps} == {sent.items["a"]}


def step(pass_number: int, model: str, status: str, **values: object) -> LineageStep:
    fields: dict[str, object] = {
        "pass_number": pass_number,
        "tier": 0,
        "provider": "groq",
        "model": model,
        "sent_because": "first",
        "status": status,
        "error_code": None,
        "cost_pico": 1_000,
        "reused_from_attempt_id": None,
        "reused_from_batch_id": None,
    }
    return LineageStep(**(fields | values))  # type: ignore[arg-type]


async def two_passes(db: Database, count: int) -> SentPass:
    """`count` items; every third one failed in pass 1 and went on to the strong model in pass 2."""
    custom_ids = [f"c{n:05d}" for n in range(count)]
    first = await seed(db.workers, custom_ids=custom_ids)
    escalated = {c: first.items[c] for n, c in enumerate(custom_ids) if n % 3 == 0}
    async with transaction(db.workers) as session:
        await decide(
            session,
            first,
            {
                c: failure("json_validate_failed", item_status=ItemStatus.RETRYING) if c in escalated else SUCCESS
                for c in custom_ids
            },
        )
        second = await send_pass(
            session,
            first.batch_id,
            escalated,
            kind=PassKind.CASCADE,
            model=STRONG_MODEL,
            tier=1,
            sent_because="escalated",
        )
        await decide(session, second, dict.fromkeys(escalated, SUCCESS))
    return first


def expected_lineage(item_index: int) -> list[LineageStep]:
    if item_index % 3:
        return [step(1, MODEL, AttemptStatus.SUCCEEDED)]
    return [
        step(1, MODEL, AttemptStatus.FAILED, error_code="json_validate_failed"),
        step(2, STRONG_MODEL, AttemptStatus.SUCCEEDED, tier=1, sent_because="escalated"),
    ]


async def test_lineage_of_consecutive_ids_reads_the_asked_items_only(db: Database) -> None:
    first = await two_passes(db, 12)
    ids = list(first.items.values())
    asked = [ids[3], ids[4], ids[6], ids[7], ids[8]]  # a range with ids[5] inside it, not asked for
    async with db.api() as session:
        lineage = await attempts_store.lineage_of(session, asked)
        assert await attempts_store.lineage_of(session, []) == {}
    assert lineage == {ids[n]: expected_lineage(n) for n in (3, 4, 6, 7, 8)}


async def test_lineage_of_scattered_ids_reads_them_by_value_past_one_statements_parameters(db: Database) -> None:
    first = await two_passes(db, 3 * IDS_PER_STATEMENT + 30)
    ids = list(first.items.values())
    indexes = [*range(0, len(ids), 3), len(ids) - 1]  # more ids than one IN list, spread over thrice as many
    assert len(indexes) > IDS_PER_STATEMENT and ids[-1] - ids[0] >= 2 * len(indexes)
    async with db.api() as session:
        lineage = await attempts_store.lineage_of(session, [ids[n] for n in indexes])
        pair = await attempts_store.lineage_of(session, [ids[0], ids[-1]])
    assert lineage == {ids[n]: expected_lineage(n) for n in indexes}
    assert pair == {ids[0]: expected_lineage(0), ids[-1]: expected_lineage(len(ids) - 1)}


async def test_lineage_of_a_reused_answer_names_the_batch_it_came_from(db: Database) -> None:
    source = await seed(db.workers, "lb_source", ("a",))
    await decide_all(db.workers, source, {"a": SUCCESS})
    async with transaction(db.workers) as session:
        ids = await add_batch(session, "lb_reuser", ("a2",))
        sent = await send_pass(session, "lb_reuser", {})
        await attempts_store.insert_returning_ids(
            session,
            [
                pending_row(
                    ids["a2"], sent.pass_id, None, sent_because="first", reused_from_attempt_id=source.attempts["a"]
                )
            ],
        )
    async with db.api() as session:
        lineage = await attempts_store.lineage_of(session, [ids["a2"]])
    assert lineage == {
        ids["a2"]: [
            step(
                1,
                MODEL,
                AttemptStatus.PENDING,
                cost_pico=0,
                reused_from_attempt_id=source.attempts["a"],
                reused_from_batch_id="lb_source",
            )
        ]
    }


HASHES = {c: c * 64 for c in "abcdef"}


async def reuse_history(db: Database) -> tuple[SentPass, SentPass]:
    """Tenant acme: a succeeded; b failed as replayable and then succeeded on the strong model; c failed as
    replayable for good; d failed (not replayable) and then succeeded; e is still in flight. Tenant globex:
    f succeeded."""
    acme = await seed(db.workers, "lb_acme", tuple("abcde"), tenant="acme", hashes=HASHES)
    globex = await seed(db.workers, "lb_globex", ("f", "a"), tenant="globex", hashes=HASHES)
    async with transaction(db.workers) as session:
        await decide(
            session,
            acme,
            {
                "a": SUCCESS,
                "b": failure("json_validate_failed", item_status=ItemStatus.RETRYING),
                "c": failure("json_validate_failed"),
                "d": failure("timeout", item_status=ItemStatus.RETRYING),
            },
        )
        again = {c: acme.items[c] for c in ("b", "d")}
        second = await send_pass(session, "lb_acme", again, kind=PassKind.CASCADE, model=STRONG_MODEL, tier=1)
        await decide(session, second, dict.fromkeys(again, SUCCESS))
        await decide(session, globex, {"f": SUCCESS, "a": SUCCESS})
    return acme, globex


async def test_reusable_finds_the_tenants_successes_and_replayable_failures_that_went_on_to_succeed(
    db: Database,
) -> None:
    acme, _globex = await reuse_history(db)
    async with db.workers() as session:
        found = await attempts_store.reusable(session, "acme", list(HASHES.values()), LONG_AGO, REPLAY)
        hashes = await attempts_store.reusable_hashes(session, "acme", list(HASHES.values()), LONG_AGO, REPLAY)
    assert set(found) == hashes == {HASHES["a"], HASHES["b"]}
    assert found[HASHES["a"]] == Reusable(
        attempt_id=acme.attempts["a"],
        batch_id="lb_acme",
        status=AttemptStatus.SUCCEEDED,
        error_code=None,
        error_message=None,
        content='{"ok": true}',
        output_json='{"ok": true}',
        finish_reason="stop",
        output_tokens=20,
        cost_pico=1_000,
    )
    assert (found[HASHES["b"]].attempt_id, found[HASHES["b"]].status, found[HASHES["b"]].error_code) == (
        acme.attempts["b"],
        AttemptStatus.FAILED,
        "json_validate_failed",
    )


async def test_reusable_never_crosses_tenants(db: Database) -> None:
    _acme, globex = await reuse_history(db)
    async with db.workers() as session:
        found = await attempts_store.reusable(session, "globex", list(HASHES.values()), LONG_AGO, REPLAY)
        hashes = await attempts_store.reusable_hashes(session, "globex", [HASHES["b"], HASHES["f"]], LONG_AGO, REPLAY)
        nobody = await attempts_store.reusable_hashes(session, "initech", list(HASHES.values()), LONG_AGO, REPLAY)
    assert {h: r.attempt_id for h, r in found.items()} == {
        HASHES["f"]: globex.attempts["f"],
        HASHES["a"]: globex.attempts["a"],
    }
    assert hashes == {HASHES["f"]}
    assert nobody == set()


async def test_reusable_ignores_attempts_older_than_the_max_age(db: Database) -> None:
    acme = await seed(db.workers, "lb_acme", ("a",), tenant="acme", hashes=HASHES)
    finished = await decide_all(db.workers, acme, {"a": SUCCESS})
    async with db.workers() as session:
        for since, expected in ((finished, {HASHES["a"]}), (finished + timedelta(microseconds=1), set())):
            assert set(await attempts_store.reusable(session, "acme", [HASHES["a"]], since, REPLAY)) == expected
            assert await attempts_store.reusable_hashes(session, "acme", [HASHES["a"]], since, REPLAY) == expected


async def test_reusable_takes_the_newest_paid_for_attempt_never_a_reused_one(db: Database) -> None:
    older = await seed(db.workers, "lb_old", ("a",), tenant="acme", hashes=HASHES)
    newer = await seed(db.workers, "lb_new", ("a",), tenant="acme", hashes=HASHES)
    await decide_all(db.workers, newer, {"a": SUCCESS})
    await decide_all(db.workers, older, {"a": SUCCESS})  # finished last, but laid out first
    async with transaction(db.workers) as session:
        ids = await add_batch(session, "lb_reuser", ("a",), tenant="acme")
        sent = await send_pass(session, "lb_reuser", {})
        copied = await attempts_store.insert_returning_ids(
            session,
            [
                pending_row(
                    ids["a"], sent.pass_id, None, request_hash=HASHES["a"], reused_from_attempt_id=newer.attempts["a"]
                )
            ],
        )
        await attempts_store.finish(session, [finished_row(copied[0], SUCCESS, utcnow())])
    hashes = [f"{n:064d}" for n in range(IDS_PER_STATEMENT + 5)] + [HASHES["a"]]  # past one IN list
    async with db.workers() as session:
        found = await attempts_store.reusable(session, "acme", hashes, LONG_AGO, REPLAY)
        assert await attempts_store.reusable_hashes(session, "acme", hashes, LONG_AGO, REPLAY) == {HASHES["a"]}
    assert {h: r.attempt_id for h, r in found.items()} == {HASHES["a"]: newer.attempts["a"]}
