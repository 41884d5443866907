"""The webhook view: verify the Standard Webhooks signature, drop a webhook-id seen before, send
`batch_finished`. 204 for a new event, 200 for a redelivery (dropped), 400 for a forged, altered or expired
one (older than 5 minutes), 500 when a receiver raised (nothing is recorded: the service delivers it again)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from llm_batch_client.django.conf import receipt_days, webhook_secret
from llm_batch_client.django.models import WebhookReceipt
from llm_batch_client.django.signals import batch_finished
from llm_batch_client.errors import WebhookVerificationError
from llm_batch_client.webhooks import verify_webhook

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def webhook(request: HttpRequest) -> HttpResponse:
    try:
        event = verify_webhook(request.headers, request.body, webhook_secret())
    except WebhookVerificationError as error:
        logger.warning("llm-batch webhook refused: %s", error)
        return HttpResponseBadRequest(f"webhook refused: {error}\n", content_type="text/plain")
    with transaction.atomic():
        if not WebhookReceipt.record(event):
            logger.info("llm-batch webhook %s for %s seen before: dropped", event.webhook_id, event.batch.id)
            return HttpResponse("this webhook-id was handled before\n", content_type="text/plain")
        batch_finished.send(sender=WebhookReceipt, event=event)
    WebhookReceipt.forget_before(receipt_days())
    return HttpResponse(status=204)
