"""The webhook view: verify the Standard Webhooks signature, store the results of the batch if a management
command of this project sent it (once, whichever of the webhook and `--poll` comes first; unless
LLM_BATCH_STORE_IN_WEBHOOK is False, for a task to do it), record the
webhook-id and send `webhook_received`. 204 for a new event, 200 for a redelivery (dropped), 400 for a forged,
altered or expired one (older than 5 minutes), 500 when storing the results failed (what was stored stays
stored; the service delivers the event again and the import goes on where it stopped)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from llm_batch_client.django.conf import client, receipt_days, store_in_webhook, webhook_secret
from llm_batch_client.django.models import WebhookReceipt
from llm_batch_client.django.owners import command_of
from llm_batch_client.django.signals import webhook_received
from llm_batch_client.errors import WebhookVerificationError
from llm_batch_client.webhooks import verify_webhook

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
@transaction.non_atomic_requests  # each page of results commits on its own, even with ATOMIC_REQUESTS
def webhook(request: HttpRequest) -> HttpResponse:
    try:
        event = verify_webhook(request.headers, request.body, webhook_secret())
    except WebhookVerificationError as error:
        logger.warning("llm-batch webhook refused: %s", error)
        return HttpResponseBadRequest(f"webhook refused: {error}\n", content_type="text/plain")
    if WebhookReceipt.seen(event):
        logger.info("llm-batch webhook %s for %s seen before: dropped", event.webhook_id, event.batch.id)
        return HttpResponse("this webhook-id was handled before\n", content_type="text/plain")
    owner = command_of(event.batch) if store_in_webhook() else None
    if owner is not None and event.batch.finished:
        with client() as llm_batch:
            owner.store_batch(llm_batch, event.batch, via="webhook", event=event)
    with transaction.atomic():
        if WebhookReceipt.record(event):
            webhook_received.send(sender=WebhookReceipt, event=event)
    WebhookReceipt.forget_before(receipt_days())
    return HttpResponse(status=204)
