"""The Django integration of the llm-batch client (`pip install "llm-batch-client[django]"`).

    INSTALLED_APPS += ["llm_batch_client.django"]
    LLM_BATCH_URL = "http://llm-batch.internal:8000"
    LLM_BATCH_TOKEN = env("LLM_BATCH_TOKEN")
    LLM_BATCH_WEBHOOK_SECRET = env("LLM_BATCH_WEBHOOK_SECRET")              # the service's WEBHOOK_SECRET, whsec_...
    LLM_BATCH_CALLBACK_URL = "https://django.internal/hooks/llm-batch/webhook/"  # optional: the webhook

    urlpatterns += [path("hooks/llm-batch/", include("llm_batch_client.django.urls"))]

Then subclass `llm_batch_client.django.command.LlmBatchCommand` as a management command, and connect a
receiver to `llm_batch_client.django.signals.batch_finished`.
"""
