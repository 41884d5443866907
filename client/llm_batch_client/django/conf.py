"""The settings contract, read when used: LLM_BATCH_URL (required), LLM_BATCH_TOKEN, LLM_BATCH_WEBHOOK_SECRET
(for the webhook view), LLM_BATCH_CALLBACK_URL (given to the service as each batch's callback_url),
LLM_BATCH_TIMEOUT (seconds per HTTP request, default 60), LLM_BATCH_POLL_SECONDS (seconds between polls while
`--poll` waits for a batch without a webhook, default 5), LLM_BATCH_WEBHOOK_POLL_SECONDS (the same with a
webhook, which wakes the wait: polls are a backstop, default 60), LLM_BATCH_STORE_IN_WEBHOOK (whether the
webhook view stores a command's results before it answers, default True), LLM_BATCH_WEBHOOK_RECEIPT_DAYS (how long
webhook-ids are remembered to drop redeliveries, default 30). A missing or malformed setting raises
ImproperlyConfigured saying what to write; `manage.py check` reports the same. Secrets are never shown."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from llm_batch_client.sync_client import LlmBatchClient

WHSEC_PREFIX = "whsec_"


@dataclass(frozen=True)
class LlmBatchSettings:
    url: str
    token: str | None
    callback_url: str | None
    timeout: float
    poll_seconds: float | None  # None: the command's own poll_interval
    webhook_poll_seconds: float | None  # None: the command's own webhook_poll_interval


def _optional_text(name: str) -> str | None:
    value = getattr(settings, name, None)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ImproperlyConfigured(f"{name} must be a string, not {type(value).__name__}")
    return value


def _number(name: str, default: float) -> float:
    value: Any = getattr(settings, name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ImproperlyConfigured(f"{name} must be a number above 0 (got {value!r})")
    return float(value)


def _optional_number(name: str) -> float | None:
    return None if getattr(settings, name, None) is None else _number(name, 0)


def _url(name: str, example: str) -> str | None:
    url = _optional_text(name)
    if url is not None and not url.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"{name} must be an absolute http:// or https:// URL, such as {example}")
    return url


def llm_batch_settings() -> LlmBatchSettings:
    url = _url("LLM_BATCH_URL", '"http://llm-batch.internal:8000"')
    if url is None:
        raise ImproperlyConfigured(
            "LLM_BATCH_URL is not set: add the service's base URL to your settings, such as"
            ' LLM_BATCH_URL = "http://llm-batch.internal:8000"'
        )
    return LlmBatchSettings(
        url=url,
        token=_optional_text("LLM_BATCH_TOKEN"),
        callback_url=_url("LLM_BATCH_CALLBACK_URL", '"https://django.internal/hooks/llm-batch/webhook/"'),
        timeout=_number("LLM_BATCH_TIMEOUT", 60.0),
        poll_seconds=_optional_number("LLM_BATCH_POLL_SECONDS"),
        webhook_poll_seconds=_optional_number("LLM_BATCH_WEBHOOK_POLL_SECONDS"),
    )


def store_in_webhook() -> bool:
    """LLM_BATCH_STORE_IN_WEBHOOK (default True): the webhook view stores a command's batch results before it
    answers. False: it only records the event and sends webhook_received, for a task to store them."""
    value: Any = getattr(settings, "LLM_BATCH_STORE_IN_WEBHOOK", True)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"LLM_BATCH_STORE_IN_WEBHOOK must be True or False (got {value!r})")
    return value


def receipt_days() -> int:
    return int(_number("LLM_BATCH_WEBHOOK_RECEIPT_DAYS", 30))


def webhook_secret() -> str:
    """LLM_BATCH_WEBHOOK_SECRET, checked for the whsec_<base64> form of the service's WEBHOOK_SECRET."""
    secret = _optional_text("LLM_BATCH_WEBHOOK_SECRET")
    if secret is None:
        raise ImproperlyConfigured(
            "LLM_BATCH_WEBHOOK_SECRET is not set: the webhook view needs the service's WEBHOOK_SECRET (whsec_...)"
            " to verify signatures; set it from the environment, never in the code"
        )
    if not secret.startswith(WHSEC_PREFIX):
        raise ImproperlyConfigured(
            "LLM_BATCH_WEBHOOK_SECRET must be in the form whsec_<base64>, exactly as the service's WEBHOOK_SECRET"
        )
    try:
        key = base64.b64decode(secret[len(WHSEC_PREFIX) :], validate=True)
    except binascii.Error:
        key = b""
    if len(key) < 16:
        raise ImproperlyConfigured(
            "LLM_BATCH_WEBHOOK_SECRET: the part after whsec_ must be base64 of at least 16 bytes (the service's"
            " WEBHOOK_SECRET as it is)"
        )
    return secret


def client(**options: Any) -> LlmBatchClient:
    """A LlmBatchClient on the settings (use it as a context manager). `options` go to LlmBatchClient."""
    config = llm_batch_settings()
    options.setdefault("timeout", config.timeout)
    return LlmBatchClient(config.url, token=config.token, **options)
