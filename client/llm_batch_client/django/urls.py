"""`path("hooks/llm-batch/", include("llm_batch_client.django.urls"))`: the webhook at hooks/llm-batch/webhook/."""

from __future__ import annotations

from django.urls import path

from llm_batch_client.django import views

app_name = "llm_batch"

urlpatterns = [
    path("webhook/", views.webhook, name="webhook"),
]
