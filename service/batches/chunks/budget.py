"""A batch's budget, chunk by chunk: each chunk records its worst case when it is laid out, reserves it in the
transaction that starts sending it (one conditional write: several workers reserving at once never overshoot),
and gives the reservation back when its outcomes are merged (the actual cost is added then) or when it is
abandoned before the provider had it."""

from __future__ import annotations

from service.models import Batch, Chunk
from service.pipeline.catalogue import ModelEntry
from service.pipeline.cost import usd_text
from service.pipeline.lines import BuiltLine
from service.pipeline.tokens import count_input_tokens
from service.store import Session
from service.store import batches as batches_store


def worst_case(entry: ModelEntry, built: BuiltLine) -> int:
    """The most this line can cost: its counted input tokens, each at the dearest price a prompt token can have
    (a cache write costs more than plain input on Anthropic), and all of its max_completion_tokens."""
    input_tokens = count_input_tokens(entry.tokenizer, built.request, upper_bound=True).tokens
    output_tokens = built.max_completion_tokens or entry.max_completion_tokens
    input_price = max(entry.input_pico_per_token, entry.cached_input_pico_per_token, entry.cache_write_pico_per_token)
    return input_tokens * input_price + output_tokens * entry.output_pico_per_token


async def reserve(session: Session, batch: Batch, chunk: Chunk) -> bool:
    """Reserve the chunk's worst case against the batch's budget; False when it does not fit."""
    return await batches_store.reserve(session, batch.id, chunk.worst_case_pico)


def reservation(chunk: Chunk) -> int:
    """What the chunk holds of its batch's budget: given back when its outcomes are merged or it is abandoned."""
    return chunk.worst_case_pico if chunk.reserved else 0


def refusal(batch: Batch, chunk: Chunk) -> str:
    """Why a chunk was not sent: its worst case is more than what is left of the budget."""
    left = (batch.budget_pico or 0) - batch.cost_pico - batch.reserved_pico
    return (
        f"not sent: this provider batch could cost up to ${usd_text(chunk.worst_case_pico)}, more than the "
        f"${usd_text(max(0, left))} left of the batch's budget (${usd_text(batch.budget_pico or 0)})"
    )
