"""Standard Webhooks signatures, checked with the reference package; WEBHOOK_SECRET refused at start-up when
it is not a whsec key; a callback_url without a secret refused at submit."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from service.settings import Settings
from service.webhooks.signing import WebhookSigner, new_webhook_secret
from tests.conftest import Service
from tests.payloads import pr_batch

BODY = b'{"type":"batch.completed","timestamp":"2026-01-01T00:00:00+00:00","data":{"id":"lb_1","status":"completed"}}'


def test_signature_verifies_with_the_reference_implementation() -> None:
    secret = new_webhook_secret()
    headers = WebhookSigner(secret).headers("msg_1", BODY)
    assert Webhook(secret).verify(BODY, headers) == {
        "type": "batch.completed",
        "timestamp": "2026-01-01T00:00:00+00:00",
        "data": {"id": "lb_1", "status": "completed"},
    }
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"].isdigit()
    assert headers["webhook-signature"].startswith("v1,")


def test_signature_does_not_verify_with_another_key_or_another_body() -> None:
    secret = new_webhook_secret()
    headers = WebhookSigner(secret).headers("msg_1", BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"completed", b"failed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "msg_2"})


def test_every_attempt_is_signed_with_its_own_timestamp() -> None:
    """A retry hours later must still pass the receiver's 5-minute timestamp tolerance."""
    secret = new_webhook_secret()
    signer = WebhookSigner(secret)
    old = signer.headers("msg_1", BODY, datetime.now(UTC) - timedelta(hours=2))
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, old)
    Webhook(secret).verify(BODY, signer.headers("msg_1", BODY))


@pytest.mark.parametrize(
    "secret",
    [
        "not-a-whsec-key",
        "whsec_",
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"too short").decode(),
        "whsec_" + base64.b64encode(b"x" * 65).decode(),
        base64.b64encode(b"k" * 32).decode(),
    ],
    ids=["no-prefix", "empty", "not-base64", "too-short", "too-long", "bare-base64"],
)
def test_settings_refuse_a_webhook_secret_that_is_not_a_whsec_key(secret: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(webhook_secret=secret)
    message = str(refused.value)
    assert "WEBHOOK_SECRET must be a Standard Webhooks key" in message
    if len(secret) > len("whsec_"):
        assert secret not in message, "the refused secret must not be echoed into the start-up error"


def test_settings_refuse_a_bad_webhook_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "whsec_tooshort")
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET"):
        Settings()


def test_settings_accept_whsec_keys_padded_or_not_and_an_empty_value_as_unset() -> None:
    padded = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert padded.endswith("=")
    for secret in (padded, padded.rstrip("="), new_webhook_secret()):
        assert Settings(webhook_secret=secret).webhook_secret is not None
    assert Settings(webhook_secret="").webhook_secret is None


async def test_callback_url_without_webhook_secret_is_refused_at_submit(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False, callback_allowed_hosts=["127.0.0.1"])
    response = await service.client.post(
        "/batches", json={**pr_batch(2), "callback_url": "http://127.0.0.1:9/hooks/llm-batch"}
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == "callback_url"
    assert "WEBHOOK_SECRET" in problem["detail"]
    assert (await service.client.get("/batches")).json()["data"] == []
