"""Request bodies of the HTTP API (the answers are in service/views/schemas.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ItemIn] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict, description="Merged under every item's body.")
    model: str | None = Field(default=None, description="Pass-1 model; PRIMARY_MODEL when omitted.")
    fallback_model: str | None = Field(default=None, description="Pass-2 model; FALLBACK_MODEL when omitted.")
    fallback_params: dict[str, Any] = Field(
        default_factory=dict, description="Merged over each body in the fallback pass."
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


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    params: dict[str, Any] | None = None
    custom_ids: list[str] | None = Field(default=None, min_length=1)
