"""`manage.py check`: the llm-batch settings, each problem with the line to write."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from llm_batch_client.django.conf import llm_batch_settings, receipt_days, store_in_webhook, webhook_secret


@checks.register("llm_batch")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    try:
        llm_batch_settings()
        store_in_webhook()
        receipt_days()
    except ImproperlyConfigured as error:
        messages.append(checks.Error(str(error), id="llm_batch.E001"))
    if getattr(settings, "LLM_BATCH_WEBHOOK_SECRET", None):
        try:
            webhook_secret()
        except ImproperlyConfigured as error:
            messages.append(checks.Error(str(error), id="llm_batch.E002"))
    else:
        messages.append(
            checks.Warning(
                "LLM_BATCH_WEBHOOK_SECRET is not set: the webhook view will refuse every webhook",
                hint="Set it to the service's WEBHOOK_SECRET (whsec_...), from the environment.",
                id="llm_batch.W001",
            )
        )
    return messages
