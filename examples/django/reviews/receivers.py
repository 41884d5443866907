"""The webhook's receiver: when a batch of run_llm_batch finishes, store what its latest run changed."""

from typing import Any

from django.dispatch import receiver
from llm_batch_client import WebhookEvent
from llm_batch_client.django.signals import batch_finished

from reviews.management.commands.run_llm_batch import Command


@receiver(batch_finished)
def store_pull_request_analyses(sender: Any, event: WebhookEvent, **kwargs: Any) -> None:
    Command().handle_webhook(event)  # None when the batch is another command's
