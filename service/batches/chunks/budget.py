"""A batch's budget, chunk by chunk: a pass's lay-out sends only the items whose worst case fits what is left
(`pipeline/budgeting.py` decides which wait and which fail), and each chunk reserves the worst case of its lines
when it is laid out (one conditional write, under the batch's lease: several workers never overshoot). The
reservation is given back when the chunk's outcomes are merged (the actual cost is added then) or when it is
abandoned before the provider had it. A chunk laid out before reservations moved to lay-out reserves in the
transaction that starts sending it, as it always did."""

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


async def reserve_laid_out(session: Session, batch_id: str, chunk: Chunk) -> None:
    """The chunk's worst case, reserved as it is laid out; the lay-out placed only what fits, so this holds
    (what is left only grows while the batch's lease is held: ingests release, a raise adds)."""
    if not await batches_store.reserve(session, batch_id, chunk.worst_case_pico):
        raise RuntimeError(f"chunk {chunk.id} of batch {batch_id} was laid out past the batch's budget")
    chunk.reserved = True


def reservation(chunk: Chunk) -> int:
    """What the chunk holds of its batch's budget: given back when its outcomes are merged or it is abandoned."""
    return chunk.worst_case_pico if chunk.reserved else 0


def item_refusal(budget_pico: int, worst_case_pico: int, left_pico: int) -> str:
    """Why an item was not sent: nothing is in flight that could free room, and its worst case is more than
    what is left."""
    return (
        f"not sent: this request could cost up to ${usd_text(worst_case_pico)}, more than the "
        f"${usd_text(max(0, left_pico))} left of the batch's budget (${usd_text(budget_pico)}), and nothing in "
        "flight could free room"
    )


def refusal(batch: Batch, chunk: Chunk) -> str:
    """Why a chunk was not sent: its worst case is more than what is left of the budget."""
    left = (batch.budget_pico or 0) - batch.cost_pico - batch.reserved_pico
    return (
        f"not sent: this provider batch could cost up to ${usd_text(chunk.worst_case_pico)}, more than the "
        f"${usd_text(max(0, left))} left of the batch's budget (${usd_text(batch.budget_pico or 0)})"
    )
