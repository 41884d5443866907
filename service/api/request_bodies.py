"""Request bodies of the HTTP API (the answers are in service/views/response_bodies.py).

POST /batches is read as a stream (service/api/submission_body.py), not by these models: `BatchHeader` checks
everything but the items once they are read, and `BatchCreate` documents the whole body in the OpenAPI.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

MAX_TIERS = 8
MAX_BUDGET_USD = Decimal("1000000")
BUDGET_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")


def _budget_value(value: Any) -> Any:
    """A JSON number, or a plain decimal string ("25", "0.50"): not what Decimal() would also take ("1_000",
    " 5 ", Arabic-Indic or full-width digits, exponents, "NaN")."""
    if isinstance(value, float):
        return repr(value)  # a JSON number arrives as a float; its shortest decimal form is what the caller wrote
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and BUDGET_TEXT.fullmatch(value):
        return value
    raise ValueError('must be a JSON number or a decimal string of ASCII digits such as "25.50"')


# One definition for every body that carries a budget (POST /batches, its estimate, and a later PATCH).
BudgetUsd = Annotated[
    Decimal,
    BeforeValidator(_budget_value),
    Field(
        gt=0,
        le=MAX_BUDGET_USD,
        decimal_places=12,
        description='The most the batch may cost, in USD (a JSON number, or a decimal string such as "25.50"): '
        "items whose worst case does not fit what is left wait for reservations in flight to be released, and "
        "fail with budget_exceeded only when nothing can free room. The bill never exceeds it.",
    ),
]


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^[A-Za-z0-9_.:/#-]+$",
        description="Unique within the batch: ASCII letters, digits and _ . : - / # (such as acme/payments#26313), "
        "at most MAX_CUSTOM_ID_LENGTH characters.",
    )
    body: dict[str, Any] = Field(description="A chat-completions body without `model`.")
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Kept with the item and echoed on its result rows (at most MAX_ITEM_METADATA_KEYS keys, "
        "MAX_ITEM_METADATA_BYTES): the monolith's own keys, such as its primary key.",
    )


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200, description="A model of the catalogue (GET /models).")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Merged over each item's body on this tier (max_completion_tokens, ...)."
    )


class BatchHeader(BaseModel):
    """Everything of a submission but its items: the JSON body's other keys, or the first line of NDJSON."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict, description="Merged under every item's body.")
    cascade: list[TierIn] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TIERS,
        description="The tiers, cheapest first: every item starts on the first, and failures move on by their "
        "cause. Omitted: `model` (+ `fallback_model`) or, with ?fallback=true, the CASCADE setting.",
    )
    model: str | None = Field(
        default=None, min_length=1, max_length=200, description="The first tier's model; the default cascade's first."
    )
    fallback_model: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="With ?fallback=true: the second tier's model (a two-tier cascade with `model`).",
    )
    fallback_params: dict[str, Any] = Field(
        default_factory=dict, description="With ?fallback=true: the second tier's params."
    )
    strict: bool = Field(
        default=True,
        description="Ask the tiers whose model supports it for strict structured output (constrained decoding) "
        "when there is an output_schema or a json_schema response_format. false: best effort everywhere.",
    )
    output_schema: dict[str, Any] | None = Field(default=None, description="JSON Schema the output must meet.")
    completion_window: str = Field(default="24h", pattern=r"^\d+[hd]$")
    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        description="http(s) URL that gets a signed webhook (Standard Webhooks) when the batch finishes. Needs "
        "WEBHOOK_SECRET; private and loopback addresses only when the host is in CALLBACK_ALLOWED_HOSTS.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Kept with the batch (at most MAX_METADATA_KEYS keys, MAX_METADATA_BYTES)."
    )
    budget_usd: BudgetUsd | None = None
    reuse: bool | None = Field(
        default=None,
        description="Take the answer of an identical request (same tier model and body) that already succeeded for "
        "this tenant within REUSE_MAX_AGE_SECONDS, at no cost. Omitted: the REUSE_RESULTS setting.",
    )


class BatchCreate(BatchHeader):
    """POST /batches as JSON. As NDJSON (Content-Type: application/x-ndjson) the same fields but `items` are the
    first line, then one item per line."""

    items: list[ItemIn] = Field(min_length=1)


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None, min_length=1, max_length=200, description="The retry's model; the cascade's last tier."
    )
    params: dict[str, Any] | None = None
    custom_ids: list[str] | None = Field(default=None, min_length=1)
