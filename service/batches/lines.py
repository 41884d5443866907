"""The request lines of a pass: which model, params and schema shape them, and the size check at submit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from service.batches.config import LifecycleConfig
from service.kit.cooperative import Turns
from service.models import Batch, Pass
from service.pipeline.errors import LineTooLarge, OverContextWindow, SubmissionError
from service.pipeline.lines import PassRequestSpec
from service.pipeline.tokens import load_vocabulary, message_tokens_above, needs_loading, uncountable_part

THREAD_BYTES = 2 * 1024 * 1024  # an item body this large is checked in a thread (see estimating.THREAD_BYTES)


async def ready_to_count(specs: Iterable[PassRequestSpec]) -> None:
    """The o200k vocabulary loaded before a count on the event loop, if these lines' models count in it: in a
    thread (~0.6 s of CPU, the event loop runs meanwhile), and only once a process counts in it at all (a
    budget, an estimate, an item near a context window), since it holds ~130 MB for the life of the process."""
    if needs_loading(spec.entry.tokenizer for spec in specs):
        await asyncio.to_thread(load_vocabulary)


def spec_for(
    config: LifecycleConfig,
    *,
    provider: str,
    model: str,
    params: Mapping[str, Any],
    pass_params: Mapping[str, Any],
    output_schema: Mapping[str, Any] | None,
    strict: bool,
) -> PassRequestSpec:
    return PassRequestSpec(
        entry=config.entry(provider, model),
        params=params,
        pass_params=pass_params,
        output_schema=output_schema,
        strict=strict,
    )


def spec_of_pass(config: LifecycleConfig, batch: Batch, pass_: Pass) -> PassRequestSpec:
    return spec_for(
        config,
        provider=pass_.provider,
        model=pass_.model,
        params=batch.params,
        pass_params=pass_.params,
        output_schema=batch.output_schema,
        strict=batch.strict_mode,
    )


async def check_fits(
    config: LifecycleConfig,
    specs: Sequence[PassRequestSpec],
    items: Iterable[tuple[int, str, bytes | str]],
    *,
    budgeted: bool = False,
) -> None:
    """Refuse an item (position, custom_id, body JSON) whose line could never fit in a provider batch file on
    one of `specs` (it would stall the pass). A cheap bound clears almost every item; only the others are built
    (in a thread above THREAD_BYTES, where building and counting take over ~50 ms), and the loop gives way by
    time. `budgeted`: the batch has a budget, so every item's prompt must be countable (`check_countable`)."""
    limits = [config.chunk_limits(spec.entry.provider).max_bytes for spec in specs]
    windows = {spec.entry.name: spec.entry.context_window for spec in specs}
    turns = Turns()
    for position, custom_id, body_json in items:
        if budgeted:
            check_countable(position, body_json)
        bounds = [spec.size_bound(custom_id, len(body_json)) for spec in specs]
        # A token is at least a byte of the line: only a line longer than the widest window can be over it.
        if any(bound > limit for bound, limit in zip(bounds, limits, strict=True)) or max(bounds) > max(
            windows.values(), default=0
        ):
            if len(body_json) > THREAD_BYTES:
                await asyncio.to_thread(_check_large, specs, limits, windows, position, custom_id, body_json)
            else:
                await ready_to_count(specs)
                _check_large(specs, limits, windows, position, custom_id, body_json)
        await turns.check()


def _check_large(
    specs: Sequence[PassRequestSpec],
    limits: Sequence[int],
    windows: Mapping[str, int],
    position: int,
    custom_id: str,
    body_json: bytes | str,
) -> None:
    body = orjson.loads(body_json)
    for spec, limit in zip(specs, limits, strict=True):
        if spec.size_bound(custom_id, len(body_json)) <= limit:
            continue
        size = len(spec.build(custom_id, body).line)
        if size > limit:
            raise LineTooLarge(line_index=position, size=size, max_bytes=limit, custom_id=custom_id)
    widest = max(windows.values(), default=0)
    if any(spec.size_bound(custom_id, len(body_json)) > widest for spec in specs):
        _check_context(specs, windows, position, custom_id, body)


def check_countable(position: int, body_json: bytes | str) -> None:
    """A budget reserves each line's worst case before it is sent, which needs its prompt tokens counted: an
    image, audio or file part cannot be (each provider and model bills them by its own rules), so an item with
    one is refused (422 naming the part) rather than reserved too little. A part has a "type": a body without
    that word has none, and is not parsed again."""
    marker = b'"type"' if isinstance(body_json, bytes) else '"type"'
    if marker not in body_json:  # type: ignore[operator]
        return
    body = orjson.loads(body_json)
    where = uncountable_part(body) if isinstance(body, Mapping) else None
    if where is not None:
        raise SubmissionError(
            f"items[{position}].body.{where} is not text: with budget_usd set every part of a prompt must be "
            "text, since images, audio and files cannot be counted before they are sent (so the budget could "
            "not be held); remove budget_usd or the part",
            field=f"items[{position}].body.{where}",
        )


def _check_context(
    specs: Sequence[PassRequestSpec], windows: Mapping[str, int], position: int, custom_id: str, body: Any
) -> None:
    """Refuse an item whose messages alone are over the context window of every tier (counted where the model's
    vocabulary is at hand; a tier whose model cannot be counted offline is left to decide for itself)."""
    over = 0
    for spec in specs:
        entry = spec.entry
        counted = message_tokens_above(entry.tokenizer, spec.build(custom_id, body).request, windows[entry.name])
        if counted is None:
            return
        over = max(over, counted)
    raise OverContextWindow(position=position, custom_id=custom_id, tokens=over, windows=dict(windows))
