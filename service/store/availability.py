"""What the service has learnt of each model beyond the catalogue, shared by every replica: Groq's model list
left it out, or a request for it answered model_decommissioned / model_not_found."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.models import ModelAvailability
from service.store.dialect import mark_model_unavailable


async def unavailable(session: AsyncSession) -> dict[str, str]:
    """Model -> why it cannot be used."""
    rows = await session.exec(select(ModelAvailability).where(col(ModelAvailability.available).is_(False)))
    return {row.model: row.reason or "not available" for row in rows}


async def mark_unavailable(session: AsyncSession, model: str, reason: str) -> None:
    await mark_model_unavailable(session, model, reason, utcnow())


LISTING_REASON = "not in Groq's model list for this account"


async def replace_listing(session: AsyncSession, missing: Iterable[str]) -> None:
    """What the model list says now: the `missing` models cannot be used; the others listed again can (a model
    marked because a request for it failed stays marked)."""
    absent = set(missing)
    known = {row.model: row for row in await session.exec(select(ModelAvailability))}
    for model, row in known.items():
        if row.reason == LISTING_REASON and model not in absent:
            await session.delete(row)
    now = utcnow()
    session.add_all(
        ModelAvailability(model=model, available=False, reason=LISTING_REASON, updated_at=now)
        for model in sorted(absent - set(known))
    )
    await session.flush()
