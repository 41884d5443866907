"""What the Django app remembers about the service's batches.

- `WebhookReceipt`: the webhook-ids already handled, so a redelivery (the service sends at least once, and
  `POST .../webhook/redeliver` sends the same event again) is dropped. A table rather than the cache framework:
  the insert of a unique webhook-id is atomic across every process and server of the monolith and survives
  restarts, where the default LocMemCache is per process and any cache may evict an id early.
- `TrackedBatch`: a batch a management command sent (or stores the results of), and how far its results are
  stored. An import writes its progress here in the transaction of each page it stores, so that whichever
  path gets there (the webhook, `--poll`, a later run, `--import-batch`), each result is stored once.
- `RowInFlight`: a row sent in a batch whose result is not stored yet. The command does not send it again.
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
    def seen(cls, event: WebhookEvent) -> bool:
        return cls.objects.filter(webhook_id=event.webhook_id).exists()

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


class TrackedBatch(models.Model):
    batch_id: models.CharField[str, str] = models.CharField(max_length=64, unique=True)
    command: models.CharField[str, str] = models.CharField(max_length=100)  # the management command's name
    model_label: models.CharField[str, str] = models.CharField(max_length=100)  # app_label.model of its rows
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(default=timezone.now)
    # The results of every pass up to this one are stored (0: none yet).
    stored_through_pass: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    # An import under way: the rows that changed after pass `import_since_pass` up to `importing_through_pass`,
    # stored page by page; `import_cursor` is where the next page starts ("": at the first).
    importing_through_pass: models.PositiveIntegerField[int | None, int | None] = models.PositiveIntegerField(
        null=True, blank=True
    )
    import_since_pass: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    import_cursor: models.CharField[str, str] = models.CharField(max_length=64, blank=True)
    # What the latest import stored, and how the results came (webhook, poll, import).
    stored: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    failed: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    unmatched: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    stored_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(null=True, blank=True)
    stored_via: models.CharField[str, str] = models.CharField(max_length=16, blank=True)

    class Meta:
        verbose_name = "llm-batch batch"
        indexes = (models.Index(fields=["command", "model_label"], name="llm_batch_tracked_command"),)

    def __str__(self) -> str:
        return f"{self.batch_id} ({self.command})"

    @classmethod
    def of(cls, batch_id: str, command: str, model_label: str) -> TrackedBatch:
        """The batch's row; a new one for `command` (its name) over `model_label` if it has none yet."""
        found, _ = cls.objects.get_or_create(
            batch_id=batch_id, defaults={"command": command, "model_label": model_label}
        )
        return found


class RowInFlight(models.Model):
    batch: models.ForeignKey[TrackedBatch, TrackedBatch] = models.ForeignKey(
        TrackedBatch, on_delete=models.CASCADE, related_name="rows_in_flight"
    )
    model_label: models.CharField[str, str] = models.CharField(max_length=100)
    object_pk: models.CharField[str, str] = models.CharField(max_length=255)  # str(row.pk)
    # The pass after which its result comes: 0 when sent in the submission, the pass before a retry's.
    after_pass: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    sent_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "llm-batch row in flight"
        constraints = (
            models.UniqueConstraint(fields=["model_label", "object_pk"], name="llm_batch_one_flight_per_row"),
        )

    def __str__(self) -> str:
        return f"{self.model_label} {self.object_pk}"
