"""What a tenant's past attempts on a model did: the history estimates rest on.

Only finished attempts that really ran count: reused answers cost nothing and say nothing of the model, and
requests that never ran (expired, missing, a provider 5xx) are resent for free. The most recent attempts are
read (at most RECENT of them), so the figures follow the workload as it changes and the read stays bounded.
"""

from __future__ import annotations

from sqlalchemy import case, func, literal_column
from sqlalchemy import select as sa_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import Attempt, AttemptStatus, Batch, Pass
from service.pipeline.estimate import OutcomeCount
from service.pipeline.routing import RAISED_MAX_TOKENS

RECENT = 20_000


async def outcome_groups(
    session: AsyncSession,
    *,
    tenant: str,
    model: str,
    strict: bool,
    schema_fingerprint: str | None,
    provider: str = "groq",
) -> list[OutcomeCount]:
    """The tenant's recent finished attempts on `provider`'s `model` (strict lines or not), grouped by outcome;
    only those of batches with `schema_fingerprint` when one is given."""
    conditions = [
        col(Batch.tenant) == tenant,
        col(Pass.provider) == provider,
        col(Pass.model) == model,
        col(Pass.strict_mode).is_(strict),
        col(Attempt.status).in_((AttemptStatus.SUCCEEDED, AttemptStatus.FAILED)),
        col(Attempt.reused_from_attempt_id).is_(None),
    ]
    if schema_fingerprint is not None:
        conditions.append(col(Batch.schema_fingerprint) == schema_fingerprint)
    recent = (
        sa_select(
            col(Attempt.sent_because).like(f"{RAISED_MAX_TOKENS}%").label("raised"),
            col(Attempt.status).label("status"),
            col(Attempt.error_code).label("error_code"),
            col(Attempt.output_tokens).label("output_tokens"),
            col(Attempt.input_tokens).label("input_tokens"),
        )
        .join(Pass, col(Pass.id) == col(Attempt.pass_id))
        .join(Batch, col(Batch.id) == col(Pass.batch_id))
        .where(*conditions)
        .order_by(col(Attempt.id).desc())
        .limit(RECENT)
        .subquery()
    )
    rows = await session.execute(
        sa_select(
            recent.c.raised,
            recent.c.status,
            recent.c.error_code,
            func.count(literal_column("*")),
            func.coalesce(func.sum(recent.c.output_tokens), 0),
            func.coalesce(func.sum(case((recent.c.input_tokens > 0, 1), else_=0)), 0),
        ).group_by(recent.c.raised, recent.c.status, recent.c.error_code)
    )
    return [
        OutcomeCount(bool(raised), status, code, int(n), int(tokens), int(billed))
        for raised, status, code, n, tokens, billed in rows
    ]
