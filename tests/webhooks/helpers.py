"""Settings and waits shared by the webhook, SSRF and client tests."""

from __future__ import annotations

import asyncio
from typing import Any

from service.webhooks.signing import new_webhook_secret
from tests.conftest import Service

SECRET = new_webhook_secret()


def webhook_settings(**overrides: Any) -> dict[str, Any]:
    """Signed webhooks to the loopback receiver, with timeouts and back-off small enough for tests."""
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "callback_allowed_hosts": ["127.0.0.1"],
        "webhook_timeout_seconds": 1.0,
        "webhook_backoff_base_seconds": 0.05,
        "webhook_backoff_max_seconds": 0.2,
        "webhook_max_attempts": 6,
    }
    values.update(overrides)
    return values


async def wait_for_webhook(service: Service, batch_id: str, state: str, *, within: float = 30.0) -> dict[str, Any]:
    """The batch, once its webhook is in `state` (pending, delivered or failed)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        batch: dict[str, Any] = (await service.client.get(f"/batches/{batch_id}")).json()
        if batch.get("webhook") and batch["webhook"]["state"] == state:
            return batch
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"webhook of {batch_id} not {state} within {within}s: {batch.get('webhook')}")
        await asyncio.sleep(0.05)
