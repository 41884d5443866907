"""The webhook-ids already handled, so a redelivery (the service sends at least once, and
`POST .../webhook/redeliver` sends the same event again) does not store results twice.

A table rather than the cache framework: the insert of a unique webhook-id is atomic across every process
and server of the monolith and survives restarts, where the default LocMemCache is per process (two workers
would both accept the same redelivery) and any cache may evict an id early. It also commits or rolls back
with what the receivers of `batch_finished` wrote.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from llm_batch_client.webhooks import WebhookEvent


class WebhookReceipt(models.Model):
    webhook_id: models.CharField[str, str] = models.CharField(max_length=255, unique=True)
    event_type: models.CharField[str, str] = models.CharField(max_length=32)
    batch_id: models.CharField[str, str] = models.CharField(max_length=64, db_index=True)
    received_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = "llm-batch webhook receipt"

    def __str__(self) -> str:
        return f"{self.event_type} {self.batch_id} ({self.webhook_id})"

    @classmethod
    def record(cls, event: WebhookEvent) -> bool:
        """Remember the event's webhook-id; False when it was seen before (a redelivery)."""
        try:
            with transaction.atomic():
                cls.objects.create(webhook_id=event.webhook_id, event_type=event.type, batch_id=event.batch.id)
        except IntegrityError:
            return False
        return True

    @classmethod
    def forget_before(cls, days: int) -> None:
        cls.objects.filter(received_at__lt=timezone.now() - timedelta(days=days)).delete()
