"""`batch_finished`: sent once per webhook event, after its signature was verified and its webhook-id was
not seen before, with `event` (a llm_batch_client.WebhookEvent). Receivers run in the transaction that
records the webhook-id: if one raises, the webhook answers 500, nothing is recorded, and the service's next
delivery of the same event runs them again.

    @receiver(batch_finished)
    def on_batch_finished(sender, event, **kwargs):
        ...
"""

from __future__ import annotations

from django.dispatch import Signal

batch_finished = Signal()
