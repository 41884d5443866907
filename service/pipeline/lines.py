"""The lines of one pass: each item's chat body merged with the batch's and the tier's params, adapted to the
model, then written in its provider's line format (chat completions for Groq, OpenAI and the compatible
endpoints, /v1/responses where the catalogue says so, Anthropic's Message Batches params), with the id the line
carries and what its answer must be.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import orjson

from service.pipeline.anthropic_lines import anthropic_params
from service.pipeline.catalogue import GROQ, LineFormat, ModelEntry
from service.pipeline.expectations import OutputExpectation, effective_schema, expectation_for
from service.pipeline.requests import (
    LINE_OVERHEAD,
    MODEL_SLACK,
    SCHEMA_INSTRUCTION_PREFIX,
    SHORT_LINE_ID_LENGTH,
    adapt_to_model,
    body_bytes,
    jsonl_line,
    merge_request,
)
from service.pipeline.responses_lines import responses_body
from service.pipeline.schemas import compact_json
from service.pipeline.strict import OPENAI_VALIDATION, VALIDATION_ONLY


class BuiltLine(NamedTuple):
    """A NamedTuple: a lay-out makes one per item, and a tuple is made several times faster."""

    line: bytes  # the JSONL line, newline included
    body: bytes  # the body as sent
    request: dict[str, Any]  # the same body, as a value
    strict: bool  # strict structured output was asked for
    max_completion_tokens: int | None
    reasoning_effort: str | None


@dataclass(frozen=True)
class PassRequestSpec:
    """Everything that shapes the lines of one pass, apart from the items themselves: the model (its catalogue
    entry says the provider's line format), the batch's params and schema, the tier's params, strict mode."""

    entry: ModelEntry
    params: Mapping[str, Any]
    pass_params: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None
    strict: bool = False

    @property
    def model(self) -> str:
        return self.entry.id

    def _adapted(self, request: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """The chat body for the model, and whether it asks for strict structured output. Anthropic's params
        derive their own strict schema (within Anthropic's limits) from the caller's: the chat body keeps it
        as given."""
        final, strict_used = adapt_to_model(
            request,
            model=self.entry.id,
            structured_output=self.entry.structured_output,
            output_schema=self.output_schema,
            strict=self.strict and self.entry.line_format != LineFormat.MESSAGES,
            strict_keywords=VALIDATION_ONLY if self.entry.provider == GROQ else OPENAI_VALIDATION,
        )
        if self.entry.provider != GROQ:
            final = _openai_parameters(final, self.entry)
        return final, strict_used

    def build(
        self, line_id: str, item_body: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> BuiltLine:
        """The line of one item (`line_id`: its custom_id in the line, see ModelEntry.short_line_ids)."""
        request = merge_request(item_body, self.params, self.pass_params, overrides)
        final, strict_used = self._adapted(request)
        line_format = self.entry.line_format
        if line_format == LineFormat.MESSAGES:
            params, strict_used = self._anthropic(final)
            encoded = body_bytes(params)
            line = b'{"custom_id":' + orjson.dumps(line_id) + b',"params":' + encoded + b"}\n"
            max_tokens: Any = params.get("max_tokens")
        else:
            sent = responses_body(final) if line_format == LineFormat.RESPONSES else final
            encoded = body_bytes(sent)
            line = jsonl_line(line_id, encoded, url=self.entry.endpoint)
            # What the provider applies: max_output_tokens as sent (raised to the Responses API's minimum);
            # on chat completions max_completion_tokens over max_tokens when a body has both (Groq and OpenAI).
            max_tokens = (
                sent.get("max_output_tokens")
                if line_format == LineFormat.RESPONSES
                else final.get("max_completion_tokens", final.get("max_tokens"))
            )
        effort = final.get("reasoning_effort")
        return BuiltLine(
            line=line,
            body=encoded,
            request=final,
            strict=strict_used,
            max_completion_tokens=max_tokens
            if isinstance(max_tokens, int) and not isinstance(max_tokens, bool)
            else None,
            reasoning_effort=effort if isinstance(effort, str) else None,
        )

    def expectation(self, item_body: Mapping[str, Any] | None = None) -> OutputExpectation:
        """What an answer must be: from the item's body when it sets its own response_format, else from the
        pass's params and the batch's output_schema (the same for every other item: compute it once)."""
        request = merge_request(item_body or {}, self.params, self.pass_params)
        final, strict_used = self._adapted(request)
        if self.entry.line_format == LineFormat.MESSAGES:
            _params, strict_used = self._anthropic(final)
        return expectation_for(request, self.output_schema, strict_used=strict_used)

    def _anthropic(self, final: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        return anthropic_params(
            final, max_tokens_default=self.entry.max_completion_tokens, sampling=not self.entry.fixed_temperature
        )

    @cached_property
    def common_expectation(self) -> OutputExpectation:
        """The expectation of every item that does not set its own response_format."""
        return self.expectation()

    def expectation_of(self, item_body: Mapping[str, Any], own_format: bool) -> OutputExpectation:
        return self.expectation(item_body) if own_format else self.common_expectation

    @cached_property
    def _line_overhead(self) -> int:
        """What any line of the pass adds to its item's body, at most: params, the schema (as response_format
        or as an instruction, strict or not), the model and the envelope."""
        extra = compact_json(self.params) + compact_json(self.pass_params)
        schema = effective_schema(self.output_schema, self.params)
        hint = len(SCHEMA_INSTRUCTION_PREFIX) + (len(compact_json(schema)) * 3 if schema is not None else 0)
        return LINE_OVERHEAD + len(extra) + hint + len(self.model) + MODEL_SLACK

    def size_bound(self, custom_id: str, body_json_length: int) -> int:
        """An upper bound of the line's size from the item body's JSON length alone (no line built)."""
        return self._line_overhead + max(len(custom_id), SHORT_LINE_ID_LENGTH) * 2 + body_json_length


def line_id(entry: ModelEntry, custom_id: str, item_id: int) -> str:
    """What a line of `entry`'s provider carries as its custom_id: the caller's own on Groq, ours elsewhere
    (see ModelEntry.short_line_ids); ingest maps it back."""
    return f"i{item_id}" if entry.short_line_ids else custom_id


def _openai_parameters(body: dict[str, Any], entry: ModelEntry) -> dict[str, Any]:
    """OpenAI's (and the compatible endpoints') names for what the caller wrote in Groq's: the output budget is
    `max_completion_tokens` (reasoning models refuse `max_tokens`), and a model that takes only the default
    temperature gets none."""
    adapted = dict(body)
    if "max_tokens" in adapted:
        limit = adapted.pop("max_tokens")
        adapted.setdefault("max_completion_tokens", limit)
    if entry.fixed_temperature:
        adapted.pop("temperature", None)
        adapted.pop("top_p", None)
    if not entry.reasoning:
        adapted.pop("reasoning_effort", None)
    return adapted
