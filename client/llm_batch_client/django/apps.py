from __future__ import annotations

from django.apps import AppConfig


class LlmBatchConfig(AppConfig):
    name = "llm_batch_client.django"
    label = "llm_batch"  # the default label, "django", would read as Django's own
    verbose_name = "llm-batch"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from llm_batch_client.django import checks  # noqa: F401  (registers the settings checks)
