"""What the service has learnt of each model beyond the catalogue, shared by every replica: its provider's model
list left it out (or lists it although the catalogue says it is gone: the account's list wins), or a request for
it answered model_decommissioned / model_not_found. Models are named as callers name them: bare for Groq,
`provider:model` otherwise."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.models import ModelAvailability
from service.store.dialect import mark_model_unavailable


@dataclass(frozen=True)
class Availability:
    """Models that cannot be used (with why), and models the account lists although the catalogue says they are
    decommissioned (an enterprise account keeps a model others lost)."""

    unavailable: dict[str, str]
    listed: frozenset[str]


async def read(session: AsyncSession) -> Availability:
    rows = list(await session.exec(select(ModelAvailability)))
    return Availability(
        unavailable={row.model: row.reason or "not available" for row in rows if not row.available},
        listed=frozenset(row.model for row in rows if row.available and row.reason == LISTED_REASON),
    )


async def unavailable(session: AsyncSession) -> dict[str, str]:
    """Model -> why it cannot be used."""
    return (await read(session)).unavailable


async def mark_unavailable(session: AsyncSession, model: str, reason: str) -> None:
    await mark_model_unavailable(session, model, reason, utcnow())


LISTING_REASON = "not in the provider's model list for this account"
LISTED_REASON = "in the provider's model list for this account"


async def replace_listing(
    session: AsyncSession, scope: Collection[str], missing: Iterable[str], listed: Iterable[str] = ()
) -> None:
    """What one provider's model list says now, over its catalogue models `scope`: the `missing` ones cannot be
    used, the `listed` ones (decommissioned in the catalogue) can; earlier listings of the others are dropped (a
    model marked because a request for it failed stays marked)."""
    absent, present = set(missing), set(listed)
    known = {row.model: row for row in await session.exec(select(ModelAvailability))}
    for model, row in known.items():
        listing = row.reason in (LISTING_REASON, LISTED_REASON)
        if listing and model in scope and model not in absent | present:
            await session.delete(row)
    now = utcnow()
    for model in sorted(absent | present):
        found = known.get(model)
        available = model in present
        if found is None:
            session.add(
                ModelAvailability(
                    model=model,
                    available=available,
                    reason=LISTED_REASON if available else LISTING_REASON,
                    updated_at=now,
                )
            )
        elif found.reason in (LISTING_REASON, LISTED_REASON):
            found.available, found.reason = available, LISTED_REASON if available else LISTING_REASON
            found.updated_at = now
            session.add(found)
    await session.flush()
