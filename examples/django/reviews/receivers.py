"""What the monolith does once a batch's results are stored (by the webhook or by --poll): note it."""

from typing import Any

from django.dispatch import receiver
from llm_batch_client import Batch
from llm_batch_client.django.command import ImportTally
from llm_batch_client.django.signals import batch_finished

from reviews.models import BatchNotice


@receiver(batch_finished)
def note_finished_batch(sender: Any, batch: Batch, tally: ImportTally, via: str, **kwargs: Any) -> None:
    BatchNotice.objects.create(batch_id=batch.id, via=via, stored=tally.stored, failed=tally.failed)
