"""verify_webhook on the service's own webhooks, as a monolith's receiver gets them, and on forged ones."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from llm_batch_client import Batch, BatchOptions, LlmBatchClient, WebhookVerificationError, verify_webhook
from standardwebhooks import Webhook

from tests.client.conftest import PARAMS, items
from tests.webhooks.helpers import SECRET
from tests.webhooks.receiver import Receiver


def test_the_services_webhook_verifies_and_a_forged_altered_or_expired_one_does_not(client: LlmBatchClient) -> None:
    with Receiver() as receiver:
        batch = client.submit(items(2), BatchOptions(params=PARAMS, callback_url=receiver.url()))
        done = client.wait(batch.id, timeout=60, poll_interval=0.05)
        deadline = time.monotonic() + 30
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert receiver.received, "no webhook arrived"
        request = receiver.received[0]

    event = verify_webhook(request.headers, request.body, SECRET)
    assert (event.type, event.webhook_id) == ("batch.completed", request.headers["webhook-id"])
    assert event.batch == Batch.from_json(json.loads(request.body)["data"])
    assert event.batch.id == done.id and event.batch.cost.usd == done.cost.usd and event.timestamp.tzinfo
    as_django_gives_them = {name.title(): value for name, value in request.headers.items()}
    assert verify_webhook(as_django_gives_them, request.body, SECRET) == event

    with pytest.raises(WebhookVerificationError):
        verify_webhook(request.headers, request.body.replace(b"completed", b"failed"), SECRET)
    with pytest.raises(WebhookVerificationError):
        verify_webhook({**request.headers, "webhook-id": "msg_forged"}, request.body, SECRET)
    other_secret = "whsec_" + "A" * 43 + "="
    with pytest.raises(WebhookVerificationError):
        verify_webhook(request.headers, request.body, other_secret)

    ten_minutes_ago = datetime.now(UTC) - timedelta(minutes=10)
    old_signature = Webhook(SECRET).sign(event.webhook_id, ten_minutes_ago, request.body.decode())
    expired = {
        **request.headers,
        "webhook-timestamp": str(int(ten_minutes_ago.timestamp())),
        "webhook-signature": old_signature,
    }
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(expired, request.body, SECRET)
